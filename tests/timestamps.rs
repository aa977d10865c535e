//! `#[model(created_at)]` and `#[model(updated_at)]`: set from one instant
//! per write, on single and bulk writes; an update that changes nothing
//! leaves `updated_at` alone.

mod common;

use chrono::{DateTime, NaiveDateTime, Utc};
use common::{capture, each_backend, fresh};
use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "ts_posts")]
struct Post {
    #[model(primary_key, auto)]
    id: Option<i64>,
    title: String,
    #[model(created_at)]
    created_at: DateTime<Utc>,
    #[model(updated_at)]
    updated_at: Option<NaiveDateTime>,
}

#[hooks]
impl Post {
    #[before_save]
    fn trim(&mut self) {
        self.title = self.title.trim().to_owned();
    }
}

/// Only `created_at`, as a naive date-time.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "ts_logs")]
struct Log {
    #[model(primary_key, auto)]
    id: Option<i64>,
    line: String,
    #[model(created_at)]
    at: Option<NaiveDateTime>,
}

fn post(title: &str) -> Post {
    Post {
        id: None,
        title: title.into(),
        created_at: DateTime::<Utc>::default(),
        updated_at: None,
    }
}

async fn stored(db: &Db, post: &Post) -> Post {
    Post::find(db, post.id.unwrap()).await.unwrap().unwrap()
}

fn updates(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("summary=\"UPDATE"))
        .count()
}

#[tokio::test]
async fn a_new_row_gets_one_instant_and_an_update_moves_only_updated_at() {
    each_backend(|db| async move {
        fresh::<Post>(&db).await;
        let before = Utc::now();
        let mut hello = post(" hello ");
        hello.save(&db).await.unwrap();
        let after = Utc::now();
        assert!(
            before - chrono::Duration::microseconds(1) <= hello.created_at
                && hello.created_at <= after
        );
        assert_eq!(
            hello.updated_at,
            Some(hello.created_at.naive_utc()),
            "one instant per write"
        );
        assert_eq!(
            stored(&db, &hello).await,
            hello,
            "the model holds what the row holds"
        );

        // Nothing changed: nothing written, updated_at stays.
        let captured = capture();
        hello.title = "hello".into();
        hello.save(&db).await.unwrap();
        assert_eq!(updates(&captured.text()), 0);
        assert_eq!(hello.updated_at, Some(hello.created_at.naive_utc()));

        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let created = hello.created_at;
        hello.title = "hello, world".into();
        hello.save(&db).await.unwrap();
        assert_eq!(
            hello.created_at, created,
            "created_at is not touched by an update"
        );
        assert!(hello.updated_at.unwrap() > created.naive_utc());
        assert_eq!(stored(&db, &hello).await, hello);

        // Quiet saves set timestamps too: they are data, not hooks.
        let moved = hello.updated_at;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        hello.title = "quiet".into();
        hello.save_quietly(&db).await.unwrap();
        assert!(hello.updated_at > moved);
        assert_eq!(stored(&db, &hello).await, hello);

        fresh::<Log>(&db).await;
        let mut line = Log {
            id: None,
            line: "started".into(),
            at: None,
        };
        line.save(&db).await.unwrap();
        assert!(line.at.is_some());
        assert_eq!(
            Log::find(&db, line.id.unwrap()).await.unwrap().unwrap(),
            line
        );
    })
    .await;
}

#[tokio::test]
async fn bulk_writes_stamp_every_row_with_one_instant() {
    each_backend(|db| async move {
        fresh::<Post>(&db).await;
        let mut posts: Vec<Post> = (0..5).map(|i| post(&format!("p{i}"))).collect();
        Post::insert_many(&db, &mut posts).await.unwrap();
        let first = posts[0].created_at;
        assert!(
            posts
                .iter()
                .all(|p| p.created_at == first && p.updated_at == Some(first.naive_utc()))
        );
        let rows = Post::query()
            .order_by(Post::ID.asc())
            .all(&db)
            .await
            .unwrap();
        assert_eq!(rows, posts);

        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        // p0 already has this title: it is not changed, so not stamped.
        let written = Post::query()
            .filter(Post::TITLE.is_in(["p0", "p1", "p2"]))
            .update_all(&db, [Post::TITLE.set("p0")])
            .await
            .unwrap();
        assert_eq!(written, 2);
        let rows = Post::query()
            .order_by(Post::ID.asc())
            .all(&db)
            .await
            .unwrap();
        assert_eq!(
            rows[0].updated_at,
            Some(first.naive_utc()),
            "unchanged row keeps its time"
        );
        let moved = rows[1].updated_at.unwrap();
        assert!(moved > first.naive_utc());
        assert_eq!(
            rows[2].updated_at,
            Some(moved),
            "one instant for the whole write"
        );
        assert!(rows.iter().all(|p| p.created_at == first));

        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        Post::query()
            .filter(Post::TITLE.eq("p3"))
            .update_all_quietly(&db, [Post::TITLE.set("q3")])
            .await
            .unwrap();
        let q3 = Post::query()
            .filter(Post::TITLE.eq("q3"))
            .one(&db)
            .await
            .unwrap();
        assert!(q3.updated_at.unwrap() > moved);
    })
    .await;
}
