//! The `earn` command: operator access to an application's outbox and
//! Redis streams (and NATS streams, with the `nats` feature) from outside
//! it. See `earn::cli` for the commands and
//! exit codes, and for embedding them in your own binary (where
//! `registry` can list your hooks and handlers).
//!
//! ```text
//! earn status --database postgres://… --redis redis://… --stream orders --group billing
//! earn dead-letters list --event 'payment.**' --older-than 1h
//! earn dead-letters requeue --all --source outbox --yes
//! ```

use std::process::ExitCode;

use clap::Parser;
use earn::RedactedUrl;
use earn::admin::Admin;
use earn::cli::{Command, Options};
use earn::redis::{RedisSettings, RedisStreams};

/// Operate earn's transactional outbox, Redis streams and dead letters.
///
/// Works with a database only, Redis only, or both. Exit codes: 0 done,
/// 1 error, 2 usage, 3 `status --fail-on-dead-letters` found dead letters.
#[derive(Debug, Parser)]
#[command(name = "earn", version)]
struct Cli {
    #[command(flatten)]
    stores: Stores,
    #[command(flatten)]
    options: Options,
    #[command(subcommand)]
    command: Command,
}

/// Where the stores are. URLs carry passwords: `--help` names the
/// variables, never their values.
#[derive(Debug, clap::Args)]
struct Stores {
    /// The application's database (its outbox tables): `postgres://…`,
    /// `mysql://…`, `sqlite://path.db`.
    #[arg(
        long,
        env = "EARN_DATABASE_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    database: Option<String>,
    /// The Redis server of the streams.
    #[arg(
        long,
        env = "EARN_REDIS_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    redis: Option<String>,
    /// A stream to watch (repeatable); needs --redis and --group.
    #[arg(long = "stream", global = true, value_name = "NAME")]
    streams: Vec<String>,
    /// The NATS server of the NATS streams (needs the `nats` feature).
    #[cfg(feature = "nats")]
    #[arg(
        long,
        env = "EARN_NATS_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    nats: Option<String>,
    /// A NATS JetStream stream to watch (repeatable); needs --nats and --group.
    #[cfg(feature = "nats")]
    #[arg(long = "nats-stream", global = true, value_name = "NAME")]
    nats_streams: Vec<String>,
    /// Also report the event store of --database: its head and every
    /// subscription's checkpoint (`status`, `subscriptions`).
    #[arg(long, global = true)]
    event_store: bool,
    /// The consumer group whose lag `status` reports for each stream.
    #[arg(long, env = "EARN_REDIS_GROUP", global = true, value_name = "NAME")]
    group: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let admin = match admin(&cli.stores, &cli.command).await {
        Ok(admin) => admin,
        Err(Problem::Usage(message)) => {
            eprintln!("error: {message}\n\nFor more information, try '--help'.");
            return ExitCode::from(2);
        }
        Err(Problem::Failed(message)) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    earn::cli::run(cli.command, &admin, &cli.options).await
}

enum Problem {
    /// Options that do not go together: exit code 2, as clap's.
    Usage(String),
    /// A store that cannot be reached: exit code 1.
    Failed(String),
}

async fn admin(stores: &Stores, command: &Command) -> Result<Admin, Problem> {
    let mut admin = Admin::new();
    if stores.event_store && stores.database.is_none() {
        return Err(Problem::Usage(
            "--event-store needs --database URL (or EARN_DATABASE_URL)".to_owned(),
        ));
    }
    if !stores.streams.is_empty() {
        if stores.redis.is_none() {
            return Err(Problem::Usage(
                "--stream needs --redis URL (or EARN_REDIS_URL)".to_owned(),
            ));
        }
        if stores.group.is_none() {
            return Err(Problem::Usage(
                "--stream needs --group NAME: the consumer group whose lag `status` reports"
                    .to_owned(),
            ));
        }
    }
    #[cfg(feature = "nats")]
    if !stores.nats_streams.is_empty() {
        if stores.nats.is_none() {
            return Err(Problem::Usage(
                "--nats-stream needs --nats URL (or EARN_NATS_URL)".to_owned(),
            ));
        }
        if stores.group.is_none() {
            return Err(Problem::Usage(
                "--nats-stream needs --group NAME: the group whose lag `status` reports".to_owned(),
            ));
        }
    }
    #[cfg(feature = "nats")]
    let no_nats = stores.nats_streams.is_empty();
    #[cfg(not(feature = "nats"))]
    let no_nats = true;
    let registry_only = matches!(command, Command::Registry);
    if stores.database.is_none() && stores.streams.is_empty() && no_nats && !registry_only {
        return Err(Problem::Usage(
            "nothing to operate on: pass --database URL (or set EARN_DATABASE_URL), \
             and/or --redis URL --stream NAME --group NAME"
                .to_owned(),
        ));
    }
    if let Some(url) = &stores.database {
        let db = earn::Db::connect(url).await.map_err(|error| {
            Problem::Failed(format!(
                "cannot connect to the database {}: {error}",
                RedactedUrl::new(url)
            ))
        })?;
        if stores.event_store {
            admin = admin.store(earn::store::EventStore::new(&db));
        }
        admin = admin.database(db);
    }
    if let (Some(url), Some(group)) = (&stores.redis, &stores.group) {
        for stream in &stores.streams {
            let settings = RedisSettings::new(stream.as_str(), group.as_str());
            let streams = RedisStreams::connect(url, settings)
                .await
                .map_err(|error| {
                    Problem::Failed(format!(
                        "cannot connect to Redis {} for stream `{stream}`: {error}",
                        RedactedUrl::new(url)
                    ))
                })?;
            admin = admin.stream(streams);
        }
    }
    #[cfg(feature = "nats")]
    if let (Some(url), Some(group)) = (&stores.nats, &stores.group) {
        for stream in &stores.nats_streams {
            let settings = earn::nats::NatsSettings::new(stream.as_str(), group.as_str());
            let streams = earn::nats::NatsStreams::connect(url, settings)
                .await
                .map_err(|error| {
                    Problem::Failed(format!(
                        "cannot connect to NATS {} for stream `{stream}`: {error}",
                        RedactedUrl::new(url)
                    ))
                })?;
            admin = admin.nats(streams);
        }
    }
    Ok(admin)
}
