//! The auth service refuses calls without the right credential even when
//! called directly over gRPC, bypassing the gateway.

use pai_common::JwtKeys;
use pai_common::config::JwtSettings;
use pai_proto::v1::account_service_client::AccountServiceClient;
use pai_proto::v1::admin_service_client::AdminServiceClient;
use pai_proto::v1::auth_internal_client::AuthInternalClient;
use pai_proto::v1::{Empty, ListUsersRequest, RevocationFeedRequest};
use tonic::{Code, Request};

use crate::helpers::spawn_app;

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

    let mut admin = AdminServiceClient::new(channel.clone());
    let denied = admin
        .list_users(bearer(ListUsersRequest::default(), token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut internal = AuthInternalClient::new(channel);
    let user_token_refused = internal
        .revocation_feed(bearer(RevocationFeedRequest { after_seq: 0 }, token))
        .await
        .unwrap_err();
    assert_eq!(user_token_refused.code(), Code::Unauthenticated);
    assert!(
        internal
            .revocation_feed(bearer(
                RevocationFeedRequest { after_seq: 0 },
                &service_token
            ))
            .await
            .is_ok()
    );
    app.finish().await;
}

#[tokio::test]
async fn documents_and_search_refuse_calls_without_the_right_credential() {
    use pai_proto::v1::document_service_client::DocumentServiceClient;
    use pai_proto::v1::search_internal_client::SearchInternalClient;
    use pai_proto::v1::search_service_client::SearchServiceClient;
    use pai_proto::v1::{DeleteUserRequest, DocumentRef, ListDocumentsRequest, SearchRequest};

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
    assert!(user_search.search(bearer(query, token)).await.is_ok());

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
    assert!(
        internal
            .delete_user(bearer(erase, &service_token))
            .await
            .is_ok()
    );
    app.finish().await;
}
