//! `earn dead-letters …`: every source of the admin through the one
//! dead-letter API.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::duration::{format_age, parse_duration};
use super::table::{Table, timestamp, truncate};
use super::{Done, Failure, Output};
use crate::admin::Admin;
use crate::{DeadLetter, DeadLetterFilter, DeadLetters, PageRequest};

/// `earn dead-letters …`.
#[derive(Debug, Clone, clap::Subcommand)]
#[non_exhaustive]
pub enum DeadLetterCommand {
    /// A page of the dead letters the filters match, oldest first, source
    /// after source.
    List {
        /// Which dead letters.
        #[command(flatten)]
        filter: FilterArgs,
        /// Which page.
        #[command(flatten)]
        page: PageArgs,
    },
    /// One dead letter in full: reason, attempts, times, the event.
    Show {
        /// Its id (as `list` shows it).
        id: String,
        /// The source holding it; every source is searched without it.
        #[arg(long)]
        source: Option<String>,
    },
    /// Sends a dead letter back for delivery: one by id, or `--all` that
    /// the filters match (asks first).
    Requeue {
        /// The dead letter's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead letter the filters match.
        #[arg(long)]
        all: bool,
        /// Which dead letters (`--source` also with an id).
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Deletes a dead letter for good: one by id, or `--all` that the
    /// filters match (asks first).
    Delete {
        /// The dead letter's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead letter the filters match.
        #[arg(long)]
        all: bool,
        /// Which dead letters (`--source` also with an id).
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Deletes every dead letter the filters match (asks first).
    Purge {
        /// Which dead letters.
        #[command(flatten)]
        filter: FilterArgs,
    },
}

/// Which dead letters: every condition given must hold.
#[derive(Debug, Clone, Default, clap::Args)]
#[non_exhaustive]
pub struct FilterArgs {
    /// Only this source: `outbox`, `bus`, `redis:{stream}`.
    #[arg(long)]
    pub source: Option<String>,
    /// An event name (`payment.failed`) or a prefix (`payment.**`).
    #[arg(long)]
    pub event: Option<String>,
    /// The handler that gave up (its full name).
    #[arg(long)]
    pub handler: Option<String>,
    /// Dead-lettered longer ago than this: `90s`, `15m`, `1h`, `2d`.
    #[arg(long, value_parser = parse_duration, value_name = "AGE")]
    pub older_than: Option<Duration>,
    /// Dead-lettered within this: `90s`, `15m`, `1h`, `2d`.
    #[arg(long, value_parser = parse_duration, value_name = "AGE")]
    pub newer_than: Option<Duration>,
}

impl FilterArgs {
    /// The filter, checked: a bad event pattern is an error here, before
    /// any store is asked.
    pub fn to_filter(&self) -> Result<DeadLetterFilter, crate::Error> {
        let now = SystemTime::now();
        let mut filter = DeadLetterFilter::default();
        if let Some(event) = &self.event {
            filter = filter.event(event);
        }
        if let Some(handler) = &self.handler {
            filter = filter.handler(handler);
        }
        if let Some(age) = self.older_than {
            filter = filter.failed_before(now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH));
        }
        if let Some(age) = self.newer_than {
            filter = filter.failed_after(now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH));
        }
        filter.validate()?;
        Ok(filter)
    }

    /// Whether a condition other than the source is set.
    fn narrows(&self) -> bool {
        self.event.is_some()
            || self.handler.is_some()
            || self.older_than.is_some()
            || self.newer_than.is_some()
    }
}

/// Which page of a list.
#[derive(Debug, Clone, Copy, clap::Args)]
#[non_exhaustive]
pub struct PageArgs {
    /// The page, from 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub page: u64,
    /// Items per page.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub per_page: u64,
}

/// A dead letter as `--json` prints it.
#[derive(Serialize)]
struct DeadLetterView {
    source: String,
    id: String,
    name: String,
    handler: Option<String>,
    reason: String,
    attempts: u32,
    first_failed_at: String,
    last_failed_at: String,
    event: Option<serde_json::Value>,
    raw: Option<String>,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(letter: &DeadLetter) -> DeadLetterView {
        DeadLetterView {
            source: letter.source.clone(),
            id: letter.id.clone(),
            name: letter.name.clone(),
            handler: letter.handler.clone(),
            reason: letter.reason.clone(),
            attempts: letter.attempts,
            first_failed_at: timestamp(letter.first_failed_at),
            last_failed_at: timestamp(letter.last_failed_at),
            event: letter
                .event
                .as_ref()
                .and_then(|event| serde_json::to_value(event).ok()),
            raw: letter.raw.clone(),
        }
    }
}

#[derive(Serialize)]
struct ListView {
    total: u64,
    page: u64,
    per_page: u64,
    dead_letters: Vec<DeadLetterView>,
}

#[derive(Serialize)]
struct ActionView {
    action: &'static str,
    count: u64,
    ids: Vec<IdView>,
}

#[derive(Serialize)]
struct IdView {
    source: String,
    id: String,
}

pub(super) async fn run(command: DeadLetterCommand, admin: &Admin, out: &Output) -> Done {
    match command {
        DeadLetterCommand::List { filter, page } => list(admin, out, &filter, page).await,
        DeadLetterCommand::Show { id, source } => show(admin, out, &id, source.as_deref()).await,
        DeadLetterCommand::Requeue { id, all, filter } => {
            let target = target(id, all, &filter)?;
            act(admin, out, Action::Requeue, target, &filter).await
        }
        DeadLetterCommand::Delete { id, all, filter } => {
            let target = target(id, all, &filter)?;
            act(admin, out, Action::Delete, target, &filter).await
        }
        DeadLetterCommand::Purge { filter } => {
            act(admin, out, Action::Delete, Target::All, &filter).await
        }
    }
}

/// What `requeue` and `delete` act on.
enum Target {
    One(String),
    All,
}

fn target(id: Option<String>, all: bool, filter: &FilterArgs) -> Result<Target, Failure> {
    match (id, all) {
        (Some(id), false) if filter.narrows() => Err(Failure::Invalid(format!(
            "`{id}` names one dead letter: --event, --handler, --older-than and --newer-than \
             go with --all (only --source goes with an id)"
        ))),
        (Some(id), false) => Ok(Target::One(id)),
        _ => Ok(Target::All),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Requeue,
    Delete,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Requeue => "requeue",
            Action::Delete => "delete",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::Requeue => "requeued",
            Action::Delete => "deleted",
        }
    }
}

/// The sources `source` names (all of the admin's without it).
fn sources<'a>(
    admin: &'a Admin,
    source: Option<&str>,
) -> Result<Vec<&'a Arc<dyn DeadLetters>>, Failure> {
    if admin.sources().is_empty() {
        return Err(Failure::Missing(
            "no dead-letter source: give the admin a database, a bus or a stream \
             (the `earn` binary: --database URL and/or --redis URL --stream NAME --group NAME)",
        ));
    }
    match source {
        Some(name) => Ok(vec![admin.source_named(name)?]),
        None => Ok(admin.sources().iter().collect()),
    }
}

async fn list(admin: &Admin, out: &Output, args: &FilterArgs, page: PageArgs) -> Done {
    let filter = args.to_filter()?;
    let sources = sources(admin, args.source.as_deref())?;
    let mut total = 0;
    let mut counts = Vec::with_capacity(sources.len());
    for source in &sources {
        let count = source.count(&filter).await?;
        counts.push(count);
        total += count;
    }
    // The page of the sources' lists laid end to end.
    let request = PageRequest::page(page.page, page.per_page);
    let (mut skip, mut wanted) = (request.offset, request.limit);
    let mut letters = Vec::new();
    for (source, count) in sources.iter().zip(counts) {
        if wanted == 0 {
            break;
        }
        if skip >= count {
            skip -= count;
            continue;
        }
        let part = PageRequest {
            offset: skip,
            limit: wanted,
        };
        let found = source.list(&filter, part).await?;
        wanted = wanted.saturating_sub(found.len() as u64);
        letters.extend(found);
        skip = 0;
    }
    let view = ListView {
        total,
        page: page.page,
        per_page: page.per_page,
        dead_letters: letters.iter().map(DeadLetterView::from).collect(),
    };
    out.print(&view, || {
        let now = SystemTime::now();
        let mut table = Table::new(&[
            "SOURCE", "ID", "EVENT", "HANDLER", "ATTEMPTS", "AGE", "REASON",
        ]);
        for letter in &letters {
            table.row(vec![
                letter.source.clone(),
                letter.id.clone(),
                letter.name.clone(),
                letter.handler.clone().unwrap_or_else(|| "-".to_owned()),
                letter.attempts.to_string(),
                format_age(
                    now.duration_since(letter.last_failed_at)
                        .unwrap_or_default(),
                ),
                truncate(&letter.reason, 60),
            ]);
        }
        table.render_page(
            letters.len(),
            total,
            "dead letter(s) matching",
            page.page,
            page.per_page,
        )
    })
}

/// The dead letter `id` and its source: the first of `sources` holding it.
async fn find<'a>(
    sources: &[&'a Arc<dyn DeadLetters>],
    id: &str,
) -> Result<(&'a Arc<dyn DeadLetters>, DeadLetter), Failure> {
    for source in sources {
        if let Some(letter) = source.get(id).await? {
            return Ok((source, letter));
        }
    }
    let names: Vec<String> = sources.iter().map(|s| s.source()).collect();
    Err(Failure::Invalid(format!(
        "no dead letter with id `{id}` in {}: it was never there, or was already requeued or \
         deleted",
        names.join(", ")
    )))
}

async fn show(admin: &Admin, out: &Output, id: &str, source: Option<&str>) -> Done {
    let sources = sources(admin, source)?;
    let (_, letter) = find(&sources, id).await?;
    out.print(&DeadLetterView::from(&letter), || {
        let mut text = format!(
            "source:       {}\nid:           {}\nevent:        {}\nhandler:      {}\n\
             attempts:     {}\nfirst failed: {}\nlast failed:  {}\nreason:       {}\n",
            letter.source,
            letter.id,
            letter.name,
            letter.handler.as_deref().unwrap_or("-"),
            letter.attempts,
            timestamp(letter.first_failed_at),
            timestamp(letter.last_failed_at),
            letter.reason,
        );
        if let Some(event) = &letter.event {
            let json = serde_json::to_string_pretty(event).unwrap_or_default();
            text.push_str(&format!("stored event:\n{json}\n"));
        } else if let Some(raw) = &letter.raw {
            text.push_str(&format!("stored form (not a valid event):\n{raw}\n"));
        }
        text
    })
}

async fn act(
    admin: &Admin,
    out: &Output,
    action: Action,
    target: Target,
    args: &FilterArgs,
) -> Done {
    let sources = sources(admin, args.source.as_deref())?;
    // What was acted on by id; a bulk delete only counts.
    let mut ids = Vec::new();
    let mut count = 0;
    match target {
        Target::One(id) => {
            let (source, _) = find(&sources, &id).await?;
            if action == Action::Delete {
                out.confirm(&format!("delete dead letter {id} of {}", source.source()))?;
            }
            match action {
                Action::Requeue => source.requeue(&id).await?,
                Action::Delete => source.delete(&id).await?,
            }
            ids.push(IdView {
                source: source.source(),
                id,
            });
            count = 1;
        }
        Target::All => {
            let filter = args.to_filter()?;
            let mut matching = 0;
            for source in &sources {
                matching += source.count(&filter).await?;
            }
            if matching > 0 {
                let names: Vec<String> = sources.iter().map(|s| s.source()).collect();
                out.confirm(&format!(
                    "{} {matching} dead letter(s) of {}",
                    action.verb(),
                    names.join(", ")
                ))?;
            }
            for source in &sources {
                match action {
                    // One call per source: the store deletes in bulk.
                    Action::Delete => count += source.purge(&filter).await?,
                    Action::Requeue => {
                        for id in matching_ids(source.as_ref(), &filter).await? {
                            source.requeue(&id).await?;
                            count += 1;
                            ids.push(IdView {
                                source: source.source(),
                                id,
                            });
                        }
                    }
                }
            }
        }
    }
    let view = ActionView {
        action: action.done(),
        count,
        ids,
    };
    out.print(&view, || {
        let mut text = String::new();
        for id in &view.ids {
            text.push_str(&format!("{} {} {}\n", action.done(), id.source, id.id));
        }
        text.push_str(&format!(
            "{} {} dead letter(s)\n",
            action.done(),
            view.count
        ));
        text
    })
}

/// The ids of every dead letter `filter` matches in `source`, read before
/// acting on any (acting shifts the pages).
async fn matching_ids(
    source: &dyn DeadLetters,
    filter: &DeadLetterFilter,
) -> Result<Vec<String>, Failure> {
    const PAGE: u64 = 500;
    let mut ids = Vec::new();
    loop {
        let page = PageRequest {
            offset: ids.len() as u64,
            limit: PAGE,
        };
        let found = source.list(filter, page).await?;
        let full = found.len() as u64 == PAGE;
        ids.extend(found.into_iter().map(|letter| letter.id));
        if !full {
            return Ok(ids);
        }
    }
}
