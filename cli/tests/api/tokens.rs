//! Tampered and foreign tokens are refused (ASVS 9.1, 9.2).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let app = spawn_app().await;
    let tokens = app.register("sam").await;
    let good = tokens["access_token"].as_str().unwrap();
    let claims = claims_of(good);
    // Re-signing the genuine claims with the real key is accepted (the
    // forgeries below differ only in what they test).
    assert_eq!(
        app.get("/api/auth/validate", &sign(&claims, &app.jwt_secret))
            .await
            .status,
        reqwest::StatusCode::OK
    );

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let alg_none = format!("{none_header}.{body}.");

    let mut admin = claims.clone();
    admin["adm"] = json!(true);
    let (head, _, sig) = {
        let mut parts = good.split('.');
        (parts.next().unwrap(), parts.next(), parts.next().unwrap())
    };
    let edited_payload = format!(
        "{head}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin).unwrap())
    );

    let mut expired = claims.clone();
    expired["exp"] = json!(now() - 5);
    expired["iat"] = json!(now() - 905);
    expired["nbf"] = json!(now() - 905);
    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = json!("someone-else");
    let mut wrong_issuer = claims.clone();
    wrong_issuer["iss"] = json!("evil");
    let mut not_yet = claims.clone();
    not_yet["nbf"] = json!(now() + 600);
    let mut service_typ = claims.clone();
    service_typ["typ"] = json!("service");

    let forgeries = [
        ("alg none", alg_none),
        ("edited payload", edited_payload),
        (
            "wrong key",
            sign(&claims, "another-secret-of-at-least-32-bytes!"),
        ),
        ("expired", sign(&expired, &app.jwt_secret)),
        ("wrong audience", sign(&wrong_audience, &app.jwt_secret)),
        ("wrong issuer", sign(&wrong_issuer, &app.jwt_secret)),
        ("not yet valid", sign(&not_yet, &app.jwt_secret)),
        ("wrong token type", sign(&service_typ, &app.jwt_secret)),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in forgeries {
        for path in ["/api/auth/validate", "/api/users/profile"] {
            let r = app.get(path, &token).await;
            assert_eq!(r.status.as_u16(), 401, "{what} on {path}: {}", r.body);
            r.assert_problem(401);
        }
    }
    let expired_answer = app
        .get("/api/auth/validate", &sign(&expired, &app.jwt_secret))
        .await;
    assert_eq!(expired_answer.body["detail"], "token expired");

    let missing = app
        .call(reqwest::Method::GET, "/api/users/profile", None, None)
        .await;
    missing.assert_problem(401);
    app.finish().await;
}

#[tokio::test]
async fn validate_returns_the_claims() {
    let app = spawn_app().await;
    let tokens = app.register("tia").await;
    let token = tokens["access_token"].as_str().unwrap();
    let r = app.get("/api/auth/validate", token).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.body["valid"], true);
    assert_eq!(r.body["user_id"], tokens["user"]["id"]);
    assert_eq!(r.body["audience"], "pai-api");
    assert_eq!(r.body["issuer"], "pai");
    assert_eq!(r.body["is_admin"], false);
    app.finish().await;
}
