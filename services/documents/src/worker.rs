//! The ingest worker: consumes `ingest.document` jobs with bounded prefetch
//! and manual acks. A job whose failure is not the file's fault is retried
//! through a delay queue with growing waits; after `max_attempts` it goes to
//! the dead-letter queue and the document shows `failed` with the reason.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, message::Delivery};
use pai_common::amqp::{self, AmqpError};
use pai_common::config::AmqpSettings;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::service::{DocumentsCore, IngestJob, Outcome};

const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The wait before a job that failed for want of our database or disk
/// comes back.
const OUTAGE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Queue names, derived from the events exchange so that two stacks on one
/// broker (tests) never share a queue.
#[derive(Debug, Clone)]
pub struct Queues {
    pub ingest: String,
    pub retry: String,
    pub dead: String,
}

impl Queues {
    pub fn new(exchange: &str) -> Self {
        let ingest = amqp::DOCUMENTS_INGEST.queue(exchange);
        let (retry, dead) = amqp::side_queues(&ingest);
        Self {
            ingest,
            retry,
            dead,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub amqp: AmqpSettings,
    /// Jobs processed at once (and the prefetch).
    pub concurrency: u16,
    pub max_attempts: i32,
    /// The first retry waits this long; each next one four times longer.
    pub retry_delay: Duration,
}

/// Runs the worker until `shutdown` is cancelled, reconnecting with backoff.
pub async fn run(core: Arc<DocumentsCore>, settings: WorkerSettings, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = consume(&core, &settings, &shutdown) => result,
        };
        match result {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %err, "ingest worker lost RabbitMQ; reconnecting");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn consume(
    core: &Arc<DocumentsCore>,
    settings: &WorkerSettings,
    shutdown: &CancellationToken,
) -> Result<(), AmqpError> {
    let queues = Queues::new(&settings.amqp.events_exchange);
    let connection = amqp::connect(&settings.amqp.url).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .basic_qos(settings.concurrency, BasicQosOptions::default())
        .await?;
    amqp::declare_consumer_queues(
        &channel,
        &settings.amqp.events_exchange,
        &queues.ingest,
        amqp::DOCUMENTS_INGEST.routing_key,
    )
    .await?;
    let consumer = channel
        .basic_consume(
            &queues.ingest,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let processing = consumer.take_until(shutdown.cancelled()).for_each_concurrent(
        usize::from(settings.concurrency),
        |delivery| {
            let channel = channel.clone();
            let queues = queues.clone();
            async move {
                match delivery {
                    Ok(delivery) => {
                        if let Err(err) = handle(core, settings, &channel, &queues, delivery).await {
                            tracing::warn!(error = %err, "ingest job not acknowledged; RabbitMQ will redeliver it");
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "ingest delivery failed"),
                }
            }
        },
    );
    processing.await;
    if shutdown.is_cancelled() {
        Ok(())
    } else {
        Err(AmqpError::ConsumerClosed(queues.ingest))
    }
}

async fn publish(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    expiration: Option<Duration>,
) -> Result<(), AmqpError> {
    let mut properties: BasicProperties = amqp::persistent_json();
    if let Some(delay) = expiration {
        properties = properties.with_expiration(ShortString::from(delay.as_millis().to_string()));
    }
    let confirm = channel
        .basic_publish("", queue, BasicPublishOptions::default(), body, properties)
        .await?
        .await?;
    if confirm.is_nack() {
        return Err(AmqpError::NotConfirmed(queue.to_owned()));
    }
    Ok(())
}

async fn handle(
    core: &DocumentsCore,
    settings: &WorkerSettings,
    channel: &Channel,
    queues: &Queues,
    delivery: Delivery,
) -> Result<(), AmqpError> {
    let Ok(job) = serde_json::from_slice::<IngestJob>(&delivery.data) else {
        tracing::warn!("malformed ingest job moved to the dead-letter queue");
        publish(channel, &queues.dead, &delivery.data, None).await?;
        delivery.ack(BasicAckOptions::default()).await?;
        return Ok(());
    };
    let span = pai_common::trace_context::job_span("ingest document", &job.trace);
    let outcome = match core.process(&job).instrument(span).await {
        Ok(outcome) => outcome,
        // Our own database or disk failed, not the job: it comes back
        // through the retry queue after a pause, however long the outage (a
        // nack would count towards the queue's delivery limit, which
        // dead-letters a job its worker keeps dying on).
        Err(err) => {
            tracing::warn!(document_id = %job.document_id, error = %err, "ingest attempt failed; retrying in a second");
            publish(
                channel,
                &queues.retry,
                &delivery.data,
                Some(OUTAGE_RETRY_DELAY),
            )
            .await?;
            delivery.ack(BasicAckOptions::default()).await?;
            return Ok(());
        }
    };
    match outcome {
        Outcome::Indexed | Outcome::Failed(_) | Outcome::Gone => {}
        Outcome::Retry { reason, attempts } if attempts < settings.max_attempts => {
            let exponent = u32::try_from(attempts.max(1) - 1).unwrap_or(0);
            let delay = settings.retry_delay * 4u32.saturating_pow(exponent);
            tracing::info!(document_id = %job.document_id, attempts, ?delay, %reason, "ingest will be retried");
            publish(channel, &queues.retry, &delivery.data, Some(delay)).await?;
        }
        Outcome::Retry { reason, attempts } => {
            let reason = format!("{reason} (gave up after {attempts} attempts)");
            if let Err(err) = core.mark_failed(&job, &reason).await {
                tracing::warn!(error = %err, "could not mark the document failed");
            }
            publish(channel, &queues.dead, &delivery.data, None).await?;
        }
    }
    delivery.ack(BasicAckOptions::default()).await?;
    Ok(())
}
