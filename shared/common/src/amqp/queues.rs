//! The queues pai's consumers read from: quorum queues (replicated, so they
//! survive the loss of a RabbitMQ node; a single node is a quorum of one),
//! and the conversion of the classic queues older versions declared.
//!
//! Each consumer queue `Q` comes with two side queues ([`side_queues`]):
//! - `Q`, with `x-delivery-limit` [`DELIVERY_LIMIT`]: a message handed
//!   back that many times more (its consumer died holding it, again and
//!   again) is dead-lettered to `Q.dead`, so an event that crashes its
//!   consumer cannot loop. A failure the handler reports does not count:
//!   the consumer acknowledges the event and copies it to `Q.retry` itself.
//! - `Q.retry`, without consumers: each message's TTL expires back into `Q`.
//! - `Q.dead`: what was given up on.
//!
//! Both dead-letterings are at least once (`x-dead-letter-strategy`, which
//! needs `x-overflow: reject-publish`; no queue has a length limit): a
//! message leaves its queue once the target has it.
//!
//! **Converting an older install.** RabbitMQ cannot change a queue's type,
//! and declaring an existing queue with other arguments fails
//! (PRECONDITION_FAILED, which closes the channel). [`ensure_consumer_queues`]
//! declares the queues on a connection of its own; a set that is not yet
//! quorum queues is converted under a lock (the exclusive queue
//! `{exchange}.queue-conversion`), once its classic `Q` has no consumer
//! (an older pai still running keeps it until it stops):
//! 1. `Q.dead`'s messages move to `Q.dead.converting`, the classic queue is
//!    deleted and declared again as a quorum queue, and the messages move
//!    back;
//! 2. `Q.retry`'s messages move to `Q.converting` (without their TTL: they
//!    are delivered early, their failure count kept), then `Q.retry` is
//!    deleted and declared again;
//! 3. `Q.converting` is bound in `Q`'s place, `Q`'s messages move to it,
//!    `Q` is deleted, declared again and bound, and `Q.converting`'s
//!    messages move back.
//!
//! A move takes a message, publishes it with a confirm (mandatory), and
//! acknowledges it only then. A classic queue is deleted only if empty and
//! unused; a `*.converting` queue (quorum queues cannot check that), which
//! only the conversion publishes to, once unbound and found empty.
//!
//! A conversion cut short is finished by the next declaration. Before it
//! moves anything it leaves a message in `{exchange}.queue-conversions`
//! ([`conversion_marker_queue`]), which is emptied once every set is
//! converted; while that queue holds one, each declaration takes the lock
//! and converts again a set whose `*.converting` queue still exists. Only
//! then are queues looked up by name (a passive declaration, which the
//! broker answers for a missing queue by closing the channel), so a
//! declaration with nothing to convert never fails an operation.

use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Queue};

use super::{AmqpError, connect, declare_events_exchange};
use crate::config::AmqpSettings;

/// How many more times RabbitMQ hands a message of a consumer queue back
/// (its consumer died or lost its connection holding it) before it
/// dead-letters it. Innocent events prefetched beside a poison one are
/// handed back too, hence some room.
pub const DELIVERY_LIMIT: i64 = 20;

/// The suffix of the queue that holds a queue's messages while it is
/// converted.
const CONVERTING: &str = ".converting";
/// How long a conversion waits for another one to finish.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// Deletions tried before a conversion gives up (a queue refilled, or
/// consumed, between the last move and the deletion).
const DELETE_TRIES: usize = 10;
/// How long after an unbinding the events routed just before it may still
/// be on their way to the queue.
const SETTLE: Duration = Duration::from_millis(250);
/// Messages moved per confirm round.
const MOVE_BATCH: usize = 256;

/// The queue that holds a message while a conversion on `exchange` may be
/// unfinished (see the module's documentation).
pub fn conversion_marker_queue(exchange: &str) -> String {
    format!("{exchange}.queue-conversions")
}

/// The retry and dead-letter queues beside `queue`.
pub fn side_queues(queue: &str) -> (String, String) {
    (format!("{queue}.retry"), format!("{queue}.dead"))
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

pub(super) fn quorum() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), text("quorum"));
    arguments
}

/// Quorum queue arguments that dead-letter to `target`, at least once.
fn dead_lettering_to(target: &str) -> FieldTable {
    let mut arguments = quorum();
    arguments.insert("x-dead-letter-exchange".into(), text(""));
    arguments.insert("x-dead-letter-routing-key".into(), text(target));
    arguments.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    arguments.insert("x-overflow".into(), text("reject-publish"));
    arguments
}

/// The arguments of a consumer queue: a quorum queue with the delivery
/// limit, dead-lettering to `{queue}.dead`.
pub fn consumer_queue_arguments(queue: &str) -> FieldTable {
    let (_, dead) = side_queues(queue);
    let mut arguments = dead_lettering_to(&dead);
    arguments.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DELIVERY_LIMIT),
    );
    arguments
}

/// The arguments of `{queue}.retry`: a quorum queue whose expired messages
/// go back to `queue`.
pub fn retry_queue_arguments(queue: &str) -> FieldTable {
    dead_lettering_to(queue)
}

/// The arguments of `{queue}.dead`: a quorum queue.
pub fn dead_queue_arguments() -> FieldTable {
    quorum()
}

/// The arguments older versions declared `{queue}.retry` with (a classic
/// queue).
fn classic_retry_arguments(queue: &str) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-dead-letter-exchange".into(), text(""));
    arguments.insert("x-dead-letter-routing-key".into(), text(queue));
    arguments
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn is_soft(err: &lapin::Error, code: AMQPSoftError) -> bool {
    matches!(err, lapin::Error::ProtocolError(e) if *e.kind() == AMQPErrorKind::Soft(code))
}

/// PRECONDITION_FAILED on `queue` (it exists with other arguments, or is
/// not empty or unused for a deletion) as [`AmqpError::Inequivalent`].
fn on_queue(queue: &str, err: lapin::Error) -> AmqpError {
    if let lapin::Error::ProtocolError(e) = &err
        && *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    {
        return AmqpError::Inequivalent {
            queue: queue.to_owned(),
            detail: e.get_message().to_string(),
        };
    }
    AmqpError::Broker(err)
}

async fn declare(
    channel: &Channel,
    queue: &str,
    arguments: FieldTable,
) -> Result<Queue, AmqpError> {
    channel
        .queue_declare(queue, durable(), arguments)
        .await
        .map_err(|err| on_queue(queue, err))
}

/// Declares what a consumer of `queue` reads from: the events exchange,
/// `queue` bound to `routing_key`, and its side queues ([`side_queues`]),
/// all quorum queues (see the module's documentation). Fails with
/// [`AmqpError::Inequivalent`], closing `channel`, where a queue exists
/// with other arguments (an older pai's classic queue:
/// [`ensure_consumer_queues`] converts those).
pub async fn declare_consumer_queues(
    channel: &Channel,
    exchange: &str,
    queue: &str,
    routing_key: &str,
) -> Result<(), AmqpError> {
    declare_events_exchange(channel, exchange).await?;
    let (retry, dead) = side_queues(queue);
    declare(channel, &dead, dead_queue_arguments()).await?;
    declare(channel, &retry, retry_queue_arguments(queue)).await?;
    declare(channel, queue, consumer_queue_arguments(queue)).await?;
    channel
        .queue_bind(
            queue,
            exchange,
            routing_key,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Declares, on a connection of its own, the events exchange and the
/// queues of each `(queue, routing key)` as [`declare_consumer_queues`]
/// does, converting an older pai's classic queues first (see the module's
/// documentation). A set whose classic queue still has consumers is left
/// as it is (its events are still routed to it) and reported at the end as
/// [`AmqpError::ClassicQueueInUse`].
pub async fn ensure_consumer_queues(
    settings: &AmqpSettings,
    queues: &[(&str, &str)],
) -> Result<(), AmqpError> {
    let connection = connect(&settings.url).await?;
    let mut open = Vec::new();
    let result = ensure_on(&connection, &settings.events_exchange, queues, &mut open).await;
    // Closing the connection also releases the conversion lock, and closes
    // the channels kept `open` till then: one dropped before closes in the
    // background, racing the connection's close (lapin logs that as a
    // connection error).
    if let Err(err) = connection.close(200, "queues declared").await {
        tracing::debug!(error = %err, "closing the queue declaration connection");
    }
    drop(open);
    result
}

async fn ensure_on(
    connection: &Connection,
    exchange: &str,
    queues: &[(&str, &str)],
    open: &mut Vec<Channel>,
) -> Result<(), AmqpError> {
    let marker = conversion_marker_queue(exchange);
    let marks = channel(connection).await?;
    let unfinished = declare(&marks, &marker, quorum()).await?.message_count() > 0;
    open.push(marks);
    // An unfinished conversion may still be running: wait for it.
    let mut locked = unfinished;
    if locked {
        lock(connection, exchange).await?;
    }
    let mut in_use = None;
    for &(queue, routing_key) in queues {
        if is_current(connection, exchange, queue, routing_key, unfinished, open).await? {
            continue;
        }
        if !locked {
            lock(connection, exchange).await?;
            locked = true;
        }
        mark(connection, &marker).await?;
        match convert(connection, exchange, queue, routing_key).await {
            Ok(()) => tracing::info!(%queue, "queues converted to quorum queues"),
            Err(AmqpError::ClassicQueueInUse(queue)) => {
                tracing::warn!(%queue, "an older pai still consumes this classic queue; it is converted once it stops");
                in_use = Some(queue);
            }
            Err(err) => return Err(err),
        }
    }
    if locked {
        // Every set is converted, or left untouched while in use.
        channel(connection)
            .await?
            .queue_purge(&marker, QueuePurgeOptions::default())
            .await?;
    }
    in_use.map_or(Ok(()), |queue| Err(AmqpError::ClassicQueueInUse(queue)))
}

/// Leaves a message in `marker`: a conversion begins.
async fn mark(connection: &Connection, marker: &str) -> Result<(), AmqpError> {
    let confirm = channel(connection)
        .await?
        .basic_publish(
            "",
            marker,
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            b"converting",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?
        .await?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => Err(AmqpError::NoQueue(marker.to_owned())),
        Confirmation::Nack(_) | Confirmation::NotRequested => {
            Err(AmqpError::NotConfirmed(marker.to_owned()))
        }
    }
}

/// Whether `queue`'s set is declared as pai declares it, with no conversion
/// left half done (looked for only where one may be: `unfinished`).
async fn is_current(
    connection: &Connection,
    exchange: &str,
    queue: &str,
    routing_key: &str,
    unfinished: bool,
    open: &mut Vec<Channel>,
) -> Result<bool, AmqpError> {
    let channel = connection.create_channel().await?;
    match declare_consumer_queues(&channel, exchange, queue, routing_key).await {
        Ok(()) => open.push(channel),
        // The refusal closed the channel.
        Err(AmqpError::Inequivalent { .. }) => return Ok(false),
        Err(err) => return Err(err),
    }
    if !unfinished {
        return Ok(true);
    }
    let (_, dead) = side_queues(queue);
    for name in [queue, dead.as_str()] {
        if exists(connection, &converting(name)).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn converting(queue: &str) -> String {
    format!("{queue}{CONVERTING}")
}

async fn exists(connection: &Connection, queue: &str) -> Result<bool, AmqpError> {
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(queue, passive, FieldTable::default())
        .await
    {
        Ok(_) => Ok(true),
        Err(err) if is_soft(&err, AMQPSoftError::NOTFOUND) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Takes the exclusive queue `{exchange}.queue-conversion`, held by
/// `connection` until it closes; waits while another process holds it.
async fn lock(connection: &Connection, exchange: &str) -> Result<(), AmqpError> {
    let name = format!("{exchange}.queue-conversion");
    let started = Instant::now();
    loop {
        let channel = connection.create_channel().await?;
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(&name, exclusive, FieldTable::default())
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) if is_soft(&err, AMQPSoftError::RESOURCELOCKED) => {
                if started.elapsed() > LOCK_WAIT {
                    return Err(AmqpError::ConversionBusy(exchange.to_owned()));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// `Some` (with its counts) where `queue` is a classic queue declared with
/// `classic_arguments`, as an older pai did; `None` where it is (or now
/// is) the quorum queue of `arguments`.
async fn classic(
    connection: &Connection,
    queue: &str,
    arguments: FieldTable,
    classic_arguments: FieldTable,
) -> Result<Option<Queue>, AmqpError> {
    let channel = connection.create_channel().await?;
    let inequivalent = match declare(&channel, queue, arguments).await {
        Ok(_) => return Ok(None),
        Err(err @ AmqpError::Inequivalent { .. }) => err,
        Err(err) => return Err(err),
    };
    let channel = connection.create_channel().await?;
    match declare(&channel, queue, classic_arguments).await {
        Ok(declared) => Ok(Some(declared)),
        // Neither pai's nor an older pai's: leave it to an operator.
        Err(AmqpError::Inequivalent { .. }) => Err(inequivalent),
        Err(err) => Err(err),
    }
}

/// Converts `queue`'s set to quorum queues, under the lock.
async fn convert(
    connection: &Connection,
    exchange: &str,
    queue: &str,
    routing_key: &str,
) -> Result<(), AmqpError> {
    let (retry, dead) = side_queues(queue);
    let parked = converting(queue);
    let old = classic(
        connection,
        queue,
        consumer_queue_arguments(queue),
        FieldTable::default(),
    )
    .await?;
    if old.as_ref().is_some_and(|old| old.consumer_count() > 0) {
        return Err(AmqpError::ClassicQueueInUse(queue.to_owned()));
    }

    let parked_dead = converting(&dead);
    if classic(
        connection,
        &dead,
        dead_queue_arguments(),
        FieldTable::default(),
    )
    .await?
    .is_some()
    {
        move_out(connection, &dead, &parked_dead).await?;
        declare(&channel(connection).await?, &dead, dead_queue_arguments()).await?;
    }
    move_back(connection, &parked_dead, &dead, None).await?;

    if classic(
        connection,
        &retry,
        retry_queue_arguments(queue),
        classic_retry_arguments(queue),
    )
    .await?
    .is_some()
    {
        move_out(connection, &retry, &parked).await?;
        declare(
            &channel(connection).await?,
            &retry,
            retry_queue_arguments(queue),
        )
        .await?;
    }

    if old.is_some() {
        // New events go to the parked queue while `queue` is replaced.
        let channel = channel(connection).await?;
        declare(&channel, &parked, quorum()).await?;
        channel
            .queue_bind(
                &parked,
                exchange,
                routing_key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_unbind(queue, exchange, routing_key, FieldTable::default())
            .await?;
        tokio::time::sleep(SETTLE).await;
        move_out(connection, queue, &parked).await?;
    }
    declare_consumer_queues(&channel(connection).await?, exchange, queue, routing_key).await?;
    move_back(connection, &parked, queue, Some((exchange, routing_key))).await
}

/// A channel with publisher confirms.
async fn channel(connection: &Connection) -> Result<Channel, AmqpError> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Moves every message of the classic queue `queue` to the quorum queue
/// `parked`, then deletes `queue` if it is empty and unused.
async fn move_out(connection: &Connection, queue: &str, parked: &str) -> Result<(), AmqpError> {
    declare(&channel(connection).await?, parked, quorum()).await?;
    drain_and_delete(connection, queue, parked, true).await
}

/// Moves what `parked` holds (if it exists) to `queue`, then deletes it;
/// unbinds it first where it was bound in `queue`'s place.
async fn move_back(
    connection: &Connection,
    parked: &str,
    queue: &str,
    binding: Option<(&str, &str)>,
) -> Result<(), AmqpError> {
    if !exists(connection, parked).await? {
        return Ok(());
    }
    if let Some((exchange, routing_key)) = binding {
        channel(connection)
            .await?
            .queue_unbind(parked, exchange, routing_key, FieldTable::default())
            .await?;
        tokio::time::sleep(SETTLE).await;
    }
    drain_and_delete(connection, parked, queue, false).await
}

/// Moves `from`'s messages to `to`, then deletes `from`: a classic queue
/// only if empty and unused (again if not); a parked quorum queue (which
/// cannot check that, and which only this conversion publishes to, by name)
/// once a move found nothing.
async fn drain_and_delete(
    connection: &Connection,
    from: &str,
    to: &str,
    classic: bool,
) -> Result<(), AmqpError> {
    let mut last = None;
    for _ in 0..DELETE_TRIES {
        let channel = channel(connection).await?;
        let moved = drain(&channel, from, to).await?;
        tracing::info!(from, to, moved, "moved messages");
        if !classic && moved > 0 {
            continue;
        }
        let delete = QueueDeleteOptions {
            if_empty: classic,
            if_unused: classic,
            ..QueueDeleteOptions::default()
        };
        match channel
            .queue_delete(from, delete)
            .await
            .map_err(|err| on_queue(from, err))
        {
            Ok(_) => return Ok(()),
            // Refilled or consumed since: move again.
            Err(err @ AmqpError::Inequivalent { .. }) => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| AmqpError::Inequivalent {
        queue: from.to_owned(),
        detail: "still receiving messages".to_owned(),
    }))
}

/// Moves `from`'s messages to the queue `to`: each is acknowledged once
/// RabbitMQ confirmed its copy in `to`. Returns how many moved.
async fn drain(channel: &Channel, from: &str, to: &str) -> Result<usize, AmqpError> {
    let mut moved = 0;
    loop {
        let mut batch = Vec::new();
        while batch.len() < MOVE_BATCH {
            match channel
                .basic_get(from, BasicGetOptions { no_ack: false })
                .await?
            {
                Some(message) => batch.push(message.delivery),
                None => break,
            }
        }
        let Some(last) = batch.last() else {
            return Ok(moved);
        };
        let mut confirms = Vec::with_capacity(batch.len());
        for delivery in &batch {
            confirms.push(
                channel
                    .basic_publish(
                        "",
                        to,
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &delivery.data,
                        moved_properties(&delivery.properties),
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(_)) => return Err(AmqpError::NoQueue(to.to_owned())),
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    return Err(AmqpError::NotConfirmed(to.to_owned()));
                }
            }
        }
        channel
            .basic_ack(last.delivery_tag, BasicAckOptions { multiple: true })
            .await?;
        moved += batch.len();
    }
}

/// A moved message's properties: the same, without its TTL (it would
/// expire, unseen, from a queue without a dead-letter target), its sender
/// (RabbitMQ checks it against this connection's user) and the delivery
/// count the source queue added.
fn moved_properties(properties: &BasicProperties) -> BasicProperties {
    let mut moved = BasicProperties::default();
    if let Some(value) = properties.content_type() {
        moved = moved.with_content_type(value.clone());
    }
    if let Some(value) = properties.content_encoding() {
        moved = moved.with_content_encoding(value.clone());
    }
    if let Some(headers) = properties.headers() {
        let mut headers = headers.inner().clone();
        headers.remove("x-delivery-count");
        moved = moved.with_headers(FieldTable::from(headers));
    }
    if let Some(value) = properties.delivery_mode() {
        moved = moved.with_delivery_mode(*value);
    }
    if let Some(value) = properties.priority() {
        moved = moved.with_priority(*value);
    }
    if let Some(value) = properties.correlation_id() {
        moved = moved.with_correlation_id(value.clone());
    }
    if let Some(value) = properties.reply_to() {
        moved = moved.with_reply_to(value.clone());
    }
    if let Some(value) = properties.message_id() {
        moved = moved.with_message_id(value.clone());
    }
    if let Some(value) = properties.timestamp() {
        moved = moved.with_timestamp(*value);
    }
    if let Some(value) = properties.kind() {
        moved = moved.with_type(value.clone());
    }
    if let Some(value) = properties.app_id() {
        moved = moved.with_app_id(value.clone());
    }
    if let Some(value) = properties.cluster_id() {
        moved = moved.with_cluster_id(value.clone());
    }
    moved
}
