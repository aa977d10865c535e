//! The dashboard's graphs: a task samples [`Admin::status`] every few
//! seconds and keeps the last samples in a ring. It records what the
//! status counts (dead letters in every source, the outbox backlog, the
//! streams' pending and unread entries) and, with a bus, its handler calls
//! and failures, drawn as rates per minute (the `metrics` counters cannot
//! be read back from the facade).
//!
//! [`Admin::status`]: crate::admin::Admin::status

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use maud::{Markup, html};

use super::Console;
use crate::admin::Status;

/// One sample of the status.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    pub(super) at: SystemTime,
    pub(super) dead_letters: u64,
    pub(super) backlog: u64,
    pub(super) stream_lag: u64,
    /// The bus's handler calls so far: succeeded, failed.
    pub(super) handlers: Option<(u64, u64)>,
}

impl Sample {
    pub(super) fn of(status: &Status) -> Sample {
        let stream_lag = status.broker_lags().iter().map(|row| row.behind()).sum();
        Sample {
            at: SystemTime::now(),
            dead_letters: status.dead_letter_total(),
            backlog: status.outbox.map_or(0, |o| o.backlog),
            stream_lag,
            handlers: status.bus_handlers.map(|h| (h.succeeded, h.failed)),
        }
    }
}

/// The last samples, oldest first, and whether the task runs.
#[derive(Debug)]
pub(super) struct Samples {
    ring: Mutex<VecDeque<Sample>>,
    capacity: usize,
    started: AtomicBool,
}

impl Samples {
    pub(super) fn new(capacity: usize) -> Samples {
        Samples {
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            started: AtomicBool::new(false),
        }
    }

    pub(super) fn push(&self, sample: Sample) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    pub(super) fn snapshot(&self) -> Vec<Sample> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().copied().collect()
    }
}

/// Starts the sampling task once, if a Tokio runtime is at hand (every
/// request handler calls this too). The task holds the console weakly and
/// ends when the router is dropped.
pub(super) fn start(console: &Arc<Console>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if console.samples.started.swap(true, Ordering::SeqCst) {
        return;
    }
    let weak: Weak<Console> = Arc::downgrade(console);
    let every = console.options.sample_every;
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(console) = weak.upgrade() else {
                return;
            };
            // A failed status leaves a gap in the graph; the dashboard
            // shows the error itself.
            if let Ok(status) = console.admin.status().await {
                console.samples.push(Sample::of(&status));
            }
        }
    });
}

/// One line of a graph.
struct Series {
    label: &'static str,
    colour: &'static str,
}

const COUNTS: [Series; 3] = [
    Series {
        label: "dead letters",
        colour: "#c4320a",
    },
    Series {
        label: "outbox backlog",
        colour: "#2457c5",
    },
    Series {
        label: "stream pending + unread",
        colour: "#067647",
    },
];

const RATES: [Series; 2] = [
    Series {
        label: "handled / min",
        colour: "#067647",
    },
    Series {
        label: "failed / min",
        colour: "#c4320a",
    },
];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
/// The margin around the plot, for the labels.
const PAD: f64 = 24.0;
/// The plot inside the margins.
const PLOT_WIDTH: f64 = 672.0;
const PLOT_HEIGHT: f64 = 112.0;

/// The counts the status gives, as an inline SVG line graph.
pub(super) fn graph(samples: &[Sample]) -> Markup {
    let points: Vec<(SystemTime, Vec<u64>)> = samples
        .iter()
        .map(|s| (s.at, vec![s.dead_letters, s.backlog, s.stream_lag]))
        .collect();
    lines(
        &points,
        &COUNTS,
        "dead letters, outbox backlog and stream lag over the last minutes",
    )
}

/// The bus's handler calls that succeeded and failed, per minute, between
/// consecutive samples; `None` without a bus.
pub(super) fn rate_graph(samples: &[Sample]) -> Option<Markup> {
    let with_bus: Vec<(SystemTime, (u64, u64))> = samples
        .iter()
        .filter_map(|s| Some((s.at, s.handlers?)))
        .collect();
    if with_bus.is_empty() {
        return None;
    }
    let points: Vec<(SystemTime, Vec<u64>)> = with_bus
        .windows(2)
        .map(|pair| {
            let ((before, (ok0, bad0)), (at, (ok1, bad1))) = (pair[0], pair[1]);
            let seconds = at.duration_since(before).unwrap_or_default().as_secs_f64();
            let per_minute = |delta: u64| {
                if seconds > 0.0 {
                    (delta as f64 * 60.0 / seconds).round() as u64
                } else {
                    0
                }
            };
            (
                at,
                vec![
                    per_minute(ok1.saturating_sub(ok0)),
                    per_minute(bad1.saturating_sub(bad0)),
                ],
            )
        })
        .collect();
    Some(lines(
        &points,
        &RATES,
        "handler calls handled and failed per minute over the last minutes",
    ))
}

/// `points` as an inline SVG line graph, one line per series, on one
/// scale from 0 to the highest value, and a legend with the last values.
fn lines(points: &[(SystemTime, Vec<u64>)], series: &[Series], label: &str) -> Markup {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! { p.muted { "No samples yet: the graph fills in as the console samples the status." } };
    };
    let since = |at: SystemTime| at.duration_since(first.0).unwrap_or_default().as_secs_f64();
    let span = since(last.0).max(1.0);
    let top = points
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let x = |at: SystemTime| (since(at) / span).mul_add(PLOT_WIDTH, PAD);
    let y = |v: u64| (v as f64 / top as f64).mul_add(-PLOT_HEIGHT, HEIGHT - PAD);
    html! {
        svg.graph viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            line x1=(PAD) y1=(y(0)) x2=(WIDTH - PAD) y2=(y(0)) stroke="#d0d5dd" {}
            line x1=(PAD) y1=(y(top)) x2=(WIDTH - PAD) y2=(y(top)) stroke="#eef0f3" {}
            text x="2" y=(y(top) + 4.0) font-size="10" fill="#667085" { (top) }
            text x="2" y=(y(0) + 4.0) font-size="10" fill="#667085" { "0" }
            text x=(PAD) y=(HEIGHT - 6.0) font-size="10" fill="#667085" {
                (super::layout::span(std::time::Duration::from_secs_f64(span))) " ago"
            }
            text x=(WIDTH - PAD) y=(HEIGHT - 6.0) font-size="10" fill="#667085" text-anchor="end" { "now" }
            @for (i, line) in series.iter().enumerate() {
                polyline fill="none" stroke=(line.colour) stroke-width="2" data-series=(line.label)
                    points=(points.iter().map(|(at, values)| format!("{:.1},{:.1}", x(*at), y(values[i]))).collect::<Vec<_>>().join(" ")) {}
            }
        }
        p.legend {
            @for (i, line) in series.iter().enumerate() {
                span { i style=(format!("background:{}", line.colour)) {} (line.label) " " strong { (last.1[i]) } }
            }
        }
    }
}
