//! `Embed` end to end on a 127.0.0.1:0 listener, as other services call it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pai_common::Env;
use pai_common::grpc::{LocalServers, bind, channel};
use pai_common::identity::{JwtKeys, ServiceCredential};
use pai_inference::{InferenceSettings, MAX_TEXTS_PER_REQUEST, serve};
use pai_proto::v1::embed_request::Priority;
use pai_proto::v1::inference_internal_client::InferenceInternalClient;
use pai_proto::v1::{EmbedRequest, EmbedResponse};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::{MINUTES, cosine, embedder, model_path};

const SECRET: &str = "test-key-Vx4Lq8RmZ2cT9wNb6KpH3sJd7YfG1aE5";

type Client = InferenceInternalClient<InterceptedService<Channel, ServiceCredential>>;

struct TestServer {
    url: String,
    keys: Arc<JwtKeys>,
    shutdown: CancellationToken,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestServer {
    async fn spawn() -> Self {
        let env = Env::from_pairs([
            ("EMBEDDING_MODEL_PATH", model_path().display().to_string()),
            ("JWT_SECRET_KEY", SECRET.to_owned()),
        ]);
        let settings = InferenceSettings::from_env(&env).unwrap();
        let keys = Arc::new(JwtKeys::new(&settings.jwt));
        let (listener, addr) = bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            settings,
            None,
            listener,
            shutdown.clone(),
            LocalServers::default(),
        ));
        Self {
            url: format!("http://{addr}"),
            keys,
            shutdown,
        }
    }

    fn client(&self) -> Client {
        InferenceInternalClient::with_interceptor(
            channel(&self.url).unwrap(),
            ServiceCredential::new(Arc::clone(&self.keys), "test"),
        )
    }
}

fn request(texts: &[&str], priority: Priority) -> EmbedRequest {
    EmbedRequest {
        texts: texts.iter().map(|t| (*t).to_owned()).collect(),
        priority: priority as i32,
    }
}

fn assert_matches_direct(texts: &[&str], response: &EmbedResponse) {
    let direct = embedder().embed(texts).unwrap();
    assert_eq!(response.embeddings.len(), texts.len());
    for ((text, got), want) in texts.iter().zip(&response.embeddings).zip(&direct) {
        let similarity = cosine(&got.values, want);
        assert!(similarity >= 0.999, "{text:?}: cosine {similarity}");
    }
}

#[tokio::test]
async fn embed_needs_a_service_credential() {
    let server = TestServer::spawn().await;
    let mut anonymous = InferenceInternalClient::new(channel(&server.url).unwrap());
    let status = anonymous
        .embed(request(&["hello"], Priority::Interactive))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let texts = ["What is the invoice total?", "Total amount due: $4.11"];
    let response = server
        .client()
        .embed(request(&texts, Priority::Interactive))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.dimensions, 384);
    assert_eq!(response.model, "all-minilm-l6-v2");
    assert!(response.embeddings.iter().all(|e| e.values.len() == 384));
    assert_matches_direct(&texts, &response);
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let server = TestServer::spawn().await;
    let mut client = server.client();
    let empty = client
        .embed(request(&[], Priority::Bulk))
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let many = vec!["x"; MAX_TEXTS_PER_REQUEST + 1];
    let too_many = client
        .embed(request(&many, Priority::Bulk))
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::OutOfRange);
}

#[tokio::test]
async fn concurrent_callers_get_their_own_vectors() {
    let server = TestServer::spawn().await;
    let topics = [
        "invoice", "holiday", "database", "football", "weather", "piano", "garden", "rocket",
    ];
    let calls = topics.iter().enumerate().map(|(i, topic)| {
        let mut client = server.client();
        let texts = vec![
            format!("A note about the {topic}."),
            format!("Question {i}: where is my {topic}?"),
            format!("{topic} {topic} {topic}, and then some more words about {topic}."),
        ];
        let priority = if i % 2 == 0 {
            Priority::Interactive
        } else {
            Priority::Bulk
        };
        async move {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let response = client.embed(request(&refs, priority)).await.unwrap();
            (texts, response.into_inner())
        }
    });
    for (texts, response) in futures::future::join_all(calls).await {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert_matches_direct(&refs, &response);
    }
}

#[tokio::test]
async fn an_interactive_request_overtakes_a_bulk_one() {
    let server = TestServer::spawn().await;
    // Warm up (the model loads before the first answer).
    server
        .client()
        .embed(request(&["warm up"], Priority::Interactive))
        .await
        .unwrap();

    let chunk = MINUTES.repeat(2);
    let bulk_request = request(&vec![chunk.as_str(); 160], Priority::Bulk);
    let mut bulk_client = server.client();
    let bulk = tokio::spawn(async move {
        let started = Instant::now();
        let response = bulk_client.embed(bulk_request).await.unwrap();
        (started.elapsed(), Instant::now(), response.into_inner())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let query = ["What is the invoice total?"];
    let started = Instant::now();
    let response = server
        .client()
        .embed(request(&query, Priority::Interactive))
        .await
        .unwrap()
        .into_inner();
    let (query_latency, query_done) = (started.elapsed(), Instant::now());
    assert_matches_direct(&query, &response);

    let (bulk_duration, bulk_done, bulk_response) = bulk.await.unwrap();
    assert_eq!(bulk_response.embeddings.len(), 160);
    assert!(
        query_done < bulk_done,
        "query took {query_latency:?}, bulk {bulk_duration:?}"
    );
    assert!(
        query_latency * 3 < bulk_duration,
        "query took {query_latency:?}, bulk {bulk_duration:?}"
    );
}

#[test]
fn a_missing_model_is_a_startup_error_naming_the_variable() {
    let env = Env::from_pairs([
        ("EMBEDDING_MODEL_PATH", "/nonexistent/all-minilm-l6-v2"),
        ("JWT_SECRET_KEY", SECRET),
    ]);
    let err = InferenceSettings::from_env(&env).unwrap_err();
    assert_eq!(err.name, "EMBEDDING_MODEL_PATH");
    assert!(err.reason.contains("make models"), "{err}");
}

#[test]
fn an_unknown_or_missing_kernel_is_a_startup_error_naming_the_variable() {
    let available = pai_inference::Kernel::available();
    let missing = pai_inference::Kernel::ALL
        .into_iter()
        .find(|kernel| !available.contains(kernel))
        .map(|kernel| kernel.name());
    for value in ["sse4"].into_iter().chain(missing) {
        let env = Env::from_pairs([
            ("EMBEDDING_MODEL_PATH", model_path().display().to_string()),
            ("JWT_SECRET_KEY", SECRET.to_owned()),
            ("PAI_INT8_KERNEL", value.to_owned()),
        ]);
        let err = InferenceSettings::from_env(&env).unwrap_err();
        assert_eq!(err.name, "PAI_INT8_KERNEL");
        assert!(err.reason.contains(value), "{err}");
    }
    let env = Env::from_pairs([
        ("EMBEDDING_MODEL_PATH", model_path().display().to_string()),
        ("JWT_SECRET_KEY", SECRET.to_owned()),
        ("PAI_INT8_KERNEL", "portable".to_owned()),
    ]);
    let settings = InferenceSettings::from_env(&env).unwrap();
    assert_eq!(settings.int8_kernel, pai_inference::Kernel::Portable);
}
