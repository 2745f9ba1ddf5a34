//! Tokens in the browser: cookie mode, CSRF, several accounts in one
//! browser, switching and logging out of one.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Response, TestApp, spawn_app};

/// A cookie jar kept by hand, as a browser would.
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
    /// Each `Set-Cookie` seen, by cookie name (the last one).
    set: BTreeMap<String, String>,
}

impl Browser {
    async fn call(
        &mut self,
        app: &TestApp,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        let mut request = app.http.request(method, app.url(path));
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers.get_all("set-cookie") {
            let set = set.to_str().unwrap().to_owned();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set.insert(name.to_owned(), set.clone());
        }
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
        }
    }

    fn csrf(&self) -> String {
        self.cookies["pai_csrf"].clone()
    }

    async fn login(&mut self, app: &TestApp, name: &str) -> Response {
        let body = json!({"email": format!("{name}@example.com"), "password": PASSWORD});
        let r = self
            .call(
                app,
                Method::POST,
                "/api/auth/login",
                &[("x-pai-token-mode", "cookie")],
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r
    }

    async fn cookie_post(&mut self, app: &TestApp, path: &str, body: Option<Value>) -> Response {
        let csrf = self.csrf();
        self.call(app, Method::POST, path, &[("x-csrf-token", &csrf)], body)
            .await
    }

    async fn accounts(&mut self, app: &TestApp) -> Vec<(String, bool)> {
        let csrf = self.csrf();
        let r = self
            .call(
                app,
                Method::GET,
                "/api/auth/accounts",
                &[("x-csrf-token", &csrf)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let mut list: Vec<_> = r.body["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["user_id"].as_str().unwrap().to_owned(),
                    a["current"].as_bool().unwrap(),
                )
            })
            .collect();
        list.sort();
        list
    }
}

fn user_id(body: &Value) -> String {
    body["user"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn cookie_mode_login_refresh_and_csrf() {
    let app = spawn_app().await;
    let id = user_id(&app.register("crumb").await);
    let mut browser = Browser::default();
    let r = browser.login(&app, "crumb").await;
    assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
    assert!(r.body["access_token"].is_string());
    let csrf = r.body["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(browser.csrf(), csrf);

    let refresh_name = format!("pai_refresh_{id}");
    for name in [refresh_name.as_str(), "pai_current"] {
        let set = &browser.set[name];
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api/auth"] {
            assert!(set.contains(attribute), "{set}");
        }
    }
    assert!(browser.set[&refresh_name].contains("Max-Age="));
    assert_eq!(browser.cookies["pai_current"], id);
    let csrf_set = &browser.set["pai_csrf"];
    assert!(!csrf_set.contains("HttpOnly") && csrf_set.contains("Path=/"));

    // No CSRF header: refused.
    let r = browser
        .call(&app, Method::POST, "/api/auth/refresh", &[], None)
        .await;
    r.assert_problem(403);

    // With it: rotated, and the old cookie value is refused.
    let old = browser.cookies[&refresh_name].clone();
    let r = browser.cookie_post(&app, "/api/auth/refresh", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.get("refresh_token").is_none());
    assert_ne!(browser.cookies[&refresh_name], old);
    let profile = app
        .get(
            "/api/users/profile",
            r.body["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(profile.body["id"], id.as_str());

    let mut stale = Browser::default();
    stale.cookies.insert(refresh_name.clone(), old);
    stale.cookies.insert("pai_csrf".into(), "x".into());
    let r = stale
        .cookie_post(&app, "/api/auth/refresh", Some(json!({"user_id": id})))
        .await;
    r.assert_problem(401);

    // No cookie at all: 401.
    let r = Browser::default()
        .call(&app, Method::POST, "/api/auth/refresh", &[], None)
        .await;
    r.assert_problem(401);
    app.finish().await;
}

#[tokio::test]
async fn two_accounts_in_one_browser() {
    let app = spawn_app().await;
    let ann = user_id(&app.register("ann").await);
    let bob = user_id(&app.register("bob").await);
    let mut browser = Browser::default();
    browser.login(&app, "ann").await;
    browser.login(&app, "bob").await;
    let mut expected = vec![(ann.clone(), false), (bob.clone(), true)];
    expected.sort();
    assert_eq!(browser.accounts(&app).await, expected);

    // Unknown or not-held accounts.
    let r = browser
        .cookie_post(
            &app,
            "/api/auth/switch",
            Some(json!({"user_id": uuid::Uuid::new_v4()})),
        )
        .await;
    r.assert_problem(404);
    let r = browser
        .cookie_post(&app, "/api/auth/switch", Some(json!({"user_id": "nope"})))
        .await;
    r.assert_problem(422);

    let r = browser
        .cookie_post(&app, "/api/auth/switch", Some(json!({"user_id": ann})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ann_token = r.body["access_token"].as_str().unwrap().to_owned();
    let profile = app.get("/api/users/profile", &ann_token).await;
    assert_eq!(profile.body["id"], ann.as_str());
    assert_eq!(browser.cookies["pai_current"], ann);

    // Logging ann out leaves bob, now current and refreshable.
    let csrf = browser.csrf();
    let bearer = format!("Bearer {ann_token}");
    let r = browser
        .call(
            &app,
            Method::POST,
            "/api/auth/logout",
            &[
                ("x-pai-token-mode", "cookie"),
                ("x-csrf-token", &csrf),
                ("authorization", &bearer),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(browser.accounts(&app).await, vec![(bob.clone(), true)]);
    let r = browser.cookie_post(&app, "/api/auth/refresh", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let profile = app
        .get(
            "/api/users/profile",
            r.body["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(profile.body["id"], bob.as_str());
    app.finish().await;
}
