//! Health, readiness, metrics, request ids and the OpenAPI document.

use reqwest::{Method, StatusCode};

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_readiness_metrics_and_request_ids() {
    let app = spawn_app().await;
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["ready"], true);
    assert_eq!(ready.body["postgres"], "ok");
    assert_eq!(ready.body["rabbitmq"], "ok");
    for service in ["auth", "documents", "search"] {
        assert_eq!(ready.body["services"][service], "ok", "{}", ready.body);
    }

    let request_id = health.header("x-request-id").unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&request_id).is_ok());
    let echoed = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "my-trace-1")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "my-trace-1");
    let problem = app.call(Method::GET, "/api/missing", None, None).await;
    assert!(problem.header("x-request-id").is_some());

    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("pai_gateway_requests_total"), "{text}");
    assert!(text.contains("route=\"/readyz\""), "{text}");
    app.finish().await;
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let app = spawn_app().await;
    let doc = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/auth/sessions",
        "/api/auth/sessions/{id}",
        "/api/auth/sessions/all",
        "/api/auth/validate",
        "/api/users/profile",
        "/api/users/change-password",
        "/api/users/account",
        "/api/users/account-status",
        "/api/users/deactivate",
        "/api/users/reactivate",
        "/api/admin/users",
        "/api/admin/users/{id}/deactivate",
        "/api/admin/users/{id}/reactivate",
        "/api/auth/accounts",
        "/api/auth/switch",
        "/api/documents",
        "/api/documents/{id}",
        "/api/search",
        "/api/queries",
        "/api/queries/{id}",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    // Generated clients name their methods after operationIds: one each.
    let mut operation_ids: Vec<&str> = paths
        .values()
        .flat_map(|operations| operations.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let operations = operation_ids.len();
    operation_ids.sort_unstable();
    operation_ids.dedup();
    assert_eq!(operation_ids.len(), operations, "{operation_ids:?}");
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("/api/openapi.json"));
    app.finish().await;
}
