//! Event consumers: a durable queue bound to one routing key, each event
//! acknowledged only after its handler succeeded. A failed event is not
//! requeued in place: it waits in `{queue}.retry` (a per-message TTL that
//! grows with each failure; expired messages go back to the queue) and,
//! after [`EventRetry::max_deliveries`] failed deliveries, lands in
//! `{queue}.dead` with the last reason, so a poison event never loops and
//! never holds up the events behind it. The queues are quorum queues
//! ([`super::queues`]), whose delivery limit also dead-letters an event
//! that crashes its consumer again and again.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use tokio_util::sync::CancellationToken;

use super::{AmqpError, MAX_BACKOFF, Subscription, connect, ensure_consumer_queues, side_queues};
use crate::config::{AmqpSettings, ConfigError, Env};

/// The header counting an event's failed deliveries.
pub const DELIVERIES_HEADER: &str = "x-pai-failed-deliveries";
/// The header holding the last failure's reason (on dead events).
pub const REASON_HEADER: &str = "x-pai-failure";
/// The longest wait between two deliveries of a failing event.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// How often, and how far apart, a failing event is delivered again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRetry {
    /// Deliveries that fail before the event goes to the dead-letter queue.
    pub max_deliveries: u32,
    /// The wait after the first failure; each next one is four times
    /// longer, at most 5 minutes.
    pub first_delay: Duration,
}

impl Default for EventRetry {
    /// Ten deliveries over about 26 minutes: an outage of the service's
    /// database shorter than that loses no event.
    fn default() -> Self {
        Self {
            max_deliveries: 10,
            first_delay: Duration::from_secs(1),
        }
    }
}

impl EventRetry {
    /// `EVENT_MAX_DELIVERIES` (at least 1) and `EVENT_RETRY_DELAY_MS`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let default = Self::default();
        let max_deliveries = env.parse("EVENT_MAX_DELIVERIES", default.max_deliveries)?;
        if max_deliveries == 0 {
            return Err(ConfigError::new(
                "EVENT_MAX_DELIVERIES",
                "must be at least 1",
            ));
        }
        let first_delay = Duration::from_millis(env.parse(
            "EVENT_RETRY_DELAY_MS",
            u64::try_from(default.first_delay.as_millis()).unwrap_or(1000),
        )?);
        Ok(Self {
            max_deliveries,
            first_delay,
        })
    }

    /// The wait before delivery `failed + 1`, after `failed` failures.
    pub fn delay(&self, failed: u32) -> Duration {
        let exponent = failed.saturating_sub(1).min(16);
        self.first_delay
            .saturating_mul(4u32.saturating_pow(exponent))
            .min(MAX_RETRY_DELAY)
    }
}

/// How many deliveries of this event failed before this one.
pub fn failed_deliveries(properties: &BasicProperties) -> u32 {
    properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(DELIVERIES_HEADER))
        .and_then(|value| {
            value
                .as_long_long_int()
                .or_else(|| value.as_long_int().map(i64::from))
                .or_else(|| value.as_long_uint().map(i64::from))
        })
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// Consumes the events with `routing_key` from the events exchange through
/// the durable queue `queue`, calling `handler` for each and acknowledging
/// it once handled; a failure is retried as `retry` says, then dead-lettered.
/// Reconnects with backoff until `shutdown` is cancelled.
pub async fn consume_events<F, Fut>(
    settings: AmqpSettings,
    retry: EventRetry,
    queue: String,
    routing_key: &'static str,
    shutdown: CancellationToken,
    handler: F,
) where
    F: Fn(Vec<u8>) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let handler = &handler;
    consume_event_batches(
        settings,
        retry,
        queue,
        routing_key,
        1,
        shutdown,
        move |bodies: Vec<Vec<u8>>| async move {
            let mut results = Vec::with_capacity(bodies.len());
            for body in bodies {
                results.push(handler(body).await);
            }
            results
        },
    )
    .await;
}

/// [`consume_events`] for handlers that do many events at once better than
/// one by one: `handler` gets up to `max_batch` events that were waiting
/// (never waiting for more to arrive) and returns one result per event, in
/// order; each is acknowledged, retried or dead-lettered on its own.
pub async fn consume_event_batches<F, Fut>(
    settings: AmqpSettings,
    retry: EventRetry,
    queue: String,
    routing_key: &'static str,
    max_batch: usize,
    shutdown: CancellationToken,
    handler: F,
) where
    F: Fn(Vec<Vec<u8>>) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Vec<Result<(), String>>> + Send,
{
    let max_batch = max_batch.max(1);
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = consume_once(&settings, retry, &queue, routing_key, max_batch, &shutdown, &handler) => result,
        };
        match result {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %err, %queue, "event consumer failed; reconnecting");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn consume_once<F, Fut>(
    settings: &AmqpSettings,
    retry: EventRetry,
    queue: &str,
    routing_key: &str,
    max_batch: usize,
    shutdown: &CancellationToken,
    handler: &F,
) -> Result<(), AmqpError>
where
    F: Fn(Vec<Vec<u8>>) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Vec<Result<(), String>>> + Send,
{
    ensure_consumer_queues(settings, &[(queue, routing_key)]).await?;
    let connection = connect(&settings.url).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let prefetch = u16::try_from(max_batch.max(16)).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = consumer.next() => match next {
                Some(delivery) => delivery?,
                None => return Err(AmqpError::ConsumerClosed(queue.to_owned())),
            },
        };
        let mut deliveries = vec![first];
        while deliveries.len() < max_batch {
            match consumer.next().now_or_never() {
                Some(Some(delivery)) => deliveries.push(delivery?),
                Some(None) => return Err(AmqpError::ConsumerClosed(queue.to_owned())),
                None => break,
            }
        }
        let results = handler(deliveries.iter().map(|d| d.data.clone()).collect()).await;
        for (index, delivery) in deliveries.iter().enumerate() {
            let outcome = results
                .get(index)
                .cloned()
                .unwrap_or_else(|| Err("the handler gave no result for this event".to_owned()));
            if let Err(reason) = outcome {
                set_aside(&channel, retry, queue, delivery, &reason).await?;
            }
            delivery.ack(BasicAckOptions::default()).await?;
        }
    }
}

/// Sends a failed event to the retry queue, or to the dead-letter queue
/// once it has failed `retry.max_deliveries` times. Returns only once
/// RabbitMQ has confirmed the copy, so the original may be acknowledged.
async fn set_aside(
    channel: &Channel,
    retry: EventRetry,
    queue: &str,
    delivery: &Delivery,
    reason: &str,
) -> Result<(), AmqpError> {
    let failed = failed_deliveries(&delivery.properties).saturating_add(1);
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        DELIVERIES_HEADER.into(),
        AMQPValue::LongLongInt(i64::from(failed)),
    );
    let mut properties = super::persistent_json();
    let (retry_queue, dead_queue) = side_queues(queue);
    let target = if failed >= retry.max_deliveries {
        tracing::error!(%queue, failed, %reason, "event failed too often; moved to the dead-letter queue");
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        dead_queue
    } else {
        let delay = retry.delay(failed);
        tracing::warn!(%queue, failed, ?delay, %reason, "event handling failed; will retry");
        properties = properties.with_expiration(ShortString::from(delay.as_millis().to_string()));
        retry_queue
    };
    let confirm = channel
        .basic_publish(
            "",
            &target,
            BasicPublishOptions::default(),
            &delivery.data,
            properties.with_headers(headers),
        )
        .await?
        .await?;
    if confirm.is_nack() {
        return Err(AmqpError::NotConfirmed(target));
    }
    Ok(())
}

/// Erases every deleted user's data in a service: consumes `user.deleted`
/// through `subscription`'s queue (one of [`super::SUBSCRIPTIONS`]) and
/// calls `erase` with the user id (which returns how many items it removed). Failures are
/// retried as `retry` says, then dead-lettered.
pub async fn consume_user_deleted<F, Fut>(
    settings: AmqpSettings,
    retry: EventRetry,
    subscription: Subscription,
    shutdown: CancellationToken,
    erase: F,
) where
    F: Fn(uuid::Uuid) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<u64, String>> + Send,
{
    let queue = subscription.queue(&settings.events_exchange);
    let service = subscription.service;
    let erase = &erase;
    consume_events(
        settings,
        retry,
        queue,
        subscription.routing_key,
        shutdown,
        move |body| async move {
            let event: UserDeleted = serde_json::from_slice(&body)
                .map_err(|e| format!("malformed user.deleted: {e}"))?;
            let removed = erase(event.user_id).await?;
            tracing::info!(user_id = %event.user_id, service, removed, "erased a deleted user's data");
            Ok(())
        },
    )
    .await;
}

/// The payload of `user.deleted`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UserDeleted {
    pub user_id: uuid::Uuid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_five_minutes() {
        let retry = EventRetry::default();
        let waits: Vec<u64> = (1..=7).map(|n| retry.delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 4, 16, 64, 256, 300, 300]);
        assert_eq!(retry.delay(u32::MAX), MAX_RETRY_DELAY);
    }

    #[test]
    fn retry_settings_come_from_the_environment() {
        let env = Env::from_pairs([
            ("EVENT_MAX_DELIVERIES", "3".to_owned()),
            ("EVENT_RETRY_DELAY_MS", "50".to_owned()),
        ]);
        assert_eq!(
            EventRetry::from_env(&env).ok(),
            Some(EventRetry {
                max_deliveries: 3,
                first_delay: Duration::from_millis(50),
            })
        );
        let zero = Env::from_pairs([("EVENT_MAX_DELIVERIES", "0".to_owned())]);
        assert!(EventRetry::from_env(&zero).is_err());
    }

    #[test]
    fn failed_deliveries_are_read_from_the_header() {
        assert_eq!(failed_deliveries(&BasicProperties::default()), 0);
        let mut headers = FieldTable::default();
        headers.insert(DELIVERIES_HEADER.into(), AMQPValue::LongLongInt(4));
        let properties = BasicProperties::default().with_headers(headers);
        assert_eq!(failed_deliveries(&properties), 4);
    }
}
