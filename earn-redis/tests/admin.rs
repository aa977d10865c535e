//! Operator access: list, requeue and purge dead letters; the group's lag.

mod common;

use earn::DeadLetters as _;
use std::time::Duration;

use earn::{Event, HandlerError};
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_requeued_and_purged() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream).max_deliveries(1);
    let Some((streams, _keys)) = common::connect(settings).await else {
        return;
    };
    let bus = common::bus();
    let seen = common::Seen::default();
    let sink = seen.clone();
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let up = healthy.clone();
    bus.subscribe_sync("sms.*", 0, move |event: &Event| {
        sink.push(event);
        if up.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err(HandlerError::msg("gateway down"))
        }
    })
    .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    let sent = common::events("sms.send", 3);
    for event in &sent {
        streams.publish(event).await.unwrap();
    }
    common::wait_until_async("3 dead letters", Duration::from_secs(5), || async {
        streams.dead_letter_entries(10).await.unwrap().len() == 3
    })
    .await;
    let letters = streams.dead_letter_entries(10).await.unwrap();
    let ids: Vec<_> = letters
        .iter()
        .map(|l| l.event.as_ref().unwrap().id())
        .collect();
    assert_eq!(
        ids,
        sent.iter().map(Event::id).collect::<Vec<_>>(),
        "oldest first"
    );
    assert_eq!(
        streams.dead_letter_entries(2).await.unwrap().len(),
        2,
        "limit"
    );

    // The gateway is back: requeue one; it is handled, and no longer a dead letter.
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    streams
        .dead_letter_source()
        .requeue(&letters[1].id)
        .await
        .unwrap();
    common::wait_until("the requeued event", Duration::from_secs(5), || {
        seen.len() >= 4
    })
    .await;
    let again = seen.events().pop().unwrap();
    assert_eq!(again.id(), sent[1].id(), "same event id");
    assert_eq!(again.attempt(), 1, "a new entry starts again at delivery 1");
    let left: Vec<String> = streams
        .dead_letter_entries(10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(left, [letters[0].id.clone(), letters[2].id.clone()]);

    let missing = streams
        .dead_letter_source()
        .requeue(&letters[1].id)
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, earn::Error::NoDeadLetter { id, .. } if *id == letters[1].id),
        "{missing}"
    );
    assert!(missing.to_string().contains("no dead letter"), "{missing}");

    assert_eq!(
        streams
            .dead_letter_source()
            .purge(&earn::DeadLetterFilter::default())
            .await
            .unwrap(),
        2
    );
    assert!(streams.dead_letter_entries(10).await.unwrap().is_empty());
    assert_eq!(
        streams
            .dead_letter_source()
            .purge(&earn::DeadLetterFilter::default())
            .await
            .unwrap(),
        0
    );
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_counts_pending_unread_length_and_delayed() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let empty = streams.lag().await.unwrap();
    assert_eq!(
        (empty.pending, empty.lag, empty.length, empty.delayed),
        (0, Some(0), 0, 0)
    );

    // The group exists (created by a consumer that stopped at once).
    let consumer = streams.consume(common::bus()).await.unwrap();
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
    for event in common::events("report.built", 10) {
        streams.publish(&event).await.unwrap();
    }
    streams
        .publish_delayed(
            &Event::new("report.built", &0).unwrap(),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    // Another consumer of the group reads 4 and does not acknowledge them.
    let mut conn = common::raw().await;
    let _: redis::Value = conn
        .xread_options(
            &[&stream],
            &[">"],
            &redis::streams::StreamReadOptions::default()
                .group("workers", "someone")
                .count(4),
        )
        .await
        .unwrap();
    let lag = streams.lag().await.unwrap();
    assert_eq!(lag.pending, 4);
    assert_eq!(lag.lag, Some(6));
    assert_eq!(lag.length, 10);
    assert_eq!(lag.delayed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeued_dead_letter_goes_back_to_the_group_that_gave_up_only() {
    let stream = common::unique_stream();
    let failing = common::settings(&stream).max_deliveries(1);
    let Some((billing, _keys)) = common::connect(failing).await else {
        return;
    };
    let mail_settings = earn::redis::RedisSettings::new(stream.as_str(), "mail")
        .consumer("m1")
        .block(Duration::from_millis(100))
        .claim_idle(Duration::from_secs(60));
    let Some((mail, _)) = common::connect(mail_settings).await else {
        return;
    };
    // `billing` fails until its gateway is back; `mail` always succeeds.
    let (mail_bus, mail_seen) = common::recording_bus("invoice.*");
    let billing_bus = common::bus();
    let billing_seen = common::Seen::default();
    let sink = billing_seen.clone();
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let up = healthy.clone();
    billing_bus
        .subscribe_sync("invoice.*", 0, move |event: &Event| {
            sink.push(event);
            if up.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(())
            } else {
                Err(HandlerError::msg("gateway down"))
            }
        })
        .unwrap();
    let billing_consumer = billing.consume(billing_bus).await.unwrap();
    let mail_consumer = mail.consume(mail_bus).await.unwrap();

    let invoice = Event::new("invoice.sent", &7).unwrap();
    billing.publish(&invoice).await.unwrap();
    common::wait_until_async("billing's dead letter", Duration::from_secs(5), || async {
        billing.dead_letter_entries(10).await.unwrap().len() == 1
    })
    .await;
    common::wait_until("mail handled it", Duration::from_secs(5), || {
        mail_seen.len() == 1
    })
    .await;

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let letter = &billing.dead_letter_entries(10).await.unwrap()[0];
    assert_eq!(letter.group, "workers");
    billing
        .dead_letter_source()
        .requeue(&letter.id)
        .await
        .unwrap();
    common::wait_until("billing handled it again", Duration::from_secs(5), || {
        billing_seen.len() == 2
    })
    .await;
    // Give mail's consumer time to read the requeued entry too: it skips it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        mail_seen.ids(),
        [invoice.id()],
        "mail handled it once, not again"
    );
    let lag = mail.lag().await.unwrap();
    assert_eq!(
        (lag.pending, lag.lag),
        (0, Some(0)),
        "mail acknowledged the entry it skipped"
    );
    assert!(
        billing_consumer
            .shutdown(Duration::from_secs(5))
            .await
            .drained
    );
    assert!(mail_consumer.shutdown(Duration::from_secs(5)).await.drained);
}
