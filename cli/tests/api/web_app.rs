//! The web app's static export served at `/` from `WEB_DIR`, beside the API.

use reqwest::{StatusCode, header};

use crate::helpers::{Options, spawn_app_with};

/// A stand-in export with the layout `next build` writes (`trailingSlash`).
fn export() -> std::path::PathBuf {
    let dir = scratch_dir();
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("index.html", "<!doctype html><title>pai home</title>");
    write(
        "404.html",
        "<!doctype html><title>pai: page not found</title>",
    );
    write(
        "documents/index.html",
        "<!doctype html><title>pai documents</title>",
    );
    let bundle = "console.log('pai');\n".repeat(200);
    write("_next/static/chunks/app-0123abcd.js", &bundle);
    dir
}

fn scratch_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pai-web-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_gateway_serves_the_web_app_beside_the_api() {
    let web = export();
    let app = spawn_app_with(Options::default().var("WEB_DIR", web.to_str().unwrap())).await;
    let get = |path: &str| app.http.get(app.url(path)).send();

    let home = get("/").await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    assert_eq!(home.headers()[header::CACHE_CONTROL], "no-cache");
    let policy = home.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(home.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(home.text().await.unwrap().contains("pai home"));

    // A route is its folder's index.html; without the slash, a redirect to it.
    let documents = get("/documents/").await.unwrap();
    assert_eq!(documents.status(), StatusCode::OK);
    assert!(documents.text().await.unwrap().contains("pai documents"));
    let no_slash = app.http.get(app.url("/documents")).send().await.unwrap();
    assert!(
        no_slash.url().path().ends_with("/documents/"),
        "{}",
        no_slash.url()
    );

    // Hashed bundles are cached for good and sent compressed.
    let bundle = app
        .http
        .get(app.url("/_next/static/chunks/app-0123abcd.js"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert_eq!(
        bundle.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(bundle.headers()[header::CONTENT_ENCODING], "gzip");
    assert!(bundle.bytes().await.unwrap().len() < 4000 / 4);

    // An unknown page is the export's 404 page; an unknown API route is
    // still a problem, and the API answers as before.
    let missing = get("/no/such/page/").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("page not found"));
    let api_missing = get("/api/no-such-route").await.unwrap();
    assert_eq!(api_missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        api_missing.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let profile = get("/api/users/profile").await.unwrap();
    assert_eq!(profile.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    app.finish().await;
    std::fs::remove_dir_all(web).unwrap();
}

#[tokio::test]
async fn without_a_built_web_app_the_root_is_a_problem_not_a_crash() {
    let empty = scratch_dir();
    let app = spawn_app_with(Options::default().var("WEB_DIR", empty.to_str().unwrap())).await;
    let root = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(root.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        root.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    app.finish().await;
    std::fs::remove_dir_all(empty).unwrap();
}
