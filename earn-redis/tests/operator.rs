//! What an operator sees of a stream: its groups and consumers, with their
//! pending entries, lag and idle times; the delayed events, listed by due
//! time, one run now or deleted.

mod common;

use std::time::{Duration, SystemTime};

use earn::{Error, Event, PageRequest};
use redis::AsyncCommands as _;

#[tokio::test]
async fn groups_show_pending_lag_and_idle_consumers() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    // The stream may not exist yet: no groups, no error.
    assert_eq!(streams.groups().await.unwrap(), []);

    let mut raw = common::raw().await;
    for group in ["workers", "audit"] {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    for i in 0..3 {
        let _: String = raw.xadd(&stream, "*", &[("n", i)]).await.unwrap();
    }
    // c1 of `workers` reads two entries and acknowledges none.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("c1")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut raw)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;

    let groups = streams.groups().await.unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["audit", "workers"]);
    let workers = &groups[1];
    assert_eq!((workers.pending, workers.lag), (2, Some(1)));
    assert!(workers.last_delivered.contains('-'), "{workers:?}");
    assert_eq!(workers.consumers.len(), 1);
    let c1 = &workers.consumers[0];
    assert_eq!((c1.name.as_str(), c1.pending), ("c1", 2));
    assert!(c1.idle >= Duration::from_millis(20), "{c1:?}");
    assert!(c1.idle < Duration::from_secs(30), "{c1:?}");
    let audit = &groups[0];
    assert_eq!((audit.pending, audit.lag), (0, Some(3)));
    assert_eq!(audit.last_delivered, "0-0");
    assert!(audit.consumers.is_empty());

    // `lag` reads the settings' group out of the same reply.
    let lag = streams.lag().await.unwrap();
    assert_eq!((lag.pending, lag.lag, lag.length), (2, Some(1), 3));
}

#[tokio::test]
async fn delayed_events_are_listed_by_due_time_run_now_or_deleted() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    assert_eq!(streams.delayed(PageRequest::first(10)).await.unwrap(), []);
    let later = Event::new("cart.reminder", &"later").unwrap();
    let soon = Event::new("cart.reminder", &"soon").unwrap();
    let latest = Event::new("cart.expired", &"latest").unwrap();
    let before = SystemTime::now();
    for (event, hours) in [(&later, 2), (&soon, 1), (&latest, 3)] {
        streams
            .publish_delayed(event, Duration::from_secs(hours * 3600))
            .await
            .unwrap();
    }
    // Something else in the set: listed, never a valid event.
    let mut raw = common::raw().await;
    let _: () = raw
        .zadd(format!("{stream}:delayed"), "junk\nnot json", 1)
        .await
        .unwrap();

    let all = streams.delayed(PageRequest::first(10)).await.unwrap();
    let ids: Vec<_> = all.iter().map(|d| d.id).collect();
    assert_eq!(
        ids,
        [None, Some(soon.id()), Some(later.id()), Some(latest.id())]
    );
    assert_eq!(all[0].name, "junk");
    assert_eq!(all[0].event, None);
    assert_eq!(all[1].name, "cart.reminder");
    assert_eq!(all[1].event.as_ref(), Some(&soon));
    let in_an_hour = all[1].due.duration_since(before).unwrap();
    assert!(
        in_an_hour > Duration::from_secs(3590) && in_an_hour < Duration::from_secs(3610),
        "{in_an_hour:?}"
    );
    let second_page = streams.delayed(PageRequest::page(2, 3)).await.unwrap();
    assert_eq!(second_page.len(), 1);
    assert_eq!(second_page[0].id, Some(latest.id()));
    assert_eq!(streams.delayed(PageRequest::first(0)).await.unwrap(), []);

    // One by id.
    let found = streams.delayed_event(later.id()).await.unwrap().unwrap();
    assert_eq!(found.name, "cart.reminder");
    let nobody = uuid::Uuid::new_v4();
    assert_eq!(streams.delayed_event(nobody).await.unwrap(), None);

    // Run one now: in the stream as an entry a consumer reads, no longer
    // delayed; a second run says it is not there.
    let entry = streams.run_delayed(soon.id()).await.unwrap();
    let entries: redis::streams::StreamRangeReply = raw.xrange_all(&stream).await.unwrap();
    assert_eq!(entries.ids.len(), 1);
    assert_eq!(entries.ids[0].id, entry);
    let json: String = entries.ids[0].get("event").unwrap();
    assert!(json.contains(&soon.id().to_string()), "{json}");
    let name: String = entries.ids[0].get("name").unwrap();
    assert_eq!(name, "cart.reminder");
    assert_eq!(streams.lag().await.unwrap().delayed, 3);
    let again = streams.run_delayed(soon.id()).await.unwrap_err();
    assert!(matches!(again, Error::NoDelayedEvent { .. }), "{again}");
    assert!(
        again.to_string().contains(&soon.id().to_string()),
        "{again}"
    );

    // Delete one: gone without reaching the stream.
    streams.delete_delayed(latest.id()).await.unwrap();
    let gone = streams.delete_delayed(latest.id()).await.unwrap_err();
    assert!(matches!(gone, Error::NoDelayedEvent { .. }), "{gone}");
    let left: Vec<_> = streams
        .delayed(PageRequest::first(10))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, [None, Some(later.id())]);
    let length: u64 = raw.xlen(&stream).await.unwrap();
    assert_eq!(length, 1);
}
