//! The operator's command line: `status`, `dead-letters`, `outbox`,
//! `streams`, `delayed`, `registry`, over an [`Admin`] (feature `cli`).
//!
//! The `earn` binary (`cargo run --features cli,postgres --bin earn --
//! status --database …`) builds the [`Admin`] from `--database` and
//! `--redis`/`--stream`/`--group`. An application embeds the same commands
//! as a subcommand of its own binary, where `registry` also lists its
//! hooks and handlers and the admin can include its bus:
//!
//! ```no_run
//! use clap::Parser;
//! use earn::admin::Admin;
//!
//! #[derive(Parser)]
//! struct App {
//!     #[command(flatten)]
//!     earn_options: earn::cli::Options,
//!     #[command(subcommand)]
//!     cmd: AppCmd,
//! }
//!
//! #[derive(clap::Subcommand)]
//! enum AppCmd {
//!     /// Run the application.
//!     Serve,
//!     /// Operate earn's outbox, streams and dead letters.
//!     #[command(subcommand)]
//!     Earn(earn::cli::Command),
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<std::process::ExitCode, earn::Error> {
//! let app = App::parse();
//! match app.cmd {
//!     AppCmd::Serve => Ok(std::process::ExitCode::SUCCESS),
//!     AppCmd::Earn(cmd) => {
//!         let db = earn::Db::connect("sqlite://app.db").await?;
//!         let admin = Admin::new().database(db);
//!         Ok(earn::cli::run(cmd, &admin, &app.earn_options).await)
//!     }
//! }
//! # }
//! ```
//!
//! # Exit codes
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | error: a store unreachable, a bad filter or id, nothing to act on, a destructive action refused or declined |
//! | 2 | usage: an unknown command or option (clap's) |
//! | 3 | `status --fail-on-dead-letters` found dead letters (for cron and CI) |
//!
//! Destructive actions (`dead-letters requeue --all`, `delete`, `purge`,
//! `delayed delete`) ask for confirmation on a terminal; when standard
//! input is not one, they refuse unless given `--yes`.
//!
//! Output is aligned columns for people; `--json` prints one JSON document
//! on standard output for scripts. Errors go to standard error.

mod dead_letters;
mod duration;
mod report;
mod streams;
mod table;

use std::fmt;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use crate::Error;
use crate::admin::Admin;

pub use dead_letters::{DeadLetterCommand, FilterArgs, PageArgs};
pub use duration::parse_duration;
pub use streams::DelayedCommand;

/// Options for every command: flatten them into your top-level parser
/// (`#[command(flatten)]`); they may be written before or after the
/// subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
#[non_exhaustive]
pub struct Options {
    /// Print JSON (one document on standard output) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do destructive actions without asking (required when standard input
    /// is not a terminal).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
}

/// The earn commands: a `clap` subcommand enum to embed in your own parser
/// (see the [module docs](self)), run with [`run`].
#[derive(Debug, Clone, clap::Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Backlogs, stream lag and dead letters per source, from counts only.
    Status {
        /// Exit with code 3 when any source holds dead letters.
        #[arg(long)]
        fail_on_dead_letters: bool,
    },
    /// List, show, requeue, delete or purge dead letters of every source.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// The outbox's backlog and the age of its oldest waiting row.
    Outbox,
    /// The event store's subscriptions: each one's checkpoint, how many
    /// positions it is behind the head, when it last moved.
    Subscriptions,
    /// Each Redis stream: length, delayed events, and per consumer group
    /// and consumer the pending entries, lag and idle time.
    Streams,
    /// Delayed events of a Redis stream: list, run now, delete.
    #[command(subcommand)]
    Delayed(DelayedCommand),
    /// Hooks, behaviour hooks and event handlers, with where they are
    /// declared. Meaningful only embedded in your application's binary:
    /// the standalone `earn` binary links no application code, so lists
    /// nothing.
    Registry,
    /// Serves the web console over the same stores until interrupted
    /// (feature `console`); on 127.0.0.1 unless told otherwise.
    #[cfg(feature = "console")]
    Console {
        /// The address to listen on. Listening beyond this machine needs
        /// your own authentication in front: the console has none.
        #[arg(long, default_value_t = crate::console::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// Show without buttons, and refuse every action.
        #[arg(long)]
        read_only: bool,
    },
}

/// Runs `command` over `admin`, printing to standard output (errors to
/// standard error), and returns the exit code (see the [module
/// docs](self#exit-codes)).
///
/// ```no_run
/// # async fn run(admin: earn::admin::Admin) -> std::process::ExitCode {
/// use earn::cli::{Command, Options};
/// earn::cli::run(Command::Outbox, &admin, &Options::default()).await
/// # }
/// ```
pub async fn run(command: Command, admin: &Admin, options: &Options) -> ExitCode {
    let out = Output {
        json: options.json,
        yes: options.yes,
    };
    let done = match command {
        Command::Status {
            fail_on_dead_letters,
        } => report::status(admin, &out, fail_on_dead_letters).await,
        Command::DeadLetters(command) => dead_letters::run(command, admin, &out).await,
        Command::Outbox => report::outbox(admin, &out).await,
        Command::Subscriptions => report::subscriptions(admin, &out).await,
        Command::Streams => streams::streams(admin, &out).await,
        Command::Delayed(command) => streams::delayed(command, admin, &out).await,
        Command::Registry => report::registry(&out),
        #[cfg(feature = "console")]
        Command::Console { listen, read_only } => console(admin, listen, read_only).await,
    };
    match done {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::DeadLetters) => ExitCode::from(DEAD_LETTERS_FOUND),
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// `earn console`: serves until the listener fails or the process is
/// stopped.
#[cfg(feature = "console")]
async fn console(
    admin: &Admin,
    listen: std::net::SocketAddr,
    read_only: bool,
) -> Result<Outcome, Failure> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| Failure::Invalid(format!("cannot listen on {listen}: {error}")))?;
    let at = listener.local_addr()?;
    eprintln!(
        "earn console on http://{at}/{}",
        if read_only { " (read-only)" } else { "" }
    );
    let options = crate::console::ConsoleOptions::default().read_only(read_only);
    crate::console::serve_on(admin.clone(), options, listener).await?;
    Ok(Outcome::Done)
}

/// The exit code of `status --fail-on-dead-letters` finding dead letters.
pub const DEAD_LETTERS_FOUND: u8 = 3;

/// How a command that did not fail ended.
enum Outcome {
    Done,
    /// `status --fail-on-dead-letters` found some.
    DeadLetters,
}

/// Why a command failed: printed after `error: `, exit code 1.
#[derive(Debug)]
enum Failure {
    /// A store or a filter said no.
    Earn(Error),
    /// The admin lacks what the command needs.
    Missing(&'static str),
    /// Bad input the parser could not catch (an id, a flag combination).
    Invalid(String),
    /// A destructive action without confirmation.
    Refused(String),
    /// Writing the output failed (a closed pipe).
    Io(std::io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Earn(error) => write!(f, "{error}"),
            Failure::Missing(what) => f.write_str(what),
            Failure::Invalid(what) | Failure::Refused(what) => f.write_str(what),
            Failure::Io(error) => write!(f, "writing the output: {error}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Earn(error)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        Failure::Io(error)
    }
}

type Done = Result<Outcome, Failure>;

/// Where and how a command prints.
struct Output {
    json: bool,
    yes: bool,
}

impl Output {
    /// Prints `value` as JSON, or `human` as text.
    fn print<T: serde::Serialize>(&self, value: &T, human: impl FnOnce() -> String) -> Done {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let text = serde_json::to_string_pretty(value)
                .map_err(|e| Failure::Invalid(format!("encoding the JSON output: {e}")))?;
            writeln!(stdout, "{text}")?;
        } else {
            write!(stdout, "{}", human())?;
        }
        Ok(Outcome::Done)
    }

    /// Whether to go ahead with `action` (`purge 12 dead letters`): yes with
    /// `--yes`; asked on a terminal; refused otherwise.
    fn confirm(&self, action: &str) -> Result<(), Failure> {
        if self.yes {
            return Ok(());
        }
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(Failure::Refused(format!(
                "refusing to {action} without confirmation: standard input is not a terminal; \
                 pass --yes to confirm"
            )));
        }
        let mut stderr = std::io::stderr().lock();
        write!(stderr, "{action}? [y/N] ")?;
        stderr.flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        match answer.trim() {
            "y" | "Y" | "yes" | "YES" | "Yes" => Ok(()),
            _ => Err(Failure::Refused(format!("not confirmed: did not {action}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// An application embedding the commands, as the module docs show.
    #[derive(Parser)]
    struct App {
        #[command(flatten)]
        options: Options,
        #[command(subcommand)]
        cmd: AppCmd,
    }

    #[derive(clap::Subcommand)]
    enum AppCmd {
        Serve,
        #[command(subcommand)]
        Earn(Command),
    }

    #[test]
    fn the_commands_embed_in_an_application_parser() {
        App::command().debug_assert();
        let app = App::try_parse_from([
            "app",
            "earn",
            "dead-letters",
            "purge",
            "--event",
            "payment.**",
            "--older-than",
            "2d",
            "--yes",
        ])
        .unwrap();
        assert!(app.options.yes);
        let AppCmd::Earn(Command::DeadLetters(DeadLetterCommand::Purge { filter })) = app.cmd
        else {
            panic!("not a purge");
        };
        assert_eq!(filter.event.as_deref(), Some("payment.**"));
        assert_eq!(
            filter.older_than,
            Some(std::time::Duration::from_secs(172_800))
        );
        assert!(App::try_parse_from(["app", "serve"]).is_ok());
    }
}
