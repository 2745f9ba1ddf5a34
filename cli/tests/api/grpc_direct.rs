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
