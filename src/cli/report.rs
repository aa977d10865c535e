//! `earn status`, `earn outbox`, `earn registry`.

use serde::Serialize;

use super::duration::format_age;
use super::table::Table;
use super::{Done, Failure, Outcome, Output};
use crate::admin::Admin;

#[derive(Serialize)]
struct StatusView {
    bus_in_flight: Option<usize>,
    outbox: Option<OutboxView>,
    streams: Vec<StreamLagView>,
    dead_letters: Vec<SourceView>,
    dead_letter_total: u64,
    /// With an event store: its head and subscriptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    event_store: Option<StoreView>,
}

#[derive(Serialize)]
struct StoreView {
    head: u64,
    subscriptions: Vec<SubscriptionView>,
}

#[derive(Serialize)]
struct SubscriptionView {
    name: String,
    position: u64,
    /// Positions between its checkpoint and the head.
    behind: u64,
    /// When its checkpoint last moved, in milliseconds since the Unix epoch.
    updated_at: i64,
}

fn store_view(head: u64, checkpoints: Vec<crate::store::Checkpoint>) -> StoreView {
    StoreView {
        head,
        subscriptions: checkpoints
            .into_iter()
            .map(|c| SubscriptionView {
                behind: head.saturating_sub(c.position),
                name: c.name,
                position: c.position,
                updated_at: c.updated_at,
            })
            .collect(),
    }
}

fn store_text(store: &StoreView) -> String {
    let mut text = format!("event store: head at position {}\n", store.head);
    if !store.subscriptions.is_empty() {
        let mut table = Table::new(&["SUBSCRIPTION", "POSITION", "BEHIND"]);
        for subscription in &store.subscriptions {
            table.row(vec![
                subscription.name.clone(),
                subscription.position.to_string(),
                subscription.behind.to_string(),
            ]);
        }
        text.push_str(&table.render());
    }
    text
}

#[derive(Serialize)]
struct OutboxView {
    backlog: u64,
    /// Seconds the oldest waiting row has waited.
    oldest_age_secs: Option<f64>,
}

#[derive(Serialize)]
struct StreamLagView {
    /// `redis` or `nats`.
    broker: &'static str,
    stream: String,
    group: String,
    length: u64,
    pending: u64,
    /// `None` when the broker cannot tell.
    lag: Option<u64>,
    delayed: u64,
}

#[derive(Serialize)]
struct SourceView {
    source: String,
    dead_letters: u64,
}

fn outbox_line(outbox: &OutboxView) -> String {
    let oldest = outbox.oldest_age_secs.map_or_else(String::new, |secs| {
        format!(
            ", oldest waiting {}",
            format_age(std::time::Duration::from_secs_f64(secs))
        )
    });
    format!("outbox: {} waiting{oldest}\n", outbox.backlog)
}

/// The Redis streams, then the NATS streams, of `status`.
fn stream_views(status: &crate::admin::Status) -> Vec<StreamLagView> {
    status
        .broker_lags()
        .into_iter()
        .map(|row| StreamLagView {
            broker: row.broker,
            stream: row.stream.to_owned(),
            group: row.group.to_owned(),
            length: row.length,
            pending: row.pending,
            lag: row.unread,
            delayed: row.delayed,
        })
        .collect()
}

pub(super) async fn status(admin: &Admin, out: &Output, fail_on_dead_letters: bool) -> Done {
    let status = admin.status().await?;
    let view = StatusView {
        bus_in_flight: status.bus_in_flight,
        outbox: status.outbox.map(|outbox| OutboxView {
            backlog: outbox.backlog,
            oldest_age_secs: outbox.oldest.map(|age| age.as_secs_f64()),
        }),
        streams: stream_views(&status),
        dead_letters: status
            .dead_letters
            .iter()
            .map(|source| SourceView {
                source: source.source.clone(),
                dead_letters: source.dead_letters,
            })
            .collect(),
        dead_letter_total: status.dead_letter_total(),
        event_store: status
            .store
            .map(|store| store_view(store.head, store.subscriptions)),
    };
    out.print(&view, || {
        let mut text = String::new();
        if let Some(in_flight) = view.bus_in_flight {
            text.push_str(&format!("bus: {in_flight} in flight\n"));
        }
        if let Some(outbox) = &view.outbox {
            text.push_str(&outbox_line(outbox));
        }
        if let Some(store) = &view.event_store {
            text.push_str(&store_text(store));
        }
        if !view.streams.is_empty() {
            let mut table = Table::new(&[
                "BROKER", "STREAM", "GROUP", "LENGTH", "PENDING", "UNREAD", "DELAYED",
            ]);
            for stream in &view.streams {
                table.row(vec![
                    stream.broker.to_owned(),
                    stream.stream.clone(),
                    stream.group.clone(),
                    stream.length.to_string(),
                    stream.pending.to_string(),
                    stream
                        .lag
                        .map_or_else(|| "?".to_owned(), |lag| lag.to_string()),
                    stream.delayed.to_string(),
                ]);
            }
            text.push('\n');
            text.push_str(&table.render());
        }
        let mut table = Table::new(&["SOURCE", "DEAD LETTERS"]);
        for source in &view.dead_letters {
            table.row(vec![source.source.clone(), source.dead_letters.to_string()]);
        }
        table.row(vec!["total".to_owned(), view.dead_letter_total.to_string()]);
        text.push('\n');
        text.push_str(&table.render());
        text
    })?;
    if fail_on_dead_letters && view.dead_letter_total > 0 {
        eprintln!(
            "{} dead letter(s): exit code {}",
            view.dead_letter_total,
            super::DEAD_LETTERS_FOUND
        );
        return Ok(Outcome::DeadLetters);
    }
    Ok(Outcome::Done)
}

pub(super) async fn outbox(admin: &Admin, out: &Output) -> Done {
    let Some(db) = admin.db() else {
        return Err(Failure::Missing(
            "the outbox needs a database: give the admin one \
             (the `earn` binary: --database URL or EARN_DATABASE_URL)",
        ));
    };
    let view = OutboxView {
        backlog: db.outbox_backlog().await?,
        oldest_age_secs: db.outbox_oldest_age().await?.map(|age| age.as_secs_f64()),
    };
    out.print(&view, || outbox_line(&view))
}

pub(super) async fn subscriptions(admin: &Admin, out: &Output) -> Done {
    let Some(store) = admin.event_store() else {
        return Err(Failure::Missing(
            "subscriptions need an event store: give the admin one \
             (the `earn` binary: --database URL --event-store)",
        ));
    };
    let view = store_view(store.head().await?, store.checkpoints().await?);
    out.print(&view, || store_text(&view))
}

#[derive(Serialize)]
struct RegistryView {
    hooks: Vec<HookView>,
    behaviour_hooks: Vec<HookView>,
    handlers: Vec<HandlerView>,
}

#[derive(Serialize)]
struct HookView {
    model: &'static str,
    /// The behaviour applying it, for a behaviour hook.
    behaviour: Option<&'static str>,
    phase: &'static str,
    priority: i32,
    function: &'static str,
    file: &'static str,
    line: u32,
}

#[derive(Serialize)]
struct HandlerView {
    name: &'static str,
    pattern: &'static str,
    priority: i32,
    file: &'static str,
    line: u32,
}

/// Printed when nothing is registered.
const NOTHING_LINKED: &str = "nothing registered: hooks and handlers are found in the binary \
     that runs this command. The standalone `earn` binary links no application code; run \
     `registry` through `earn::cli` embedded in your application's own binary.\n";

pub(super) fn registry(out: &Output) -> Done {
    let registry = crate::registry();
    let view = RegistryView {
        hooks: registry
            .hooks
            .iter()
            .map(|hook| HookView {
                model: hook.model_name,
                behaviour: None,
                phase: hook.phase.as_str(),
                priority: hook.priority,
                function: hook.function,
                file: hook.file,
                line: hook.line,
            })
            .collect(),
        behaviour_hooks: registry
            .behaviour_hooks
            .iter()
            .map(|hook| HookView {
                model: hook.model,
                behaviour: Some(hook.behaviour),
                phase: hook.phase.as_str(),
                priority: hook.priority,
                function: hook.function,
                file: hook.file,
                line: hook.line,
            })
            .collect(),
        handlers: registry
            .handlers
            .iter()
            .map(|handler| HandlerView {
                name: handler.name,
                pattern: handler.options.pattern,
                priority: handler.options.priority,
                file: handler.file,
                line: handler.line,
            })
            .collect(),
    };
    out.print(&view, || {
        let empty =
            view.hooks.is_empty() && view.behaviour_hooks.is_empty() && view.handlers.is_empty();
        if empty {
            return NOTHING_LINKED.to_owned();
        }
        let mut hooks = Table::new(&["MODEL", "BEHAVIOUR", "PHASE", "PRIORITY", "FUNCTION", "AT"]);
        for hook in view.hooks.iter().chain(&view.behaviour_hooks) {
            hooks.row(vec![
                hook.model.to_owned(),
                hook.behaviour.unwrap_or("-").to_owned(),
                hook.phase.to_owned(),
                hook.priority.to_string(),
                hook.function.to_owned(),
                format!("{}:{}", hook.file, hook.line),
            ]);
        }
        let mut handlers = Table::new(&["HANDLER", "PATTERN", "PRIORITY", "AT"]);
        for handler in &view.handlers {
            handlers.row(vec![
                handler.name.to_owned(),
                handler.pattern.to_owned(),
                handler.priority.to_string(),
                format!("{}:{}", handler.file, handler.line),
            ]);
        }
        format!(
            "hooks ({}):\n{}\nevent handlers ({}):\n{}",
            view.hooks.len() + view.behaviour_hooks.len(),
            hooks.render(),
            view.handlers.len(),
            handlers.render()
        )
    })
}
