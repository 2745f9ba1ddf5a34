//! `pai backup` / `pai restore`: back up, drop the database and lose the
//! files, restore, and every user has the same documents, files and search
//! results (the indexes rebuilt from the restored rows).

use pai::backup;
use pai::stack::{self, Service};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};

use crate::helpers::{TestApp, admin_db_url, spawn_app};

const QUERIES: [&str; 2] = ["invoice total amount", "the round pegs in the square holes"];

struct User {
    token: String,
    documents: Vec<String>,
}

/// What a user sees: their documents (id, title, status, pages, chunks),
/// each file's bytes, and each query's hits (source, page, text).
async fn seen(app: &TestApp, user: &User) -> Value {
    let list = app.get("/api/documents", &user.token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let mut documents: Vec<Value> = list.body["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| serde_json::json!([d["id"], d["title"], d["status"], d["pages"], d["chunks"]]))
        .collect();
    documents.sort_by_key(|d| d[0].to_string());
    let mut files = Vec::new();
    for id in &user.documents {
        let response = app
            .http
            .get(app.url(&format!("/api/documents/{id}/file")))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("download");
        assert_eq!(response.status(), StatusCode::OK);
        files.push(response.bytes().await.expect("bytes").len());
    }
    let mut hits = Vec::new();
    for query in QUERIES {
        let r = app.search(&user.token, query, "&k=5").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let keys: Vec<Value> = r.body["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| serde_json::json!([h["source"]["id"], h["source"]["page"], h["text"]]))
            .collect();
        hits.push(keys);
    }
    serde_json::json!({"documents": documents, "files": files, "hits": hits})
}

#[tokio::test]
async fn back_up_lose_everything_restore_and_every_user_sees_the_same() {
    let mut app = spawn_app().await;
    let mut users = Vec::new();
    for (name, files) in [
        (
            "bea",
            &["fin_aws_invoice_2014.pdf", "gen_crazy_ones_pdfa.pdf"][..],
        ),
        ("cal", &["fin_flipkart_invoice_2015.pdf"][..]),
    ] {
        let body = app.register(name).await;
        let token = body["access_token"].as_str().expect("token").to_owned();
        let mut documents = Vec::new();
        for file in files {
            let doc = app.upload(&token, file).await;
            documents.push(doc["id"].as_str().expect("id").to_owned());
        }
        for id in &documents {
            let doc = app.wait_document(&token, id).await;
            assert_eq!(doc["status"], "indexed", "{doc}");
        }
        users.push(User { token, documents });
    }
    let mut before = Vec::new();
    for user in &users {
        before.push(seen(&app, user).await);
    }

    let folder = app.data_dir.join("backup");
    let report = backup::backup(&app.env, &folder).await.expect("backup");
    assert_eq!(report.files, 3, "{report:?}");
    assert!(report.dump_bytes > 0);
    let again = backup::backup(&app.env, &folder).await;
    assert!(
        again.is_err_and(|e| e.to_string().contains("not empty")),
        "a second backup into the same folder is refused"
    );

    // The disaster: the database and the files are gone.
    app.stop().await;
    app.db.close().await;
    let database_url = app.env.required("DATABASE_URL").expect("DATABASE_URL");
    let name = database_url
        .rsplit_once('/')
        .and_then(|(_, rest)| rest.split('?').next())
        .expect("database name")
        .to_owned();
    let mut admin = PgConnection::connect(&admin_db_url()).await.expect("admin");
    sqlx::raw_sql(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop the database");
    let uploads = app.data_dir.join("uploads");
    std::fs::remove_dir_all(&uploads).expect("lose the files");

    let report = backup::restore(&app.env, &folder).await.expect("restore");
    assert_eq!(report.files, 3, "{report:?}");
    // The restored schemas are at the code's migrations.
    stack::migrate(&app.env, &Service::ALL)
        .await
        .expect("migrate");
    app.db = PgPool::connect(&database_url).await.expect("pool");
    app.start().await;
    for (user, before) in users.iter().zip(&before) {
        assert_eq!(&seen(&app, user).await, before);
    }

    // Restoring over pai's data is refused; nothing changed.
    let over = backup::restore(&app.env, &folder).await;
    assert!(
        over.is_err_and(|e| e.to_string().contains("not empty")),
        "UPLOAD_PATH holds files"
    );
    app.finish().await;
}
