//! An answer of the inference service's `Ask` stream, read whole (JSON)
//! or forwarded event by event (server-sent events).
//!
//! The streamed response's body owns the gRPC stream and nothing else reads
//! it: when the client goes away, the body is dropped, the gRPC stream with
//! it, and the inference service cancels the generation.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use pai_common::ErrorCode;
use pai_proto::v1::{self as pb, ask_event};
use serde::Serialize;

use super::ask_problem;
use crate::dto::{AskDelta, AskStarted, QueryRecord};
use crate::metrics;
use crate::problem::{ApiResult, Problem};

/// How often a quiet stream (a question waiting in the queue, a slow
/// first token) sends a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The problem when the service's stream ends without its `done` event.
fn ended_early() -> Problem {
    tracing::warn!("the answer's stream ended before its done event");
    Problem::new(ErrorCode::Internal, pai_common::error::INTERNAL_MESSAGE)
}

/// Reads the stream to its `done` event.
pub(super) async fn whole_answer<S>(events: S) -> ApiResult<QueryRecord>
where
    S: Stream<Item = Result<pb::AskEvent, tonic::Status>>,
{
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event.map_err(ask_problem)?.event {
            Some(ask_event::Event::Done(record)) => return Ok(record.into()),
            Some(ask_event::Event::Started(_) | ask_event::Event::Delta(_)) | None => {}
        }
    }
    Err(ended_early())
}

/// The answer as server-sent events, with keep-alive comments, each event
/// written out as it arrives.
pub(super) fn event_stream<S>(events: S) -> Response
where
    S: Stream<Item = Result<pb::AskEvent, tonic::Status>> + Send + 'static,
{
    let events = AnswerEvents::new(events)
        .map(|event| Ok::<_, std::convert::Infallible>(event.into_event()));
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    // Asks a buffering proxy (nginx) to pass each event on at once.
    let no_buffering = [(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    )];
    (no_buffering, sse).into_response()
}

/// One server-sent event of an answer.
#[derive(Debug)]
enum AnswerEvent {
    Started(AskStarted),
    Delta(AskDelta),
    Done(QueryRecord),
    Error(Problem),
}

impl AnswerEvent {
    fn into_event(self) -> Event {
        let (name, data) = match &self {
            Self::Started(started) => ("started", json(started)),
            Self::Delta(delta) => ("delta", json(delta)),
            Self::Done(record) => ("done", json(record)),
            Self::Error(problem) => ("error", json(problem)),
        };
        Event::default().event(name).data(data)
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|err| {
        tracing::error!(error = %err, "an answer's event did not serialise");
        "{}".to_owned()
    })
}

/// The inference service's stream as the events a client reads. It ends
/// after `done` or `error`; dropped before either (the client went away),
/// it counts the answer as dropped, and the gRPC stream it owns is dropped
/// with it, which cancels the generation.
struct AnswerEvents<S> {
    /// `None` once the answer is complete or failed.
    events: Option<Pin<Box<S>>>,
}

impl<S> AnswerEvents<S> {
    fn new(events: S) -> Self {
        Self {
            events: Some(Box::pin(events)),
        }
    }
}

impl<S> Stream for AnswerEvents<S>
where
    S: Stream<Item = Result<pb::AskEvent, tonic::Status>>,
{
    type Item = AnswerEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AnswerEvent>> {
        let this = self.get_mut();
        loop {
            let Some(events) = this.events.as_mut() else {
                return Poll::Ready(None);
            };
            let answer = match ready!(events.as_mut().poll_next(cx)) {
                Some(Ok(pb::AskEvent { event: Some(event) })) => match event {
                    ask_event::Event::Started(started) => AnswerEvent::Started(AskStarted {
                        query_id: started.query_id,
                        queue_ms: started.queue_ms,
                    }),
                    ask_event::Event::Delta(text) => AnswerEvent::Delta(AskDelta { text }),
                    ask_event::Event::Done(record) => AnswerEvent::Done(record.into()),
                },
                // An event this gateway does not know (a newer service).
                Some(Ok(pb::AskEvent { event: None })) => continue,
                Some(Err(status)) => AnswerEvent::Error(ask_problem(status)),
                None => AnswerEvent::Error(ended_early()),
            };
            if matches!(answer, AnswerEvent::Done(_) | AnswerEvent::Error(_)) {
                // Complete: the gRPC stream is released now.
                this.events = None;
            }
            return Poll::Ready(Some(answer));
        }
    }
}

impl<S> Drop for AnswerEvents<S> {
    fn drop(&mut self) {
        if self.events.is_some() {
            tracing::info!("client closed the answer's stream; generation cancelled");
            metrics::ask_stream_dropped();
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;
    use tokio::sync::oneshot;

    use super::*;
    use crate::routes::queries::tests::record;

    fn event(event: ask_event::Event) -> Result<pb::AskEvent, tonic::Status> {
        Ok(pb::AskEvent { event: Some(event) })
    }

    fn started() -> Result<pb::AskEvent, tonic::Status> {
        event(ask_event::Event::Started(pb::AskStarted {
            query_id: "q1".into(),
            queue_ms: 2.5,
        }))
    }

    fn delta(text: &str) -> Result<pb::AskEvent, tonic::Status> {
        event(ask_event::Event::Delta(text.into()))
    }

    fn done() -> Result<pb::AskEvent, tonic::Status> {
        event(ask_event::Event::Done(record()))
    }

    /// The whole body of a streamed answer.
    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The `(event, data)` pairs of a body.
    fn parse_events(text: &str) -> Vec<(String, serde_json::Value)> {
        text.split("\n\n")
            .filter(|block| !block.is_empty())
            .map(|block| {
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|line| line.strip_prefix(name))
                        .unwrap_or_default()
                        .to_owned()
                };
                let data = serde_json::from_str(&field("data: ")).unwrap();
                (field("event: "), data)
            })
            .collect()
    }

    #[tokio::test]
    async fn events_are_forwarded_in_order_and_end_with_done() {
        let answer = stream::iter([started(), delta("On 31 "), delta("May [1]."), done()]);
        let response = event_stream(answer);
        assert_eq!(
            response.headers()[axum::http::header::CONTENT_TYPE],
            "text/event-stream"
        );
        assert_eq!(response.headers()["x-accel-buffering"], "no");
        let events = parse_events(&body_text(response).await);
        let names: Vec<_> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["started", "delta", "delta", "done"]);
        assert_eq!(
            events[0].1,
            serde_json::json!({"query_id": "q1", "queue_ms": 2.5})
        );
        assert_eq!(events[1].1, serde_json::json!({"text": "On 31 "}));
        assert_eq!(
            events[3].1,
            serde_json::to_value(QueryRecord::from(record())).unwrap()
        );
    }

    #[tokio::test]
    async fn a_failure_midway_is_an_error_event_that_ends_the_stream() {
        let failed = tonic::Status::resource_exhausted("too many questions are waiting");
        let answer = stream::iter([started(), delta("On"), Err(failed), done()]);
        let events = parse_events(&body_text(event_stream(answer)).await);
        let names: Vec<_> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["started", "delta", "error"]);
        assert_eq!(events[2].1["status"], 429);
        assert_eq!(events[2].1["retry_after"], 1);
        assert_eq!(events[2].1["detail"], "too many questions are waiting");

        // A stream that stops without its record fails too.
        let events = parse_events(&body_text(event_stream(stream::iter([started()]))).await);
        assert_eq!(events[1].0, "error");
        assert_eq!(events[1].1["status"], 500);
    }

    /// A stream of `first` then nothing, forever, that reports through the
    /// receiver when it is dropped.
    fn endless(
        first: Vec<Result<pb::AskEvent, tonic::Status>>,
    ) -> (
        impl Stream<Item = Result<pb::AskEvent, tonic::Status>> + Send + 'static,
        oneshot::Receiver<()>,
    ) {
        let (alive, dropped) = oneshot::channel::<()>();
        let answer = stream::iter(first)
            .chain(stream::pending())
            .map(move |event| {
                let _alive = &alive;
                event
            });
        (answer, dropped)
    }

    #[tokio::test]
    async fn a_client_that_leaves_drops_the_grpc_stream() {
        let (answer, mut dropped) = endless(vec![started()]);
        let mut body = event_stream(answer).into_body().into_data_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(first.starts_with(b"event: started\n"));
        assert!(
            dropped
                .try_recv()
                .is_err_and(|e| e == oneshot::error::TryRecvError::Empty)
        );
        // The client goes away: hyper drops the body.
        drop(body);
        assert!(dropped.await.is_err(), "the gRPC stream outlived the body");
    }

    #[tokio::test]
    async fn the_grpc_stream_is_released_after_done() {
        let (answer, dropped) = endless(vec![started(), done()]);
        let mut body = event_stream(answer).into_body().into_data_stream();
        let _started = body.next().await.unwrap().unwrap();
        let done = body.next().await.unwrap().unwrap();
        assert!(done.starts_with(b"event: done\n"));
        assert!(dropped.await.is_err());
        assert!(body.next().await.is_none());
    }

    #[tokio::test]
    async fn a_whole_answer_is_its_record() {
        let answer = stream::iter([started(), delta("On 31 May [1]."), done()]);
        let whole = whole_answer(answer).await.unwrap();
        assert_eq!(whole.response, "On 31 May 2026 [1].");

        let failed = tonic::Status::invalid_argument("query: too long");
        let problem = whole_answer(stream::iter([Err(failed)])).await.unwrap_err();
        assert_eq!(problem.status, 422);
        let problem = whole_answer(stream::iter([started()])).await.unwrap_err();
        assert_eq!(problem.status, 500);
    }
}
