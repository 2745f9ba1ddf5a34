//! RabbitMQ: connecting, the events exchange, and the outbox relay.
//!
//! A producer writes an outbox row in the same transaction as its state
//! change; [`OutboxRelay`] publishes the rows in batches with publisher
//! confirms and deletes them only once RabbitMQ has confirmed them, so an
//! event is never lost (it may be published twice after a crash: consumers
//! are idempotent).

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

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
    #[error("RabbitMQ closed the consumer of {0}")]
    ConsumerClosed(String),
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
    /// RabbitMQ or PostgreSQL goes away.
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
        declare_events_exchange(&channel, &self.settings.events_exchange).await?;
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
        for (_, routing_key, payload) in &rows {
            let body = serde_json::to_vec(payload).unwrap_or_default();
            let confirm = channel
                .basic_publish(
                    &self.settings.events_exchange,
                    routing_key,
                    BasicPublishOptions::default(),
                    &body,
                    persistent_json(),
                )
                .await?;
            confirms.push((routing_key, confirm));
        }
        for (routing_key, confirm) in confirms {
            match confirm.await? {
                Confirmation::Ack(_) | Confirmation::NotRequested => {}
                Confirmation::Nack(_) => return Err(AmqpError::NotConfirmed(routing_key.clone())),
            }
        }
        let ids: Vec<i64> = rows.iter().map(|(id, _, _)| *id).collect();
        sqlx::query(&format!("DELETE FROM {} WHERE id = ANY($1)", self.table))
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows.len())
    }
}

/// Consumes the events with `routing_key` from the events exchange through
/// the durable queue `queue`, calling `handler` for each and acknowledging
/// only after it succeeded (a failure is retried after a pause). Reconnects
/// with backoff until `shutdown` is cancelled.
pub async fn consume_events<F, Fut>(
    settings: AmqpSettings,
    queue: String,
    routing_key: &'static str,
    shutdown: CancellationToken,
    handler: F,
) where
    F: Fn(Vec<u8>) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = consume_once(&settings, &queue, routing_key, &shutdown, &handler) => result,
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
    queue: &str,
    routing_key: &str,
    shutdown: &CancellationToken,
    handler: &F,
) -> Result<(), AmqpError>
where
    F: Fn(Vec<u8>) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    use futures::StreamExt;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueBindOptions,
        QueueDeclareOptions,
    };

    let connection = connect(&settings.url).await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(16, BasicQosOptions::default()).await?;
    declare_events_exchange(&channel, &settings.events_exchange).await?;
    channel
        .queue_declare(
            queue,
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue,
            &settings.events_exchange,
            routing_key,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
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
        let delivery = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = consumer.next() => match next {
                Some(delivery) => delivery?,
                None => return Err(AmqpError::ConsumerClosed(queue.to_owned())),
            },
        };
        match handler(delivery.data.clone()).await {
            Ok(()) => delivery.ack(BasicAckOptions::default()).await?,
            Err(reason) => {
                tracing::warn!(%queue, %reason, "event handling failed; will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await?;
            }
        }
    }
}

/// Erases every deleted user's data in `service`: consumes `user.deleted`
/// through the queue `{exchange}.{service}.user-deleted` and calls `erase`
/// with the user id (which returns how many items it removed).
pub async fn consume_user_deleted<F, Fut>(
    settings: AmqpSettings,
    service: &'static str,
    shutdown: CancellationToken,
    erase: F,
) where
    F: Fn(uuid::Uuid) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<u64, String>> + Send,
{
    let queue = format!("{}.{service}.user-deleted", settings.events_exchange);
    let erase = &erase;
    consume_events(settings, queue, "user.deleted", shutdown, move |body| async move {
        let event: UserDeleted =
            serde_json::from_slice(&body).map_err(|e| format!("malformed user.deleted: {e}"))?;
        let removed = erase(event.user_id).await?;
        tracing::info!(user_id = %event.user_id, service, removed, "erased a deleted user's data");
        Ok(())
    })
    .await;
}

/// The payload of `user.deleted`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UserDeleted {
    pub user_id: uuid::Uuid,
}
