//! The streams: for each Redis stream, its length, its delayed events, and
//! its consumer groups with their consumers (pending entries, idle time),
//! to spot a stuck or dead consumer.

use maud::{Markup, html};

use super::error::ConsoleError;
use super::layout::{self, Ctx};

pub(super) async fn page(ctx: Ctx) -> Result<Markup, ConsoleError> {
    let body = body(&ctx).await?;
    Ok(layout::page(
        &ctx,
        "Streams",
        "/streams",
        html! {
            h1 { "Streams" }
            (body)
        },
    ))
}

fn no_stream() -> Markup {
    html! { p.muted { "The console was given no Redis stream (" code { "Admin::stream" } ")." } }
}

#[cfg(not(feature = "redis"))]
async fn body(_ctx: &Ctx) -> Result<Markup, ConsoleError> {
    Ok(no_stream())
}

#[cfg(feature = "redis")]
async fn body(ctx: &Ctx) -> Result<Markup, ConsoleError> {
    let all = ctx.console.admin.streams();
    if all.is_empty() {
        return Ok(no_stream());
    }
    let mut sections = Vec::with_capacity(all.len());
    for streams in all {
        sections.push(stream(ctx, streams).await?);
    }
    Ok(html! {
        @for section in &sections { (section) }
        p.muted {
            "Pending: read by a consumer and not acknowledged. Unread: not yet read by the group. "
            "Idle: since the consumer last read or claimed an entry; one that holds pending entries "
            "and stays idle may have died, and its entries wait for another consumer to claim them."
        }
    })
}

/// One stream: its counts, and a table of its groups, each followed by its
/// consumers.
#[cfg(feature = "redis")]
async fn stream(ctx: &Ctx, streams: &crate::redis::RedisStreams) -> Result<Markup, ConsoleError> {
    let name = streams.settings().get_stream();
    let lag = streams.lag().await?;
    let groups = streams.groups().await?;
    let delayed = ctx.url(&format!("/delayed{}", layout::query(&[("stream", name)])));
    Ok(html! {
        section.stream data-stream=(name) {
            h2 { code { (name) } }
            p {
                (lag.length) " entries, "
                a href=(delayed) { (lag.delayed) " delayed" }
            }
            @if groups.is_empty() {
                p.muted { "No consumer group yet." }
            } @else {
                table.groups {
                    thead { tr {
                        th { "Group" } th { "Consumer" } th.num { "Pending" } th.num { "Unread" }
                        th { "Idle" } th { "Last delivered" }
                    } }
                    tbody {
                        @for group in &groups {
                            tr.group data-group=(group.name) {
                                td { code { (group.name) } }
                                td.muted { (group.consumers.len()) " consumer(s)" }
                                td.num { (group.pending) }
                                td.num {
                                    @if let Some(lag) = group.lag { (lag) }
                                    @else { span.muted title="entries were deleted after the group's position" { "unknown" } }
                                }
                                td {}
                                td { code { (group.last_delivered) } }
                            }
                            @for consumer in &group.consumers {
                                tr.consumer data-group=(group.name) data-consumer=(consumer.name) {
                                    td {}
                                    td { code { (consumer.name) } }
                                    td.num { (consumer.pending) }
                                    td {}
                                    td title=(format!("{} ms", consumer.idle.as_millis())) { (layout::span(consumer.idle)) }
                                    td {}
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}
