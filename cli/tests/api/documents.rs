//! Documents: upload checks, isolation between users, deletion of a
//! document and of an account, redelivery, and index rebuilds.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{PASSWORD, TestApp, corpus, spawn_app};

const SMALL: &str = "gen_crazy_ones_pdfa.pdf";
const INVOICE: &str = "fin_aws_invoice_2014.pdf";

fn token(user: &Value) -> &str {
    user["access_token"].as_str().unwrap()
}

async fn chunk_rows(app: &TestApp, source_id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM search.chunks WHERE source_id = $1")
        .bind(Uuid::parse_str(source_id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// The distinct documents of the hits, best first.
fn hit_ids(r: &crate::helpers::Response) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for hit in r.body["hits"].as_array().unwrap() {
        let id = hit["source"]["id"].as_str().unwrap().to_owned();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

#[tokio::test]
async fn bad_uploads_get_the_right_answer_and_the_worker_goes_on() {
    let app = spawn_app().await;
    let user = app.register("una").await;
    let t = token(&user);

    let mut big = b"%PDF-1.4\n".to_vec();
    big.resize(11 * 1024 * 1024, b'x');
    app.upload_bytes(t, "big.pdf", big)
        .await
        .assert_problem(413);
    app.upload_bytes(t, "notes.pdf", b"just some text, not a PDF at all".to_vec())
        .await
        .assert_problem(415);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM documents.documents")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 0, "refused uploads leave no row");
    let user_dir = app
        .data_dir
        .join("uploads")
        .join(user["user"]["id"].as_str().unwrap());
    let leftovers = std::fs::read_dir(&user_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "refused uploads leave no file");

    let full = std::fs::read(corpus("pdf/dev/gen_census_disability_report_3p.pdf")).unwrap();
    let truncated = app
        .upload_bytes(t, "cut.pdf", full[..full.len() / 3].to_vec())
        .await;
    let encrypted = app
        .upload(t, "edge_encrypted_userpw_openpassword.pdf")
        .await;
    let good = app.upload(t, SMALL).await;
    let truncated = app
        .wait_document(t, truncated.body["id"].as_str().unwrap())
        .await;
    let encrypted = app
        .wait_document(t, encrypted["id"].as_str().unwrap())
        .await;
    let good = app.wait_document(t, good["id"].as_str().unwrap()).await;
    assert_eq!(encrypted["status"], "failed");
    assert!(
        encrypted["error"]
            .as_str()
            .unwrap()
            .contains("encrypted PDF")
    );
    // A third of a PDF: recovered pages or a readable refusal, never a crash.
    assert!(
        truncated["status"] == "indexed"
            || truncated["error"].as_str().unwrap().contains("corrupt"),
        "{truncated}"
    );
    assert_eq!(good["status"], "indexed", "{good}");
    assert_eq!(good["pages"], 1);
    app.finish().await;
}

#[tokio::test]
async fn users_never_see_each_others_documents() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let a_doc = app.upload(token(&alice), INVOICE).await;
    let b_doc = app.upload(token(&bob), SMALL).await;
    let a_id = a_doc["id"].as_str().unwrap();
    let b_id = b_doc["id"].as_str().unwrap();
    assert_eq!(
        app.wait_document(token(&alice), a_id).await["status"],
        "indexed"
    );
    assert_eq!(
        app.wait_document(token(&bob), b_id).await["status"],
        "indexed"
    );

    for (t, other) in [(token(&alice), b_id), (token(&bob), a_id)] {
        app.get(&format!("/api/documents/{other}"), t)
            .await
            .assert_problem(404);
        app.get(&format!("/api/documents/{other}/file"), t)
            .await
            .assert_problem(404);
        app.delete(&format!("/api/documents/{other}"), t, None)
            .await
            .assert_problem(404);
        app.post(
            &format!("/api/documents/{other}/reprocess"),
            Some(t),
            json!({}),
        )
        .await
        .assert_problem(404);
    }
    let listed = app.get("/api/documents", token(&alice)).await;
    let ids: Vec<&str> = listed.body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a_id]);

    // Each user's own words find their own document, and only theirs; the
    // other's words find nothing of the other's.
    for (t, own, query, theirs) in [
        (token(&alice), a_id, "Amazon Glacier charges", true),
        (
            token(&bob),
            b_id,
            "the round pegs in the square holes",
            true,
        ),
        (
            token(&alice),
            a_id,
            "the round pegs in the square holes",
            false,
        ),
        (token(&bob), b_id, "Amazon Glacier charges", false),
    ] {
        for mode in ["hybrid", "bm25", "vector"] {
            let r = app.search(t, query, &format!("&mode={mode}")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let ids = hit_ids(&r);
            assert!(ids.iter().all(|id| id == own), "{mode} {query}: {}", r.body);
            if theirs {
                assert_eq!(ids, [own], "{mode} {query}: the owner finds it: {}", r.body);
            }
        }
    }
    // Query syntax is not interpreted: quotes, field prefixes and operators
    // are only words (a phrase beside the user term tripped tantivy).
    for query in [
        "\"Amazon Glacier\" charges",
        "\"Amazon",
        "user:* title:[a TO z] Glacier -Amazon",
    ] {
        let r = app.search(token(&alice), query, "&mode=bm25").await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
        assert_eq!(hit_ids(&r), [a_id], "{query}: {}", r.body);
    }
    let found = app.search(token(&alice), "Amazon Glacier", "&k=3").await;
    assert_eq!(hit_ids(&found).first().map(String::as_str), Some(a_id));
    let hit = &found.body["hits"][0];
    assert_eq!(hit["source"]["page"], 1);
    assert_eq!(hit["source"]["kind"], "document");
    assert!(hit["snippet"].as_str().unwrap().contains("<b>"), "{hit}");

    // The original file comes back byte for byte, to its owner only.
    let file = app
        .http
        .get(app.url(&format!("/api/documents/{a_id}/file")))
        .bearer_auth(token(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    let bytes = file.bytes().await.unwrap();
    assert_eq!(
        bytes.as_ref(),
        std::fs::read(corpus(&format!("pdf/dev/{INVOICE}"))).unwrap()
    );
    app.finish().await;
}

#[tokio::test]
async fn deleting_a_document_removes_its_file_rows_and_hits() {
    let app = spawn_app().await;
    let user = app.register("dora").await;
    let t = token(&user);
    let doc = app.upload(t, INVOICE).await;
    let id = doc["id"].as_str().unwrap();
    app.wait_document(t, id).await;
    assert!(chunk_rows(&app, id).await > 0);
    let path = app
        .data_dir
        .join("uploads")
        .join(user["user"]["id"].as_str().unwrap())
        .join(format!("{id}.pdf"));
    assert!(path.exists());
    assert_eq!(hit_ids(&app.search(t, "Amazon Glacier", "").await), [id]);

    let r = app.delete(&format!("/api/documents/{id}"), t, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(!path.exists());
    assert_eq!(chunk_rows(&app, id).await, 0);
    app.get(&format!("/api/documents/{id}"), t)
        .await
        .assert_problem(404);
    for mode in ["hybrid", "bm25", "vector"] {
        let r = app
            .search(t, "Amazon Glacier", &format!("&mode={mode}"))
            .await;
        assert!(hit_ids(&r).is_empty(), "{mode}: {}", r.body);
    }
    app.finish().await;
}

#[tokio::test]
async fn reprocessing_twice_leaves_one_set_of_chunks() {
    let app = spawn_app().await;
    let user = app.register("rhea").await;
    let t = token(&user);
    let doc = app.upload(t, INVOICE).await;
    let id = doc["id"].as_str().unwrap();
    let first = app.wait_document(t, id).await;
    let chunks = first["chunks"].as_i64().unwrap();
    assert_eq!(chunk_rows(&app, id).await, chunks);
    // Each job that writes a source's chunks bumps search's generation once.
    let generation = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT value FROM search.shard_generations WHERE shards = 1 AND shard = 0",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    let before = generation().await;
    // Two more deliveries of the same job.
    for _ in 0..2 {
        let r = app
            .post(
                &format!("/api/documents/{id}/reprocess"),
                Some(t),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    // While both jobs run, the document never drops out of search: chunks
    // keep their ids, so the index entries resolve until the new ones land.
    // Searched until both jobs have written their chunks (two generations
    // later) and the document reads indexed.
    let mut searches = 0;
    loop {
        let found = app.search(t, "Amazon Glacier", "&mode=bm25").await;
        assert_eq!(hit_ids(&found), [id], "search #{searches}: {}", found.body);
        searches += 1;
        let doc = app.get(&format!("/api/documents/{id}"), t).await.body;
        let written = generation().await - before;
        assert!(written <= 2, "{written} index writes for two jobs");
        if written == 2 && doc["status"] == "indexed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(searches > 10, "only {searches} searches");
    assert_eq!(chunk_rows(&app, id).await, chunks);
    let ordinals: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT ordinal) FROM search.chunks WHERE source_id = $1",
    )
    .bind(Uuid::parse_str(id).unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(ordinals, chunks);
    assert_eq!(
        hit_ids(&app.search(t, "Amazon Glacier", "&mode=bm25").await),
        [id]
    );
    app.finish().await;
}

#[tokio::test]
async fn deleting_the_account_erases_documents_chunks_files_and_indexes() {
    let app = spawn_app().await;
    let user = app.register("zoe").await;
    let other = app.register("yan").await;
    let t = token(&user);
    let user_id = user["user"]["id"].as_str().unwrap();
    let doc = app.upload(t, INVOICE).await;
    app.wait_document(t, doc["id"].as_str().unwrap()).await;
    let kept = app.upload(token(&other), SMALL).await;
    app.wait_document(token(&other), kept["id"].as_str().unwrap())
        .await;
    let vector_file = app
        .data_dir
        .join("vector_db/vectors")
        .join(format!("{user_id}.usearch"));
    for _ in 0..50 {
        if vector_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(vector_file.exists(), "the user's vector index is on disk");
    let text_dir =
        pai_search::service::text_index_dir(&app.data_dir.join("vector_db")).join(user_id);
    assert!(text_dir.is_dir(), "the user's BM25 index is on disk");

    let r = app
        .delete("/api/users/account", t, Some(json!({"password": PASSWORD})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let uid = Uuid::parse_str(user_id).unwrap();
    let user_dir = app.data_dir.join("uploads").join(user_id);
    let mut left = (i64::MAX, i64::MAX, true, true);
    for _ in 0..100 {
        let documents: i64 =
            sqlx::query_scalar("SELECT count(*) FROM documents.documents WHERE user_id = $1")
                .bind(uid)
                .fetch_one(&app.db)
                .await
                .unwrap();
        let chunks: i64 =
            sqlx::query_scalar("SELECT count(*) FROM search.chunks WHERE user_id = $1")
                .bind(uid)
                .fetch_one(&app.db)
                .await
                .unwrap();
        left = (
            documents,
            chunks,
            user_dir.exists(),
            vector_file.exists() || text_dir.exists(),
        );
        if left == (0, 0, false, false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        left,
        (0, 0, false, false),
        "(documents, chunks, upload folder, vector or BM25 index)"
    );
    // The other user keeps everything.
    let r = app
        .search(token(&other), "round pegs in the square holes", "")
        .await;
    assert_eq!(hit_ids(&r).first().map(String::as_str), kept["id"].as_str());
    app.finish().await;
}

/// (source id, page, text) of each hit, in order.
fn hit_keys(r: &crate::helpers::Response) -> Vec<(String, u64, String)> {
    r.body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["source"]["id"].as_str().unwrap().to_owned(),
                h["source"]["page"].as_u64().unwrap(),
                h["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn deleted_indexes_are_rebuilt_from_the_table_with_identical_results() {
    let mut app = spawn_app().await;
    let user = app.register("ian").await;
    let t = token(&user).to_owned();
    for name in [INVOICE, SMALL, "gen_scotus_transcript_p1.pdf"] {
        let doc = app.upload(&t, name).await;
        app.wait_document(&t, doc["id"].as_str().unwrap()).await;
    }
    let queries = [
        "Amazon Glacier",
        "round pegs",
        "docket number",
        "oral argument date",
    ];
    let mut before = Vec::new();
    for q in queries {
        for mode in ["hybrid", "bm25", "vector"] {
            let r = app.search(&t, q, &format!("&mode={mode}")).await;
            assert!(!hit_keys(&r).is_empty(), "{mode} {q}");
            before.push(hit_keys(&r));
        }
    }
    app.restart(false).await;
    std::fs::remove_dir_all(app.data_dir.join("vector_db")).unwrap();
    app.restart(false).await;
    assert!(app.data_dir.join("vector_db/generation").exists());
    let mut after = Vec::new();
    for q in queries {
        for mode in ["hybrid", "bm25", "vector"] {
            after.push(hit_keys(&app.search(&t, q, &format!("&mode={mode}")).await));
        }
    }
    assert_eq!(before, after);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_loses_nothing() {
    let mut app = spawn_app().await;
    let user = app.register("kim").await;
    let t = token(&user).to_owned();
    // 117 pages: long enough to be caught in the middle.
    let doc = app.upload(&t, "long_geotopo_skript_de_117p.pdf").await;
    let id = doc["id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    loop {
        let status = app.get(&format!("/api/documents/{id}"), &t).await.body["status"].clone();
        if status == "processing" {
            break;
        }
        assert_eq!(status, "queued", "finished before it could be interrupted");
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Killed the moment the job is running, not after a guess of how long
    // it takes; the attempt count below proves it was cut short.
    app.restart(true).await;
    let done = app.wait_document(&t, &id).await;
    assert_eq!(done["status"], "indexed", "{done}");
    assert_eq!(done["pages"], 117);
    // One attempt was killed (never acknowledged, so RabbitMQ redelivered
    // it) and one finished: an attempt that had finished before the kill
    // would have left the count at 1.
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM documents.documents WHERE id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(attempts, 2, "the killed attempt and the one after it");
    assert_eq!(
        chunk_rows(&app, &id).await,
        done["chunks"].as_i64().unwrap()
    );
    app.finish().await;
}
