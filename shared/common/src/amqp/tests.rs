//! Against the RabbitMQ at `PAI_TEST_AMQP_URL`: every test uses an exchange
//! and queues of its own and deletes them at the end.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test should fail loudly where it stands"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection};
use tokio_util::sync::CancellationToken;

use super::*;

const ROUTING_KEY: &str = "test.event";

fn settings() -> AmqpSettings {
    AmqpSettings {
        url: std::env::var("PAI_TEST_AMQP_URL")
            .unwrap_or_else(|_| AmqpSettings::DEFAULT_URL.to_owned()),
        events_exchange: format!("pai.test.queues.{}", uuid::Uuid::new_v4().simple()),
    }
}

fn queue_of(settings: &AmqpSettings) -> String {
    format!("{}.test.events", settings.events_exchange)
}

async fn confirming(connection: &Connection) -> Channel {
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    channel
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Whether declaring `queue` with `arguments` succeeds (on a channel of its
/// own: a refusal closes it); panics on any refusal but PRECONDITION_FAILED.
async fn declares(connection: &Connection, queue: &str, arguments: FieldTable) -> bool {
    let channel = connection.create_channel().await.unwrap();
    match channel.queue_declare(queue, durable(), arguments).await {
        Ok(_) => true,
        Err(lapin::Error::ProtocolError(e))
            if *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) =>
        {
            false
        }
        Err(err) => panic!("declaring {queue}: {err}"),
    }
}

async fn exists(connection: &Connection, queue: &str) -> bool {
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue, passive, FieldTable::default())
        .await
        .is_ok()
}

/// How many consumers `queue` has (0 where it does not exist yet).
async fn consumers(connection: &Connection, queue: &str) -> u32 {
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue, passive, FieldTable::default())
        .await
        .map_or(0, |declared| declared.consumer_count())
}

async fn publish(
    channel: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    expiration: Option<&str>,
) {
    let mut properties = persistent_json();
    if let Some(expiration) = expiration {
        properties = properties.with_expiration(ShortString::from(expiration));
    }
    let confirm = channel
        .basic_publish(
            exchange,
            key,
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "publish to {exchange}/{key}");
}

/// Takes one message from `queue`, waiting up to 10 s for it.
async fn take(channel: &Channel, queue: &str) -> Delivery {
    let started = Instant::now();
    loop {
        if let Some(message) = channel
            .basic_get(queue, BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            return message.delivery;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing reached {queue} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every message `queue` holds now, in order.
async fn take_all(channel: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    while let Some(message) = channel
        .basic_get(queue, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        bodies.push(message.delivery.data);
    }
    bodies
}

fn header<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a AMQPValue> {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(name))
}

async fn clean_up(connection: &Connection, exchange: &str, queue: &str) {
    let channel = connection.create_channel().await.unwrap();
    let (retry, dead) = side_queues(queue);
    for name in [
        queue.to_owned(),
        retry,
        dead.clone(),
        format!("{queue}.converting"),
        format!("{dead}.converting"),
        conversion_marker_queue(exchange),
    ] {
        channel
            .queue_delete(&name, QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    channel
        .exchange_delete(exchange, ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

/// The queue set pai declares: quorum queues (RabbitMQ refuses a classic
/// declaration of each), the delivery limit on the consumer queue.
async fn assert_quorum_set(connection: &Connection, queue: &str) {
    let (retry, dead) = side_queues(queue);
    assert!(declares(connection, queue, consumer_queue_arguments(queue)).await);
    assert!(declares(connection, &retry, retry_queue_arguments(queue)).await);
    assert!(declares(connection, &dead, dead_queue_arguments()).await);
    for name in [queue, &retry, &dead] {
        assert!(
            !declares(connection, name, FieldTable::default()).await,
            "{name} is not a quorum queue"
        );
    }
    let mut other_limit = consumer_queue_arguments(queue);
    other_limit.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DELIVERY_LIMIT + 1),
    );
    assert!(!declares(connection, queue, other_limit).await);
}

#[tokio::test]
async fn consumer_queues_are_quorum_queues_with_a_delivery_limit_and_dead_letters() {
    let settings = settings();
    let exchange = settings.events_exchange.clone();
    let queue = queue_of(&settings);
    let (retry, dead) = side_queues(&queue);
    ensure_consumer_queues(&settings, &[(&queue, ROUTING_KEY)])
        .await
        .unwrap();
    // Declaring again changes nothing.
    ensure_consumer_queues(&settings, &[(&queue, ROUTING_KEY)])
        .await
        .unwrap();
    let connection = connect(&settings.url).await.unwrap();
    assert_quorum_set(&connection, &queue).await;

    // A consumer that dies holding an event hands it back; past the limit,
    // RabbitMQ dead-letters it.
    let channel = confirming(&connection).await;
    publish(
        &channel,
        &exchange,
        ROUTING_KEY,
        b"crashes its consumer",
        None,
    )
    .await;
    let mut deliveries = 0;
    while let Some(message) = channel
        .basic_get(&queue, BasicGetOptions { no_ack: false })
        .await
        .unwrap()
    {
        deliveries += 1;
        message
            .delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .unwrap();
        assert!(deliveries <= DELIVERY_LIMIT + 1, "never dead-lettered");
    }
    assert_eq!(deliveries, DELIVERY_LIMIT + 1);
    let dead_letter = take(&channel, &dead).await;
    assert_eq!(dead_letter.data, b"crashes its consumer");
    assert!(
        matches!(
            header(&dead_letter, "x-first-death-reason"),
            Some(AMQPValue::LongString(reason)) if reason.to_string() == "delivery_limit"
        ),
        "{:?}",
        dead_letter.properties.headers()
    );

    // A waiting retry expires back into the queue.
    publish(&channel, "", &retry, b"retried", Some("20")).await;
    assert_eq!(take(&channel, &queue).await.data, b"retried");

    clean_up(&connection, &exchange, &queue).await;
}

#[tokio::test]
async fn a_failing_event_is_retried_then_dead_lettered_through_the_quorum_queues() {
    let settings = settings();
    let exchange = settings.events_exchange.clone();
    let queue = queue_of(&settings);
    let (_, dead) = side_queues(&queue);
    let calls = Arc::new(AtomicU32::new(0));
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(consume_events(
        settings.clone(),
        EventRetry {
            max_deliveries: 3,
            first_delay: Duration::from_millis(20),
        },
        queue.clone(),
        ROUTING_KEY,
        shutdown.clone(),
        {
            let calls = Arc::clone(&calls);
            move |_body| {
                let calls = Arc::clone(&calls);
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err("always fails".to_owned())
                }
            }
        },
    ));
    let connection = connect(&settings.url).await.unwrap();
    let channel = confirming(&connection).await;
    // The consumer declares the queues; publish once it consumes.
    let started = Instant::now();
    while consumers(&connection, &queue).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "no consumer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publish(&channel, &exchange, ROUTING_KEY, b"poison", None).await;

    let dead_letter = take(&channel, &dead).await;
    assert_eq!(dead_letter.data, b"poison");
    assert_eq!(failed_deliveries(&dead_letter.properties), 3);
    assert!(matches!(
        header(&dead_letter, "x-pai-failure"),
        Some(AMQPValue::LongString(reason)) if reason.to_string() == "always fails"
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    shutdown.cancel();
    consumer.await.unwrap();
    clean_up(&connection, &exchange, &queue).await;
}

/// Declares the classic queues an older pai declared for `queue`.
async fn declare_classic_set(channel: &Channel, exchange: &str, queue: &str) {
    let (retry, dead) = side_queues(queue);
    declare_events_exchange(channel, exchange).await.unwrap();
    channel
        .queue_declare(queue, durable(), FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            queue,
            exchange,
            ROUTING_KEY,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut retry_arguments = FieldTable::default();
    retry_arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    retry_arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(queue.into()),
    );
    channel
        .queue_declare(&retry, durable(), retry_arguments)
        .await
        .unwrap();
    channel
        .queue_declare(&dead, durable(), FieldTable::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_older_classic_queue_set_becomes_quorum_queues_keeping_every_message() {
    let settings = settings();
    let exchange = settings.events_exchange.clone();
    let queue = queue_of(&settings);
    let (retry, dead) = side_queues(&queue);
    let connection = connect(&settings.url).await.unwrap();
    let channel = confirming(&connection).await;
    declare_classic_set(&channel, &exchange, &queue).await;
    for event in [b"event 1", b"event 2"] {
        publish(&channel, &exchange, ROUTING_KEY, event, None).await;
    }
    // A retry waiting an hour, with its failure count.
    let mut failed = FieldTable::default();
    failed.insert(
        consumer::DELIVERIES_HEADER.into(),
        AMQPValue::LongLongInt(2),
    );
    let confirm = channel
        .basic_publish(
            "",
            &retry,
            BasicPublishOptions::default(),
            b"waiting",
            persistent_json()
                .with_expiration(ShortString::from("3600000"))
                .with_headers(failed),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    publish(&channel, "", &dead, b"given up", None).await;

    // An older pai still consuming: the set is left alone.
    let older = connect(&settings.url).await.unwrap();
    let older_channel = older.create_channel().await.unwrap();
    let _older_consumer = older_channel
        .basic_consume(
            &queue,
            "older",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let in_use = ensure_consumer_queues(&settings, &[(&queue, ROUTING_KEY)]).await;
    assert!(
        matches!(&in_use, Err(AmqpError::ClassicQueueInUse(q)) if *q == queue),
        "{in_use:?}"
    );
    assert!(declares(&connection, &queue, FieldTable::default()).await);
    // It stops (handing back what it held).
    older.close(200, "stopped").await.unwrap();

    ensure_consumer_queues(&settings, &[(&queue, ROUTING_KEY)])
        .await
        .unwrap();
    assert_quorum_set(&connection, &queue).await;
    assert!(!exists(&connection, &format!("{queue}.converting")).await);
    assert!(!exists(&connection, &format!("{dead}.converting")).await);
    let channel = confirming(&connection).await;
    assert!(
        take_all(&channel, &conversion_marker_queue(&exchange))
            .await
            .is_empty(),
        "mark left"
    );
    // Nothing left to retry: the waiting retry is in the queue, early, with
    // its count, after the events (in the order they were moved).
    assert!(take_all(&channel, &retry).await.is_empty());
    let mut bodies = Vec::new();
    let mut waiting = None;
    while let Some(message) = channel
        .basic_get(&queue, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        if message.delivery.data == b"waiting" {
            waiting = Some(failed_deliveries(&message.delivery.properties));
            assert_eq!(message.delivery.properties.expiration(), &None);
        }
        bodies.push(message.delivery.data);
    }
    bodies.sort();
    assert_eq!(
        bodies,
        [
            b"event 1".to_vec(),
            b"event 2".to_vec(),
            b"waiting".to_vec()
        ]
    );
    assert_eq!(waiting, Some(2));
    assert_eq!(take_all(&channel, &dead).await, [b"given up".to_vec()]);
    // Bound as before.
    publish(&channel, &exchange, ROUTING_KEY, b"event 3", None).await;
    assert_eq!(take(&channel, &queue).await.data, b"event 3");

    clean_up(&connection, &exchange, &queue).await;
}

#[tokio::test]
async fn a_conversion_cut_short_is_finished_by_the_next_declaration() {
    let settings = settings();
    let exchange = settings.events_exchange.clone();
    let queue = queue_of(&settings);
    let (_, dead) = side_queues(&queue);
    ensure_consumer_queues(&settings, &[(&queue, ROUTING_KEY)])
        .await
        .unwrap();
    // Stopped after the queues were replaced, before the parked messages
    // moved back: the parked queues still hold messages, one still bound.
    let connection = connect(&settings.url).await.unwrap();
    let channel = confirming(&connection).await;
    let parked = format!("{queue}.converting");
    let parked_dead = format!("{dead}.converting");
    for name in [&parked, &parked_dead] {
        channel
            .queue_declare(name, durable(), queues::quorum())
            .await
            .unwrap();
    }
    channel
        .queue_bind(
            &parked,
            &exchange,
            ROUTING_KEY,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    publish(&channel, "", &parked, b"parked event", None).await;
    publish(&channel, "", &parked_dead, b"parked dead letter", None).await;
    // The mark the conversion left before it began.
    let marker = conversion_marker_queue(&exchange);
    channel
        .queue_declare(&marker, durable(), queues::quorum())
        .await
        .unwrap();
    publish(&channel, "", &marker, b"converting", None).await;

    ensure_consumer_queues(&settings, &[(&queue, ROUTING_KEY)])
        .await
        .unwrap();
    assert!(!exists(&connection, &parked).await);
    assert!(!exists(&connection, &parked_dead).await);
    let channel = confirming(&connection).await;
    assert!(take_all(&channel, &marker).await.is_empty(), "mark left");
    assert_eq!(take_all(&channel, &queue).await, [b"parked event".to_vec()]);
    assert_eq!(
        take_all(&channel, &dead).await,
        [b"parked dead letter".to_vec()]
    );
    publish(&channel, &exchange, ROUTING_KEY, b"once", None).await;
    assert_eq!(take(&channel, &queue).await.data, b"once");
    assert!(take_all(&channel, &queue).await.is_empty());

    clean_up(&connection, &exchange, &queue).await;
}
