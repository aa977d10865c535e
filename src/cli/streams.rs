//! `earn streams` and `earn delayed …`: Redis Streams, their consumer
//! groups and delayed events.

use std::time::SystemTime;

use serde::Serialize;

use super::dead_letters::PageArgs;
use super::duration::format_age;
use super::table::{Table, epoch_ms, timestamp};
use super::{Done, Failure, Output};
use crate::PageRequest;
use crate::admin::Admin;
use crate::redis::RedisStreams;

/// `earn delayed …`: events waiting in `{stream}:delayed` for their time.
#[derive(Debug, Clone, clap::Subcommand)]
#[non_exhaustive]
pub enum DelayedCommand {
    /// A page of the delayed events, soonest due first.
    List {
        /// The stream, when the admin has several (named `--in`, as the
        /// `earn` binary's `--stream` adds a stream to watch).
        #[arg(long = "in", value_name = "STREAM")]
        stream: Option<String>,
        /// Which page.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Moves one delayed event into its stream now.
    Run {
        /// The event's id (as `delayed list` shows it).
        id: String,
        /// The stream, when the admin has several (named `--in`, as the
        /// `earn` binary's `--stream` adds a stream to watch).
        #[arg(long = "in", value_name = "STREAM")]
        stream: Option<String>,
    },
    /// Deletes one delayed event without running it (asks first).
    Delete {
        /// The event's id (as `delayed list` shows it).
        id: String,
        /// The stream, when the admin has several (named `--in`, as the
        /// `earn` binary's `--stream` adds a stream to watch).
        #[arg(long = "in", value_name = "STREAM")]
        stream: Option<String>,
    },
}

#[derive(Serialize)]
struct StreamView {
    stream: String,
    length: u64,
    delayed: u64,
    groups: Vec<GroupView>,
}

#[derive(Serialize)]
struct GroupView {
    name: String,
    pending: u64,
    /// `None` when Redis cannot tell.
    lag: Option<u64>,
    last_delivered: String,
    consumers: Vec<ConsumerView>,
}

#[derive(Serialize)]
struct ConsumerView {
    name: String,
    pending: u64,
    idle_ms: u64,
}

const NO_STREAM: &str = "no Redis stream: give the admin one \
     (the `earn` binary: --redis URL --stream NAME --group NAME)";

pub(super) async fn streams(admin: &Admin, out: &Output) -> Done {
    if admin.streams().is_empty() {
        return Err(Failure::Missing(NO_STREAM));
    }
    let mut views = Vec::new();
    for streams in admin.streams() {
        let lag = streams.lag().await?;
        let groups = streams.groups().await?;
        views.push(StreamView {
            stream: streams.settings().get_stream().to_owned(),
            length: lag.length,
            delayed: lag.delayed,
            groups: groups
                .into_iter()
                .map(|group| GroupView {
                    name: group.name,
                    pending: group.pending,
                    lag: group.lag,
                    last_delivered: group.last_delivered,
                    consumers: group
                        .consumers
                        .into_iter()
                        .map(|consumer| ConsumerView {
                            name: consumer.name,
                            pending: consumer.pending,
                            idle_ms: u64::try_from(consumer.idle.as_millis()).unwrap_or(u64::MAX),
                        })
                        .collect(),
                })
                .collect(),
        });
    }
    out.print(&views, || {
        let mut text = String::new();
        for (i, stream) in views.iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(&format!(
                "stream {}: {} entries, {} delayed\n",
                stream.stream, stream.length, stream.delayed
            ));
            if stream.groups.is_empty() {
                text.push_str("no consumer groups\n");
                continue;
            }
            let mut table = Table::new(&[
                "GROUP",
                "CONSUMER",
                "PENDING",
                "UNREAD",
                "IDLE",
                "LAST DELIVERED",
            ]);
            for group in &stream.groups {
                table.row(vec![
                    group.name.clone(),
                    "-".to_owned(),
                    group.pending.to_string(),
                    group
                        .lag
                        .map_or_else(|| "?".to_owned(), |lag| lag.to_string()),
                    "-".to_owned(),
                    group.last_delivered.clone(),
                ]);
                for consumer in &group.consumers {
                    table.row(vec![
                        group.name.clone(),
                        consumer.name.clone(),
                        consumer.pending.to_string(),
                        "-".to_owned(),
                        format_age(std::time::Duration::from_millis(consumer.idle_ms)),
                        "-".to_owned(),
                    ]);
                }
            }
            text.push_str(&table.render());
        }
        text
    })
}

/// The stream `name` of the admin, or its only one.
fn stream<'a>(admin: &'a Admin, name: Option<&str>) -> Result<&'a RedisStreams, Failure> {
    let all = admin.streams();
    let names = || {
        all.iter()
            .map(|s| s.settings().get_stream())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, all) {
        (_, []) => Err(Failure::Missing(NO_STREAM)),
        (None, [only]) => Ok(only),
        (None, _) => Err(Failure::Invalid(format!(
            "several streams: pass --in STREAM (one of {})",
            names()
        ))),
        (Some(name), _) => all
            .iter()
            .find(|s| s.settings().get_stream() == name)
            .ok_or_else(|| {
                Failure::Invalid(format!("no stream `{name}`; the streams are: {}", names()))
            }),
    }
}

fn event_id(id: &str) -> Result<uuid::Uuid, Failure> {
    uuid::Uuid::parse_str(id).map_err(|_| {
        Failure::Invalid(format!(
            "`{id}` is not a delayed event's id (a UUID, as `delayed list` shows it)"
        ))
    })
}

#[derive(Serialize)]
struct DelayedView {
    id: Option<String>,
    name: String,
    due_at: String,
    due_ms: u64,
    event: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct DelayedListView {
    stream: String,
    total: u64,
    page: u64,
    per_page: u64,
    delayed: Vec<DelayedView>,
}

#[derive(Serialize)]
struct DelayedActionView {
    action: &'static str,
    stream: String,
    id: String,
    /// The new entry's id in the stream, for `run`.
    entry: Option<String>,
}

pub(super) async fn delayed(command: DelayedCommand, admin: &Admin, out: &Output) -> Done {
    match command {
        DelayedCommand::List { stream: name, page } => {
            let streams = stream(admin, name.as_deref())?;
            let total = streams.lag().await?.delayed;
            let found = streams
                .delayed(PageRequest::page(page.page, page.per_page))
                .await?;
            let view = DelayedListView {
                stream: streams.settings().get_stream().to_owned(),
                total,
                page: page.page,
                per_page: page.per_page,
                delayed: found
                    .iter()
                    .map(|delayed| DelayedView {
                        id: delayed.id.map(|id| id.to_string()),
                        name: delayed.name.clone(),
                        due_at: timestamp(delayed.due),
                        due_ms: epoch_ms(delayed.due),
                        event: delayed
                            .event
                            .as_ref()
                            .and_then(|event| serde_json::to_value(event).ok()),
                    })
                    .collect(),
            };
            out.print(&view, || {
                let now = SystemTime::now();
                let mut table = Table::new(&["DUE", "IN", "EVENT", "ID"]);
                for (delayed, shown) in found.iter().zip(&view.delayed) {
                    let due_in = match delayed.due.duration_since(now) {
                        Ok(wait) => format_age(wait),
                        Err(_) => "due".to_owned(),
                    };
                    table.row(vec![
                        shown.due_at.clone(),
                        due_in,
                        shown.name.clone(),
                        shown
                            .id
                            .clone()
                            .unwrap_or_else(|| "(not a valid event)".to_owned()),
                    ]);
                }
                table.render_page(
                    found.len(),
                    total,
                    &format!("delayed event(s) in {}", view.stream),
                    page.page,
                    page.per_page,
                )
            })
        }
        DelayedCommand::Run { id, stream: name } => {
            let streams = stream(admin, name.as_deref())?;
            let entry = streams.run_delayed(event_id(&id)?).await?;
            let view = DelayedActionView {
                action: "run",
                stream: streams.settings().get_stream().to_owned(),
                id,
                entry: Some(entry),
            };
            out.print(&view, || {
                format!(
                    "ran delayed event {} now: entry {} of {}\n",
                    view.id,
                    view.entry.as_deref().unwrap_or_default(),
                    view.stream
                )
            })
        }
        DelayedCommand::Delete { id, stream: name } => {
            let streams = stream(admin, name.as_deref())?;
            let event = event_id(&id)?;
            let stream_name = streams.settings().get_stream().to_owned();
            out.confirm(&format!("delete delayed event {id} of {stream_name}"))?;
            streams.delete_delayed(event).await?;
            let view = DelayedActionView {
                action: "deleted",
                stream: stream_name,
                id,
                entry: None,
            };
            out.print(&view, || {
                format!("deleted delayed event {} of {}\n", view.id, view.stream)
            })
        }
    }
}
