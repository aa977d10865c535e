//! `on`, `if` and `when_changed` conditions, and what the context tells a
//! hook about the change.

mod common;

use common::{each_backend, fresh, log, take_log};
use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "cond_posts")]
struct Post {
    #[model(primary_key, auto)]
    id: Option<i64>,
    title: String,
    body: String,
    published: bool,
    #[model(skip)]
    cache: Option<String>,
}

fn is_published(post: &Post) -> bool {
    post.published
}

#[hooks]
impl Post {
    #[before_save(on = "create")]
    fn only_create(&self) {
        log("create");
    }

    #[before_save(on = "update")]
    fn only_update(&self, ctx: &mut HookContext<'_>) {
        log(format!("update changed={:?}", ctx.changed()));
    }

    #[after_save(if = is_published)]
    fn only_published(&self) {
        log("published");
    }

    #[before_update(when_changed = "title")]
    fn title_changed(&self, ctx: &mut HookContext<'_>) {
        let before = ctx.previous::<Post>().map(|p| p.title.clone());
        log(format!("title {before:?} -> {:?}", self.title));
    }

    #[after_update(when_changed = "body")]
    fn body_changed(&self) {
        log("body changed");
    }

    #[before_save]
    fn touch(&mut self, ctx: &mut HookContext<'_>) {
        if ctx.operation() == Operation::Update && ctx.is_changed("title") {
            self.body = format!("{} (edited)", self.body);
        }
    }

    #[after_load]
    fn fill_cache(&mut self) {
        self.cache = Some(self.title.to_uppercase());
    }
}

#[tokio::test]
async fn conditions_select_which_hooks_run() {
    each_backend(|db| async move {
        fresh::<Post>(&db).await;
        let mut post = Post {
            id: None,
            title: "a".into(),
            body: "b".into(),
            published: false,
            cache: None,
        };
        post.save(&db).await.unwrap();
        assert_eq!(take_log(), ["create"]);

        post.published = true;
        post.save(&db).await.unwrap();
        assert_eq!(take_log(), ["update changed=[\"published\"]", "published"]);

        post.title = "A".into();
        post.save(&db).await.unwrap();
        // `touch` changed the body in a before hook: after hooks see it changed.
        assert_eq!(
            take_log(),
            [
                "update changed=[\"title\"]",
                "title Some(\"a\") -> \"A\"",
                "body changed",
                "published"
            ]
        );

        let loaded = Post::find(&db, post.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(loaded.body, "b (edited)");
        assert_eq!(
            loaded.cache.as_deref(),
            Some("A"),
            "skip fields start at Default, after_load fills them"
        );

        // Nothing changed: the before hooks run (they could change
        // something), then nothing is written and no after hook runs.
        post.save(&db).await.unwrap();
        assert_eq!(take_log(), ["update changed=[]"], "nothing changed");
    })
    .await;
}

#[derive(Debug, Clone, Model)]
#[model(table = "cond_notes")]
struct Note {
    #[model(primary_key, auto)]
    id: Option<i64>,
    text: String,
}

#[hooks]
impl Note {
    // A bare name of a method of this block needs no `Self::`.
    #[before_save(if = is_long)]
    fn long(&self) {
        log(format!("long:{}", self.text));
    }

    fn is_long(&self) -> bool {
        self.text.len() > 3
    }
}

#[tokio::test]
async fn a_condition_may_name_a_method_of_the_hooks_block_bare() {
    each_backend(|db| async move {
        fresh::<Note>(&db).await;
        Note {
            id: None,
            text: "hi".into(),
        }
        .save(&db)
        .await
        .unwrap();
        Note {
            id: None,
            text: "hello".into(),
        }
        .save(&db)
        .await
        .unwrap();
        assert_eq!(take_log(), ["long:hello"]);
    })
    .await;
}
