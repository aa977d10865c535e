//! What carrying the W3C trace context costs per event (feature `otel`),
//! with an OpenTelemetry layer installed whose spans go to a processor that
//! drops them (an exporter's own cost is not earn's):
//!
//! - `inject/in_a_span`: `trace_context::inject` inside a request span: a
//!   producer span opened and ended, `traceparent` written into the
//!   metadata; `inject/no_span`: the same call with no span active, which
//!   writes nothing (the floor a producer pays when it is not traced);
//! - `emit/traceparent`: an inline emit to one sync handler of an event
//!   carrying a `traceparent`: the consumer span, parented to it, around
//!   the handler; `emit/plain`: the same event without one;
//! - `round_trip/traced`: both, as one event pays them end to end (inject
//!   in a request span, then the handlers under the consumer span);
//!   `round_trip/untraced`: the same path with no span active, the
//!   feature's work skipped;
//! - `context/write` and `context/read`: the trace context without the
//!   spans, by the same public calls: the current span's context written
//!   as the event's `traceparent`; parsed back into a remote parent;
//! - `span/one`: the yardstick, one span of the producer's shape through
//!   the same layer (`span/bare`: one with no fields). A traced event pays
//!   two spans, which the messaging conventions ask for; the rest is the
//!   trace context's.
//!
//! The subscriber records INFO and above, as in production: the bus's own
//! DEBUG spans stay off, so each pair differs by the trace context alone.
//!
//! `cargo bench --bench trace_context --features otel`

use std::hint::black_box;

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use earn::trace_context::{self, TRACEPARENT, TraceParent};
use earn::{Event, EventBus};
use opentelemetry::trace::{TraceContextExt as _, TraceState, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanProcessor};
use support::poll_ready;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

/// Takes every span and keeps none.
#[derive(Debug)]
struct Discard;

impl SpanProcessor for Discard {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        black_box(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn install() -> SdkTracerProvider {
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Discard)
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(layer);
    tracing::subscriber::set_global_default(subscriber).unwrap();
    provider
}

fn trace_context(c: &mut Criterion) {
    let _provider = install();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _runtime = runtime.enter();
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    bus.subscribe_sync("order.created", 0, |event: &Event| {
        black_box(event.id());
    })
    .unwrap();
    let event = Event::new("order.created", &serde_json::json!({ "order": 7 })).unwrap();
    let request = tracing::info_span!("request");
    let traced = request.in_scope(|| trace_context::inject(event.clone()));
    assert!(traced.meta(TRACEPARENT).is_some());

    let mut group = c.benchmark_group("inject");
    group.bench_function("in_a_span", |b| {
        request.in_scope(|| b.iter(|| black_box(trace_context::inject(event.clone()))))
    });
    group.bench_function("no_span", |b| {
        b.iter(|| black_box(trace_context::inject(event.clone())))
    });
    group.finish();

    let mut group = c.benchmark_group("emit");
    group.bench_function("traceparent", |b| {
        b.iter(|| black_box(poll_ready(bus.emit(traced.clone()))))
    });
    group.bench_function("plain", |b| {
        b.iter(|| black_box(poll_ready(bus.emit(event.clone()))))
    });
    group.finish();

    // The trace context without the spans, by the same public calls:
    // the current span's context read and written as the event's
    // `traceparent`, then parsed back into a remote parent.
    let mut group = c.benchmark_group("context");
    group.bench_function("write", |b| {
        request.in_scope(|| {
            b.iter(|| {
                let current = opentelemetry::Context::current();
                let parent = TraceParent::from_span_context(current.span().span_context());
                let value = parent.unwrap().to_string();
                black_box(event.clone().with_meta(TRACEPARENT, value))
            })
        })
    });
    let value = traced.meta(TRACEPARENT).unwrap().to_owned();
    group.bench_function("read", |b| {
        b.iter(|| {
            let parent = TraceParent::parse(black_box(&value)).unwrap();
            let remote = parent.span_context(TraceState::default());
            black_box(opentelemetry::Context::new().with_remote_span_context(remote))
        })
    });
    group.finish();

    // The yardstick: one span of the producer's shape through the same
    // layer, opened under the request, entered and closed. Two of these
    // (producer and consumer) are the spans' share of a traced event.
    let mut group = c.benchmark_group("span");
    group.bench_function("one", |b| {
        request.in_scope(|| {
            b.iter(|| {
                let name = event.name().as_str();
                let span = tracing::info_span!(
                    "earn.send",
                    otel.name = %format_args!("{name} send"),
                    otel.kind = "producer",
                    "messaging.system" = "earn",
                    "messaging.operation.type" = "send",
                    "messaging.destination.name" = name,
                    "messaging.message.id" = &*event.id().hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()),
                );
                span.in_scope(|| black_box(()))
            })
        })
    });
    group.bench_function("bare", |b| {
        request.in_scope(|| {
            b.iter(|| {
                let span = tracing::info_span!("earn.send");
                span.in_scope(|| black_box(()))
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("round_trip");
    group.bench_function("traced", |b| {
        request.in_scope(|| {
            b.iter(|| {
                let sent = trace_context::inject(event.clone());
                black_box(poll_ready(bus.emit(sent)))
            })
        })
    });
    group.bench_function("untraced", |b| {
        b.iter(|| {
            let sent = trace_context::inject(event.clone());
            black_box(poll_ready(bus.emit(sent)))
        })
    });
    group.finish();
}

criterion_group!(benches, trace_context);
criterion_main!(benches);
