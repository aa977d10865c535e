//! Operator access over every store at once: the bus's dead letters, the
//! outbox's and a Redis stream's; status, list, requeue, purge.

mod common;

use std::time::Duration;

use common::each_backend;
use earn::admin::{Admin, Source};
use earn::redis::{RedisSettings, RedisStreams};
use earn::testing::Recorder;
use earn::{Event, EventBus, HandlerError, OutboxRelay, RetryPolicy};
use redis::AsyncCommands as _;

async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_list_requeue_and_purge_across_bus_outbox_and_redis() {
    let Some(redis_url) = common::redis_url() else {
        return;
    };
    each_backend(|db| {
        let redis_url = redis_url.clone();
        async move {
            let bus = EventBus::builder()
                .without_registered_handlers()
                .retry(RetryPolicy::none())
                .build()
                .unwrap();
            bus.subscribe("job.fail", 0, |_: Event| async {
                Err::<(), _>(HandlerError::permanent(std::io::Error::other(
                    "gateway down",
                )))
            })
            .unwrap();
            let recorder = Recorder::attach(&bus, "job.ok").unwrap();
            let db = db.with_bus(bus.clone());
            db.install_outbox().await.unwrap();
            db.execute_unprepared("DELETE FROM earn_outbox")
                .await
                .unwrap();
            db.purge_outbox_dead_letters().await.unwrap();

            // A bus dead letter.
            bus.publish(Event::new("job.fail", &1).unwrap())
                .await
                .unwrap();
            bus.wait_idle().await;
            // An outbox row that is not an event, given up by the relay.
            db.execute_unprepared(
                "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) \
                 VALUES ('poison', 'job.ok', 'not json', 0, 0)",
            )
            .await
            .unwrap();
            OutboxRelay::new(db.clone(), bus.clone())
                .run_once()
                .await
                .unwrap();
            // A Redis entry that is not an event, dead-lettered by a consumer.
            let stream = format!("earn:admin:{}", uuid::Uuid::new_v4());
            let streams =
                RedisStreams::connect(&redis_url, RedisSettings::new(stream.as_str(), "ops"))
                    .await
                    .unwrap();
            let mut raw = redis::Client::open(redis_url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let _: String = raw
                .xadd(&stream, "*", &[("v", "1"), ("event", "{oops")])
                .await
                .unwrap();
            let consumer = streams.consume(bus.clone()).await.unwrap();

            let admin = Admin::new()
                .database(db.clone())
                .bus(bus.clone())
                .stream(streams.clone());
            eventually("the redis dead letter", async || {
                streams.dead_letter_count().await.unwrap() == 1
            })
            .await;

            let status = admin.status().await.unwrap();
            assert_eq!(status.bus_dead_letters, Some(1));
            assert_eq!(status.outbox_backlog, Some(0));
            assert_eq!(status.outbox_dead_letters, Some(1));
            assert_eq!(status.streams.len(), 1);
            assert_eq!(status.streams[0].dead_letters, 1);
            assert_eq!(status.streams[0].lag.pending, 0);
            let shown = status.to_string();
            assert!(
                shown.contains("outbox: 0 waiting, 1 dead letters"),
                "{shown}"
            );
            assert!(
                shown.contains(&format!("redis {stream} (group ops)")),
                "{shown}"
            );

            let letters = admin.dead_letters(10).await.unwrap();
            let sources: Vec<String> = letters.iter().map(|l| l.source.to_string()).collect();
            assert_eq!(sources, ["bus", "outbox", &format!("redis:{stream}")]);
            assert!(letters[0].reason.contains("gateway down"), "{}", letters[0]);
            assert_eq!(letters[1].id, "poison");
            assert!(
                letters[1].to_string().starts_with("outbox poison"),
                "{}",
                letters[1]
            );
            assert!(letters[2].event.is_none());

            // Requeue the bus letter: the handler fails again, so it comes back.
            admin.requeue(&letters[0]).await.unwrap();
            bus.wait_idle().await;
            assert_eq!(bus.dead_letters().len(), 1);
            // A requeued letter is gone from its store: asking twice is an error.
            let again = admin.requeue(&letters[1]).await;
            assert!(again.is_ok(), "{again:?}");
            let gone = admin.requeue(&letters[1]).await.unwrap_err();
            assert!(matches!(gone, earn::Error::NoDeadLetter { .. }), "{gone}");
            assert_eq!(
                db.outbox_backlog().await.unwrap(),
                1,
                "the outbox row is back"
            );

            assert_eq!(admin.purge(&Source::Bus).await.unwrap(), 1);
            assert_eq!(admin.purge(&letters[2].source).await.unwrap(), 1);
            let status = admin.status().await.unwrap();
            assert_eq!(status.bus_dead_letters, Some(0));
            assert_eq!(status.streams[0].dead_letters, 0);
            assert!(recorder.events().is_empty());

            consumer.shutdown(Duration::from_secs(5)).await;
            let _: () = raw
                .del(&[
                    stream.clone(),
                    format!("{stream}:dead"),
                    format!("{stream}:delayed"),
                    format!("{stream}:marks"),
                ])
                .await
                .unwrap();
            db.execute_unprepared("DELETE FROM earn_outbox")
                .await
                .unwrap();
        }
    })
    .await;
}
