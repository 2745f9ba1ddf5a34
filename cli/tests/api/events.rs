//! Events are never lost and never loop: the outbox relay declares every
//! consumer's queue before it publishes and keeps an event no queue took;
//! a consumer sets a poison event aside in its dead-letter queue after the
//! delivery limit and goes on with the next one.

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::AMQPValue;
use pai_common::amqp::{self, OutboxRelay};
use pai_common::config::AmqpSettings;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{Options, amqp_url, spawn_app_with};

/// Takes one message from `queue`, waiting up to 30 s for it.
async fn get_one(channel: &lapin::Channel, queue: &str) -> lapin::message::BasicGetMessage {
    let started = std::time::Instant::now();
    loop {
        let got = channel
            .basic_get(queue, BasicGetOptions { no_ack: true })
            .await
            .unwrap_or_else(|e| panic!("basic.get on {queue}: {e}"));
        if let Some(message) = got {
            return message;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing reached {queue} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_after_the_limit_and_the_next_is_handled() {
    let app = spawn_app_with(
        Options::default()
            .var("EVENT_MAX_DELIVERIES", "3")
            .var("EVENT_RETRY_DELAY_MS", "50"),
    )
    .await;
    let user = app.register("poisoned").await;
    let token = user["access_token"].as_str().unwrap();
    let user_id = Uuid::parse_str(user["user"]["id"].as_str().unwrap()).unwrap();
    let doc = app.upload(token, "gen_crazy_ones_pdfa.pdf").await;
    app.wait_document(token, doc["id"].as_str().unwrap()).await;

    let connection = amqp::connect(&amqp_url()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let poison = br#"{"user_id": "not a user id"}"#;
    let confirm = channel
        .basic_publish(
            &app.exchange,
            "user.deleted",
            BasicPublishOptions::default(),
            poison,
            amqp::persistent_json(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    // The next event, a real one, is handled while the poison waits.
    app.delete_account(token).await;

    let dead = get_one(
        &channel,
        &format!("{}.documents.user-deleted.dead", app.exchange),
    )
    .await;
    assert_eq!(dead.delivery.data, poison);
    let headers = dead.delivery.properties.headers().clone().unwrap();
    assert_eq!(
        amqp::failed_deliveries(&dead.delivery.properties),
        3,
        "{headers:?}"
    );
    assert!(
        matches!(
            headers.inner().get("x-pai-failure"),
            Some(AMQPValue::LongString(reason)) if reason.to_string().contains("malformed user.deleted")
        ),
        "{headers:?}"
    );

    let mut left = (i64::MAX, i64::MAX);
    for _ in 0..300 {
        left = sqlx::query_as(
            "SELECT (SELECT count(*) FROM documents.documents WHERE user_id = $1), \
                    (SELECT count(*) FROM search.chunks WHERE user_id = $1)",
        )
        .bind(user_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
        if left == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, (0, 0), "(documents, chunks) of the deleted user");
    // Nothing else went to the dead-letter queue, and nothing is left to retry.
    let more = channel
        .basic_get(
            &format!("{}.documents.user-deleted.dead", app.exchange),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap();
    assert!(more.is_none());
    app.finish().await;
}

#[tokio::test]
async fn events_published_before_any_consumer_started_wait_in_their_queues() {
    let app = spawn_app_with(Options::default()).await;
    // An outbox of our own, relayed to an exchange no consumer ever used.
    sqlx::raw_sql(
        "CREATE TABLE public.relay_test_outbox (id bigserial PRIMARY KEY, \
         routing_key text NOT NULL, payload jsonb NOT NULL)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let exchange = format!("pai.test.relay.{}", Uuid::new_v4().simple());
    let user_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO public.relay_test_outbox (routing_key, payload) \
         VALUES ('nobody.listens', '{}'), ('user.deleted', $1)",
    )
    .bind(json!({"user_id": user_id}))
    .execute(&app.db)
    .await
    .unwrap();
    let shutdown = CancellationToken::new();
    let relay = OutboxRelay::new(
        app.db.clone(),
        "public.relay_test_outbox",
        AmqpSettings {
            url: amqp_url(),
            events_exchange: exchange.clone(),
        },
    );
    let relay = tokio::spawn(relay.run(shutdown.clone()));

    let mut keys: Vec<String> = Vec::new();
    for _ in 0..300 {
        keys = sqlx::query_scalar("SELECT routing_key FROM public.relay_test_outbox")
            .fetch_all(&app.db)
            .await
            .unwrap();
        if keys == ["nobody.listens"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The deletion was published (and confirmed) in the batch that kept
    // the event no queue took.
    assert_eq!(keys, ["nobody.listens"], "the unroutable event is kept");
    shutdown.cancel();
    relay.await.unwrap();

    let connection = amqp::connect(&amqp_url()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    for subscription in [
        amqp::DOCUMENTS_USER_DELETED,
        amqp::SEARCH_USER_DELETED,
        amqp::INFERENCE_USER_DELETED,
    ] {
        let queue = subscription.queue(&exchange);
        let message = get_one(&channel, &queue).await;
        let event: amqp::UserDeleted = serde_json::from_slice(&message.delivery.data).unwrap();
        assert_eq!(event.user_id, user_id, "{queue}");
    }
    for subscription in amqp::SUBSCRIPTIONS {
        let queue = subscription.queue(&exchange);
        let (retry, dead) = amqp::side_queues(&queue);
        for name in [queue, retry, dead] {
            let _ = channel
                .queue_delete(&name, lapin::options::QueueDeleteOptions::default())
                .await;
        }
    }
    let _ = channel
        .queue_delete(
            &amqp::conversion_marker_queue(&exchange),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
    let _ = channel
        .exchange_delete(&exchange, lapin::options::ExchangeDeleteOptions::default())
        .await;
    app.finish().await;
}
