//! Admin routes: only administrators, paging, deactivate/reactivate.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn non_admins_get_403_on_every_admin_route() {
    let app = spawn_app().await;
    let user = app.register("uma").await;
    let token = user["access_token"].as_str().unwrap();
    let id = user["user"]["id"].as_str().unwrap();
    app.get("/api/admin/users", token).await.assert_problem(403);
    for action in ["deactivate", "reactivate"] {
        app.post(
            &format!("/api/admin/users/{id}/{action}"),
            Some(token),
            json!({}),
        )
        .await
        .assert_problem(403);
    }
    app.finish().await;
}

#[tokio::test]
async fn admins_list_users_page_by_page() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.register(&format!("user{i}")).await;
    }
    app.register("boss").await;
    let admin = app.make_admin("boss").await;
    let token = admin["access_token"].as_str().unwrap();
    assert_eq!(admin["user"]["is_admin"], true);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/admin/users?limit=2&cursor={c}"),
            None => "/api/admin/users?limit=2".to_owned(),
        };
        let page = app.get(&path, token).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for user in page.body["users"].as_array().unwrap() {
            seen.push(user["username"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["boss", "user0", "user1", "user2", "user3", "user4"]);
    app.get("/api/admin/users?cursor=bogus", token)
        .await
        .assert_problem(400);
    app.finish().await;
}

/// An admin's `deactivate` or `reactivate` of user `id`.
async fn set_active(
    app: &crate::helpers::TestApp,
    admin_token: &str,
    id: &str,
    action: &str,
) -> crate::helpers::Response {
    app.post(
        &format!("/api/admin/users/{id}/{action}"),
        Some(admin_token),
        json!({}),
    )
    .await
}

#[tokio::test]
async fn admin_deactivation_refuses_the_users_tokens_and_reactivation_restores_login() {
    let app = spawn_app().await;
    let victim = app.register("vera").await;
    app.register("root").await;
    let admin = app.make_admin("root").await;
    let admin_token = admin["access_token"].as_str().unwrap();
    let id = victim["user"]["id"].as_str().unwrap();

    let r = set_active(&app, admin_token, id, "deactivate").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["is_active"], false);
    app.until_unauthorized(
        "/api/auth/validate",
        victim["access_token"].as_str().unwrap(),
        crate::helpers::REVOKED_WITHIN,
    )
    .await;
    app.login("vera", PASSWORD).await.assert_problem(403);

    let r = set_active(&app, admin_token, id, "reactivate").await;
    assert_eq!(r.body["is_active"], true);
    assert_eq!(app.login("vera", PASSWORD).await.status, StatusCode::OK);
    let by: Option<String> =
        sqlx::query_scalar("SELECT deactivated_by FROM auth.users WHERE username = 'vera'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(by, None);

    let missing = uuid::Uuid::new_v4();
    app.post(
        &format!("/api/admin/users/{missing}/deactivate"),
        Some(admin_token),
        json!({}),
    )
    .await
    .assert_problem(404);
    app.finish().await;
}

#[tokio::test]
async fn only_an_admin_undoes_an_admins_deactivation() {
    let app = spawn_app().await;
    let victim = app.register("wade").await;
    app.register("boss").await;
    let admin = app.make_admin("boss").await;
    let admin_token = admin["access_token"].as_str().unwrap();
    let id = victim["user"]["id"].as_str().unwrap();
    let reactivate = json!({"email": "wade@example.com", "password": PASSWORD});

    let r = set_active(&app, admin_token, id, "deactivate").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // The user's own password does not undo it.
    let r = app
        .post("/api/users/reactivate", None, reactivate.clone())
        .await;
    r.assert_problem(403);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("deactivated by an administrator"),
        "{}",
        r.body
    );
    let row: (bool, Option<String>) =
        sqlx::query_as("SELECT is_active, deactivated_by FROM auth.users WHERE username = 'wade'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(row, (false, Some("admin".to_owned())));
    // Signing in says so too, rather than offering a reactivation that fails.
    let r = app.login("wade", PASSWORD).await;
    r.assert_problem(403);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("deactivated by an administrator"),
        "{}",
        r.body
    );

    // A user's own deactivation is theirs to undo.
    let r = set_active(&app, admin_token, id, "reactivate").await;
    assert_eq!(r.body["is_active"], true);
    let token = app.login("wade", PASSWORD).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            "/api/users/deactivate",
            Some(&token),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = app.post("/api/users/reactivate", None, reactivate).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user"]["is_active"], true);
    app.finish().await;
}
