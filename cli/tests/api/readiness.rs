//! `/readyz`: one cached check for any number of callers, `ok` or `failed`
//! per dependency and nothing more.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn readiness_answers_ok_or_failed_per_dependency_only() {
    let app = spawn_app().await;
    let calls = (0..30).map(|_| async {
        let r = app.http.get(app.url("/readyz")).send().await.unwrap();
        (r.status(), r.json::<serde_json::Value>().await.unwrap())
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            serde_json::json!({
                "ready": true,
                "postgres": "ok",
                "rabbitmq": "ok",
                "services": {"auth": "ok", "documents": "ok", "search": "ok"},
                "revocation_feed": "ok",
            })
        );
    }
    app.finish().await;
}
