//! The dashboard's graph: a task samples [`Admin::status`] every few
//! seconds and keeps the last samples in a ring. It records what the
//! status counts (dead letters in every source, the outbox backlog, the
//! streams' pending and unread entries), not the `metrics` counters,
//! which cannot be read back from the facade.
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
}

impl Sample {
    pub(super) fn of(status: &Status) -> Sample {
        #[cfg(feature = "redis")]
        let stream_lag = status
            .streams
            .iter()
            .map(|s| s.lag.pending + s.lag.lag.unwrap_or(0))
            .sum();
        #[cfg(not(feature = "redis"))]
        let stream_lag = 0;
        Sample {
            at: SystemTime::now(),
            dead_letters: status.dead_letter_total(),
            backlog: status.outbox.map_or(0, |o| o.backlog),
            stream_lag,
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

/// One line of the graph.
struct Series {
    label: &'static str,
    colour: &'static str,
    value: fn(&Sample) -> u64,
}

const SERIES: [Series; 3] = [
    Series {
        label: "dead letters",
        colour: "#c4320a",
        value: |s| s.dead_letters,
    },
    Series {
        label: "outbox backlog",
        colour: "#2457c5",
        value: |s| s.backlog,
    },
    Series {
        label: "stream pending + unread",
        colour: "#067647",
        value: |s| s.stream_lag,
    },
];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
/// The margin around the plot, for the labels.
const PAD: f64 = 24.0;
/// The plot inside the margins.
const PLOT_WIDTH: f64 = 672.0;
const PLOT_HEIGHT: f64 = 112.0;

/// The samples as an inline SVG line graph, one line per series, on one
/// scale from 0 to the highest value.
pub(super) fn graph(samples: &[Sample]) -> Markup {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return html! { p.muted { "No samples yet: the graph fills in as the console samples the status." } };
    };
    let since = |s: &Sample| {
        s.at.duration_since(first.at)
            .unwrap_or_default()
            .as_secs_f64()
    };
    let span = since(last).max(1.0);
    let top = samples
        .iter()
        .flat_map(|s| SERIES.iter().map(move |series| (series.value)(s)))
        .max()
        .unwrap_or(0)
        .max(1);
    let x = |s: &Sample| (since(s) / span).mul_add(PLOT_WIDTH, PAD);
    let y = |v: u64| (v as f64 / top as f64).mul_add(-PLOT_HEIGHT, HEIGHT - PAD);
    html! {
        svg.graph viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
            aria-label="dead letters, outbox backlog and stream lag over the last minutes" {
            line x1=(PAD) y1=(y(0)) x2=(WIDTH - PAD) y2=(y(0)) stroke="#d0d5dd" {}
            line x1=(PAD) y1=(y(top)) x2=(WIDTH - PAD) y2=(y(top)) stroke="#eef0f3" {}
            text x="2" y=(y(top) + 4.0) font-size="10" fill="#667085" { (top) }
            text x="2" y=(y(0) + 4.0) font-size="10" fill="#667085" { "0" }
            text x=(PAD) y=(HEIGHT - 6.0) font-size="10" fill="#667085" {
                (super::layout::span(std::time::Duration::from_secs_f64(span))) " ago"
            }
            text x=(WIDTH - PAD) y=(HEIGHT - 6.0) font-size="10" fill="#667085" text-anchor="end" { "now" }
            @for series in &SERIES {
                polyline fill="none" stroke=(series.colour) stroke-width="2" data-series=(series.label)
                    points=(samples.iter().map(|s| format!("{:.1},{:.1}", x(s), y((series.value)(s)))).collect::<Vec<_>>().join(" ")) {}
            }
        }
        p.legend {
            @for series in &SERIES {
                span { i style=(format!("background:{}", series.colour)) {} (series.label) " " strong { ((series.value)(last)) } }
            }
        }
    }
}
