//! RabbitMQ: connecting, the events exchange, the queues every event is
//! routed to, and the outbox relay.
//!
//! A producer writes an outbox row in the same transaction as its state
//! change; [`OutboxRelay`] declares every consumer's queue ([`SUBSCRIPTIONS`])
//! before it publishes, publishes the rows in batches as mandatory messages
//! with publisher confirms, and deletes a row only once RabbitMQ has
//! confirmed it and routed it to a queue, so an event is never lost (it may
//! be published twice after a crash: consumers are idempotent).

mod consumer;
mod queues;
#[cfg(test)]
mod tests;

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use self::consumer::{
    EventRetry, UserDeleted, consume_event_batches, consume_events, consume_user_deleted,
    failed_deliveries,
};
pub use self::queues::{
    DELIVERY_LIMIT, consumer_queue_arguments, conversion_marker_queue, dead_queue_arguments,
    declare_consumer_queues, ensure_consumer_queues, retry_queue_arguments, side_queues,
};
use crate::config::AmqpSettings;

const BATCH: i64 = 100;
const IDLE_POLL: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("RabbitMQ did not confirm a publish to {0}")]
    NotConfirmed(String),
    #[error("no queue is bound to {0}; the event stays in the outbox")]
    Unroutable(String),
    #[error("RabbitMQ closed the consumer of {0}")]
    ConsumerClosed(String),
    #[error(
        "queue {queue} exists with other arguments than pai declares ({detail}); an older pai's classic queues are converted, others are left to an operator"
    )]
    Inequivalent { queue: String, detail: String },
    #[error(
        "{0} is still an older pai's classic queue, with consumers; it becomes a quorum queue once they stop"
    )]
    ClassicQueueInUse(String),
    #[error("another process has been converting the queues of {0} for too long")]
    ConversionBusy(String),
    #[error("RabbitMQ has no queue {0} to move messages to")]
    NoQueue(String),
    #[error("outbox: {0}")]
    Database(#[from] sqlx::Error),
}

pub async fn connect(url: &str) -> Result<Connection, AmqpError> {
    Ok(Connection::connect(url, ConnectionProperties::default()).await?)
}

/// Declares the durable topic exchange that carries pai's events.
pub async fn declare_events_exchange(channel: &Channel, name: &str) -> Result<(), AmqpError> {
    channel
        .exchange_declare(
            name,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// A queue that receives the events with `routing_key`:
/// `{exchange}.{service}.{purpose}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub service: &'static str,
    pub purpose: &'static str,
    pub routing_key: &'static str,
}

impl Subscription {
    pub fn queue(&self, exchange: &str) -> String {
        format!("{exchange}.{}.{}", self.service, self.purpose)
    }
}

/// The routing key of account deletions.
pub const USER_DELETED: &str = "user.deleted";

/// The queue of the documents service's `user.deleted` consumer.
pub const DOCUMENTS_USER_DELETED: Subscription = Subscription {
    service: "documents",
    purpose: "user-deleted",
    routing_key: USER_DELETED,
};

/// The queue of the search service's `user.deleted` consumer.
pub const SEARCH_USER_DELETED: Subscription = Subscription {
    service: "search",
    purpose: "user-deleted",
    routing_key: USER_DELETED,
};

/// The queue of the inference service's `user.deleted` consumer (query history).
pub const INFERENCE_USER_DELETED: Subscription = Subscription {
    service: "inference",
    purpose: "user-deleted",
    routing_key: USER_DELETED,
};

/// The documents service's ingest jobs.
pub const DOCUMENTS_INGEST: Subscription = Subscription {
    service: "documents",
    purpose: "ingest",
    routing_key: "ingest.document",
};

/// The queue of the mail-sync service's `user.deleted` consumer.
pub const MAIL_USER_DELETED: Subscription = Subscription {
    service: "mail",
    purpose: "user-deleted",
    routing_key: USER_DELETED,
};

/// Mail accounts to sync (scheduled, or asked for), spread over the
/// mail-sync replicas.
pub const MAIL_SYNC: Subscription = Subscription {
    service: "mail",
    purpose: "sync",
    routing_key: "mail.sync",
};

/// Stored emails to index for search.
pub const MAIL_INGEST: Subscription = Subscription {
    service: "mail",
    purpose: "ingest",
    routing_key: "ingest.email",
};

/// Every queue pai's services consume events from. The outbox relay
/// declares them all before it publishes, so an event published before its
/// consumer first started waits in the consumer's queue instead of being
/// dropped by the exchange.
pub const SUBSCRIPTIONS: [Subscription; 7] = [
    DOCUMENTS_USER_DELETED,
    SEARCH_USER_DELETED,
    INFERENCE_USER_DELETED,
    DOCUMENTS_INGEST,
    MAIL_USER_DELETED,
    MAIL_SYNC,
    MAIL_INGEST,
];

/// Declares the events exchange and every queue set of [`SUBSCRIPTIONS`]
/// ([`ensure_consumer_queues`]). A classic queue an older pai still
/// consumes is left as it is: its events are still routed to it.
pub async fn declare_subscriptions(settings: &AmqpSettings) -> Result<(), AmqpError> {
    let queues: Vec<String> = SUBSCRIPTIONS
        .iter()
        .map(|subscription| subscription.queue(&settings.events_exchange))
        .collect();
    let sets: Vec<(&str, &str)> = queues
        .iter()
        .zip(SUBSCRIPTIONS)
        .map(|(queue, subscription)| (queue.as_str(), subscription.routing_key))
        .collect();
    match ensure_consumer_queues(settings, &sets).await {
        Err(AmqpError::ClassicQueueInUse(_)) | Ok(()) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Persistent JSON message properties.
pub fn persistent_json() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}

/// Publishes the rows of one service's outbox table to the events exchange.
///
/// The table needs the columns `id bigserial`, `routing_key text` and
/// `payload jsonb`.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    table: String,
    settings: AmqpSettings,
}

impl OutboxRelay {
    pub fn new(pool: PgPool, table: &str, settings: AmqpSettings) -> Self {
        Self {
            pool,
            table: table.to_owned(),
            settings,
        }
    }

    /// Runs until `shutdown` is cancelled, reconnecting with backoff when
    /// RabbitMQ or PostgreSQL goes away (or an event found no queue).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.relay(&shutdown) => result,
            };
            match result {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(error = %err, table = %self.table, "outbox relay failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn relay(&self, shutdown: &CancellationToken) -> Result<(), AmqpError> {
        let connection = connect(&self.settings.url).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        declare_subscriptions(&self.settings).await?;
        loop {
            let published = self.publish_batch(&channel).await?;
            if published == 0 {
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }

    /// Publishes up to one batch and returns how many rows it published.
    /// A row whose event no queue took (RabbitMQ returned the mandatory
    /// message) stays in the outbox: the others are deleted, and the relay
    /// is told to back off and declare the queues again.
    pub async fn publish_batch(&self, channel: &Channel) -> Result<usize, AmqpError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, String, serde_json::Value)> = sqlx::query_as(&format!(
            "SELECT id, routing_key, payload FROM {} ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            self.table
        ))
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut confirms = Vec::with_capacity(rows.len());
        for (id, routing_key, payload) in &rows {
            let body = serde_json::to_vec(payload).unwrap_or_default();
            let confirm = channel
                .basic_publish(
                    &self.settings.events_exchange,
                    routing_key,
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &body,
                    persistent_json(),
                )
                .await?;
            confirms.push((*id, routing_key, confirm));
        }
        let mut published = Vec::with_capacity(rows.len());
        let mut unroutable = None;
        for (id, routing_key, confirm) in confirms {
            match confirm.await? {
                Confirmation::Ack(None) | Confirmation::NotRequested => published.push(id),
                Confirmation::Ack(Some(_)) => {
                    tracing::warn!(%routing_key, table = %self.table, "no queue took an event; keeping it in the outbox");
                    unroutable = Some(routing_key.clone());
                }
                Confirmation::Nack(_) => return Err(AmqpError::NotConfirmed(routing_key.clone())),
            }
        }
        sqlx::query(&format!("DELETE FROM {} WHERE id = ANY($1)", self.table))
            .bind(&published)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        match unroutable {
            Some(routing_key) => Err(AmqpError::Unroutable(routing_key)),
            None => Ok(published.len()),
        }
    }
}
