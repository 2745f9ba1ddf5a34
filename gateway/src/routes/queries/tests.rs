use axum::http::HeaderValue;
use axum::response::IntoResponse;
use serde_json::json;

use super::*;

fn body(value: serde_json::Value) -> AskBody {
    serde_json::from_value(value).unwrap()
}

fn status_of(result: ApiResult<pb::AskRequest>) -> u16 {
    result.err().map_or(200, |problem| problem.status)
}

#[test]
fn a_question_becomes_the_services_request() {
    let id = Uuid::new_v4();
    let request = ask_request(body(json!({
        "query": "What did I pay for electricity in March?",
        "k": 5,
        "category": "financial",
        "document_ids": [id],
        "max_tokens": 256,
    })))
    .unwrap();
    assert_eq!(request.query, "What did I pay for electricity in March?");
    assert_eq!(request.k, 5);
    assert_eq!(request.source_kind, "document");
    assert_eq!(request.category, "financial");
    assert_eq!(request.source_ids, vec![id.to_string()]);
    assert_eq!(request.max_tokens, 256);

    // Left out: the service's defaults (0 and empty).
    let request = ask_request(body(json!({"query": "hello"}))).unwrap();
    assert_eq!((request.k, request.max_tokens), (0, 0));
    assert!(request.source_kind.is_empty() && request.source_ids.is_empty());
    let request = ask_request(body(json!({"query": "hi", "source": "email"}))).unwrap();
    assert_eq!(request.source_kind, "email");
}

#[test]
fn invalid_questions_are_422() {
    for invalid in [
        json!({"query": ""}),
        json!({"query": "  \n\t "}),
        json!({"query": "é".repeat(1001)}),
        json!({"query": "q", "k": 0}),
        json!({"query": "q", "k": 21}),
        json!({"query": "q", "source": "web"}),
        json!({"query": "q", "source": ""}),
        json!({"query": "q", "source": "email", "document_ids": [Uuid::new_v4()]}),
        json!({"query": "q", "document_ids": vec![Uuid::new_v4(); 101]}),
        json!({"query": "q", "max_tokens": 0}),
    ] {
        assert_eq!(
            status_of(ask_request(body(invalid.clone()))),
            422,
            "{invalid}"
        );
    }
    // The limit counts characters, not bytes.
    let longest =
        json!({"query": "é".repeat(1000), "k": 20, "document_ids": vec![Uuid::new_v4(); 100]});
    assert_eq!(status_of(ask_request(body(longest))), 200);
}

#[test]
fn event_streams_are_chosen_by_accept() {
    let accepts = |value: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(value));
        wants_event_stream(&headers)
    };
    assert!(accepts("text/event-stream"));
    assert!(accepts("Text/Event-Stream"));
    assert!(accepts("application/json, text/event-stream;q=0.9"));
    assert!(!accepts("application/json"));
    assert!(!accepts("*/*"));
    assert!(!accepts("text/event-stream; q=0"));
    assert!(!accepts("text/event-stream;q=0.000"));
    assert!(!wants_event_stream(&HeaderMap::new()));
}

fn exhausted(retry_after: Option<&'static str>) -> tonic::Status {
    let mut status = tonic::Status::resource_exhausted("too many questions are waiting");
    if let Some(value) = retry_after {
        status
            .metadata_mut()
            .insert(RETRY_AFTER, value.parse().unwrap());
    }
    status
}

fn retry_after_header(problem: Problem) -> Option<String> {
    let response = problem.into_response();
    response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[test]
fn a_full_queue_is_429_with_the_services_retry_after() {
    let problem = ask_problem(exhausted(Some("7")));
    assert_eq!(problem.status, 429);
    assert_eq!(problem.detail, "too many questions are waiting");
    assert_eq!(problem.extra["retry_after"], 7);
    assert_eq!(retry_after_header(problem).as_deref(), Some("7"));

    // Fractions round up; none, or nonsense, is 1 second.
    for (given, expected) in [
        (Some("2.2"), "3"),
        (None, "1"),
        (Some("soon"), "1"),
        (Some("-4"), "1"),
        (Some("0"), "1"),
    ] {
        let header = retry_after_header(ask_problem(exhausted(given)));
        assert_eq!(header.as_deref(), Some(expected), "{given:?}");
    }
}

#[test]
fn other_failures_map_as_everywhere_else() {
    let problem = ask_problem(tonic::Status::invalid_argument("query: too long"));
    assert_eq!(
        (problem.status, problem.detail.as_str()),
        (422, "query: too long")
    );

    let mut overloaded = tonic::Status::unavailable("model loading at 10.0.0.7");
    overloaded
        .metadata_mut()
        .insert(RETRY_AFTER, "30".parse().unwrap());
    let problem = ask_problem(overloaded);
    assert_eq!(problem.status, 503);
    assert!(!problem.detail.contains("10.0.0.7"));
    assert_eq!(retry_after_header(problem).as_deref(), Some("30"));

    let problem = ask_problem(tonic::Status::internal("llama.cpp: decode failed"));
    assert_eq!(problem.status, 500);
    assert!(!problem.detail.contains("llama"));
    assert_eq!(retry_after_header(problem), None);

    let problem = ask_problem(tonic::Status::unauthenticated("token expired"));
    assert_eq!(problem.status, 401);
}

#[test]
fn a_query_id_that_is_no_uuid_is_not_found() {
    assert_eq!(query_id("nope").unwrap_err().status, 404);
    assert_eq!(query_id("../etc").unwrap_err().status, 404);
    let id = Uuid::new_v4();
    assert_eq!(query_id(&id.to_string()).unwrap().id, id.to_string());
    // Any spelling of a UUID reaches the service as the canonical one.
    assert_eq!(
        query_id(&id.simple().to_string().to_uppercase())
            .unwrap()
            .id,
        id.to_string()
    );
}

/// A record as the inference service stores it.
pub(super) fn record() -> pb::QueryRecord {
    pb::QueryRecord {
        id: "0b7e0a8e-6a3f-4f59-9d61-1f0c2f0c8e11".into(),
        query: "When is the lease up?".into(),
        response: "On 31 May 2026 [1].".into(),
        sources: vec![pb::AnswerSource {
            n: 1,
            source_kind: "document".into(),
            source_id: "5b1c2d3e-0000-4000-8000-000000000001".into(),
            title: "Lease".into(),
            page: 3,
            snippet: "The term ends on 31 May 2026.".into(),
            score: 0.5,
            cited: true,
        }],
        model: "qwen2.5-0.5b-instruct-q4_k_m.gguf".into(),
        timings: Some(pb::AskTimings {
            queue_ms: 1.5,
            retrieval_ms: 12.0,
            first_token_ms: 80.0,
            total_ms: 400.0,
            prompt_tokens: 300,
            generated_tokens: 12,
            prompt_tokens_per_s: 2000.0,
            generation_tokens_per_s: 40.0,
            cached_prompt_tokens: 64,
        }),
        status: "answered".into(),
        error: String::new(),
        created_at: Some(pai_proto::Timestamp {
            seconds: 1_767_225_600,
            nanos: 0,
        }),
    }
}

#[test]
fn a_record_reads_as_documented() {
    let value = serde_json::to_value(QueryRecord::from(record())).unwrap();
    assert_eq!(
        value,
        json!({
            "id": "0b7e0a8e-6a3f-4f59-9d61-1f0c2f0c8e11",
            "query": "When is the lease up?",
            "response": "On 31 May 2026 [1].",
            "sources": [{
                "n": 1,
                "source_kind": "document",
                "source_id": "5b1c2d3e-0000-4000-8000-000000000001",
                "title": "Lease",
                "page": 3,
                "snippet": "The term ends on 31 May 2026.",
                "score": 0.5,
                "cited": true,
            }],
            "model": "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            "status": "answered",
            "error": null,
            "timings": {
                "queue_ms": 1.5,
                "retrieval_ms": 12.0,
                "first_token_ms": 80.0,
                "total_ms": 400.0,
                "prompt_tokens": 300,
                "generated_tokens": 12,
                "prompt_tokens_per_s": 2000.0,
                "generation_tokens_per_s": 40.0,
                "cached_prompt_tokens": 64,
            },
            "created_at": "2026-01-01T00:00:00Z",
        })
    );

    // A failed record names its error; one without timings reads zeros.
    let failed = pb::QueryRecord {
        status: "failed".into(),
        error: "the model could not be loaded".into(),
        timings: None,
        ..record()
    };
    let value = serde_json::to_value(QueryRecord::from(failed)).unwrap();
    assert_eq!(value["error"], "the model could not be loaded");
    assert_eq!(value["timings"]["total_ms"], 0.0);
    assert_eq!(value["timings"]["generated_tokens"], 0);
}

#[test]
fn the_openapi_document_describes_questions() {
    use utoipa::OpenApi;

    let doc = serde_json::to_value(crate::openapi::ApiDoc::openapi()).unwrap();
    let post = &doc["paths"]["/api/queries"]["post"];
    assert_eq!(post["tags"], json!(["queries"]));
    let answer = &post["responses"]["200"]["content"];
    assert!(answer["application/json"].is_object(), "{post:#}");
    assert!(answer["text/event-stream"].is_object(), "{post:#}");
    let full = &post["responses"]["429"];
    assert!(full["headers"]["Retry-After"].is_object(), "{full:#}");
    assert!(full["content"]["application/problem+json"].is_object());
    for path in ["/api/queries", "/api/queries/{id}"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path}");
    }
    assert!(doc["paths"]["/api/queries/{id}"]["delete"].is_object());
    for schema in [
        "QueryRecord",
        "QueryPage",
        "AskBody",
        "AskStarted",
        "AskDelta",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}
