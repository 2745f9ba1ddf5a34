//! The auth service refuses calls without the right credential even when
//! called directly over gRPC, bypassing the gateway.

use pai_common::JwtKeys;
use pai_common::config::JwtSettings;
use pai_proto::v1::account_service_client::AccountServiceClient;
use pai_proto::v1::admin_service_client::AdminServiceClient;
use pai_proto::v1::auth_internal_client::AuthInternalClient;
use pai_proto::v1::{Empty, ListUsersRequest, RevocationFeedRequest};
use tonic::{Code, Request};

use crate::helpers::{PASSWORD, spawn_app};
use crate::tokens::{claims_of, now, sign};

fn bearer<T>(message: T, token: &str) -> Request<T> {
    pai_common::identity::with_bearer(Request::new(message), token)
}

#[tokio::test]
async fn user_scoped_rpcs_need_a_valid_user_token() {
    let app = spawn_app().await;
    let tokens = app.register("yuki").await;
    let token = tokens["access_token"].as_str().unwrap();
    let channel = pai_common::grpc::channel(&format!("http://{}", app.auth_addr)).unwrap();
    let keys = JwtKeys::new(&JwtSettings::from_env(&app.env).unwrap());
    let service_token = keys.issue_service("test");

    let mut account = AccountServiceClient::new(channel.clone());
    let missing = account.get_profile(Empty {}).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    let as_service = account
        .get_profile(bearer(Empty {}, &service_token))
        .await
        .unwrap_err();
    assert_eq!(as_service.code(), Code::Unauthenticated);
    let garbage = account
        .list_sessions(bearer(Empty {}, "x.y.z"))
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::Unauthenticated);
    let profile = account
        .get_profile(bearer(Empty {}, token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(profile.username, "yuki");

    // Forged (another key), expired and revoked tokens are refused on the
    // service's own port as at the gateway.
    for (what, bad) in forged_and_expired(token, &app.jwt_secret) {
        let refused = account
            .get_profile(bearer(Empty {}, &bad))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}");
    }
    let second = app.login("yuki", PASSWORD).await.body;
    let revoked = second["access_token"].as_str().unwrap();
    account
        .logout(bearer(Empty {}, revoked))
        .await
        .expect("logout");
    let refused = account
        .get_profile(bearer(Empty {}, revoked))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "revoked token");
    let refused = account
        .list_sessions(bearer(Empty {}, revoked))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "revoked token");

    let mut admin = AdminServiceClient::new(channel.clone());
    let denied = admin
        .list_users(bearer(ListUsersRequest::default(), token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut internal = AuthInternalClient::new(channel);
    let user_token_refused = internal
        .revocation_feed(bearer(RevocationFeedRequest { cursor: 0 }, token))
        .await
        .unwrap_err();
    assert_eq!(user_token_refused.code(), Code::Unauthenticated);
    assert!(
        internal
            .revocation_feed(bearer(RevocationFeedRequest { cursor: 0 }, &service_token))
            .await
            .is_ok()
    );
    app.finish().await;
}

/// Tokens a caller might forge from a genuine one: signed with another key,
/// and expired (signed with the right key).
fn forged_and_expired(genuine: &str, secret: &str) -> Vec<(&'static str, String)> {
    let claims = claims_of(genuine);
    let mut expired = claims.clone();
    expired["exp"] = serde_json::json!(now() - 5);
    expired["iat"] = serde_json::json!(now() - 905);
    expired["nbf"] = serde_json::json!(now() - 905);
    vec![
        (
            "another key",
            sign(&claims, "Zq8Lm3Xv7Rt2Wn9Kc4Hb6Pj1Ys5Dg0Fa"),
        ),
        ("expired", sign(&expired, secret)),
    ]
}

/// The client address in a public call's message is believed only with a
/// service credential (the gateway's); anyone else is recorded, and locked
/// out, by the address they call from.
#[tokio::test]
async fn auth_takes_the_client_address_only_from_a_service() {
    use pai_proto::v1::auth_service_client::AuthServiceClient;
    use pai_proto::v1::{ClientInfo, LoginRequest};

    let app = spawn_app().await;
    app.register("xena").await;
    let keys = JwtKeys::new(&JwtSettings::from_env(&app.env).unwrap());
    let channel = pai_common::grpc::channel(&format!("http://{}", app.auth_addr)).unwrap();
    let mut auth = AuthServiceClient::new(channel);
    let login = |ip: &str| LoginRequest {
        login: "xena".into(),
        password: PASSWORD.into(),
        client: Some(ClientInfo {
            ip: ip.into(),
            user_agent: "direct".into(),
        }),
    };
    auth.login(login("203.0.113.7"))
        .await
        .expect("direct login");
    auth.login(bearer(
        login("198.51.100.4"),
        &keys.issue_service("gateway"),
    ))
    .await
    .expect("login with a service credential");
    let ips: Vec<String> = sqlx::query_scalar(
        "SELECT ip FROM auth.sessions WHERE user_agent = 'direct' ORDER BY created_at",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(ips, ["127.0.0.1", "198.51.100.4"]);
    app.finish().await;
}

#[tokio::test]
async fn documents_and_search_refuse_calls_without_the_right_credential() {
    use pai_proto::v1::document_service_client::DocumentServiceClient;
    use pai_proto::v1::search_internal_client::SearchInternalClient;
    use pai_proto::v1::search_service_client::SearchServiceClient;
    use pai_proto::v1::{
        DeleteUserRequest, DocumentRef, IndexSourcesRequest, ListDocumentsRequest, SearchRequest,
    };

    let app = spawn_app().await;
    let tokens = app.register("zara").await;
    let token = tokens["access_token"].as_str().unwrap();
    let keys = JwtKeys::new(&JwtSettings::from_env(&app.env).unwrap());
    let service_token = keys.issue_service("test");
    let documents = pai_common::grpc::channel(&format!("http://{}", app.documents_addr)).unwrap();
    let search = pai_common::grpc::channel(&format!("http://{}", app.search_addr)).unwrap();

    let mut docs = DocumentServiceClient::new(documents);
    let none = docs
        .list(ListDocumentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    let service = docs
        .get(bearer(
            DocumentRef {
                id: uuid::Uuid::new_v4().to_string(),
            },
            &service_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(service.code(), Code::Unauthenticated);
    let listed = docs
        .list(bearer(ListDocumentsRequest::default(), token))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.documents.is_empty());

    let mut user_search = SearchServiceClient::new(search.clone());
    let query = SearchRequest {
        query: "invoice".into(),
        ..SearchRequest::default()
    };
    let none = user_search.search(query.clone()).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    for (what, bad) in forged_and_expired(token, &app.jwt_secret) {
        let refused = user_search
            .search(bearer(query.clone(), &bad))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "search, {what}");
        let refused = docs
            .list(bearer(ListDocumentsRequest::default(), &bad))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "documents, {what}");
    }
    assert!(
        user_search
            .search(bearer(query.clone(), token))
            .await
            .is_ok()
    );

    // A revoked session's token is refused on their own ports too, within
    // the feed's poll, not only at the gateway.
    let second = app.login("zara", PASSWORD).await.body;
    let revoked = second["access_token"].as_str().unwrap().to_owned();
    assert!(
        docs.list(bearer(ListDocumentsRequest::default(), &revoked))
            .await
            .is_ok()
    );
    let r = app
        .post("/api/auth/logout", Some(&revoked), serde_json::json!({}))
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.body);
    let started = std::time::Instant::now();
    loop {
        let listed = docs
            .list(bearer(ListDocumentsRequest::default(), &revoked))
            .await;
        let searched = user_search.search(bearer(query.clone(), &revoked)).await;
        match (listed, searched) {
            (Err(a), Err(b)) => {
                assert_eq!(a.code(), Code::Unauthenticated);
                assert_eq!(b.code(), Code::Unauthenticated);
                assert_eq!(a.message(), "session revoked");
                break;
            }
            answers => assert!(
                started.elapsed() < crate::helpers::REVOKED_WITHIN,
                "a revoked token still passes: {answers:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The session still live is not affected.
    assert!(
        docs.list(bearer(ListDocumentsRequest::default(), token))
            .await
            .is_ok()
    );

    // Internal RPCs take a service credential, never a user's token.
    let mut internal = SearchInternalClient::new(search);
    let erase = DeleteUserRequest {
        user_id: tokens["user"]["id"].as_str().unwrap().to_owned(),
    };
    let as_user = internal
        .delete_user(bearer(erase.clone(), token))
        .await
        .unwrap_err();
    assert_eq!(as_user.code(), Code::Unauthenticated);
    let batch = IndexSourcesRequest {
        user_id: erase.user_id.clone(),
        sources: Vec::new(),
    };
    let as_user = internal
        .index_sources(bearer(batch, token))
        .await
        .unwrap_err();
    assert_eq!(as_user.code(), Code::Unauthenticated);
    assert!(
        internal
            .delete_user(bearer(erase, &service_token))
            .await
            .is_ok()
    );
    app.finish().await;
}
