//! The registry: every hook, behaviour hook and event handler linked into
//! the application, with where it is declared.

use maud::{Markup, html};

use super::layout::{self, Ctx};

pub(super) async fn page(ctx: Ctx) -> Markup {
    let registry = crate::registry();
    layout::page(
        &ctx,
        "Registry",
        "/registry",
        html! {
            h1 { "Registry" }
            h2 { "Event handlers (" (registry.handlers.len()) ")" }
            table #handlers {
                thead { tr { th { "Handler" } th { "Pattern" } th.num { "Priority" } th { "Declared at" } } }
                tbody {
                    @for handler in &registry.handlers {
                        tr {
                            td { code { (handler.name) } }
                            td { code { (handler.options.pattern) } }
                            td.num { (handler.options.priority) }
                            td.muted { (handler.file) ":" (handler.line) }
                        }
                    }
                }
            }
            p.muted { "Handlers of a " code { "#[service]" } " are attached at run time and are not listed." }
            h2 { "Model hooks (" (registry.hooks.len()) ")" }
            table #hooks {
                thead { tr { th { "Model" } th { "Phase" } th { "Function" } th.num { "Priority" } th { "Declared at" } } }
                tbody {
                    @for hook in &registry.hooks {
                        tr {
                            td { (hook.model_name) }
                            td { (hook.phase) }
                            td { code { (hook.function) } }
                            td.num { (hook.priority) }
                            td.muted { (hook.file) ":" (hook.line) }
                        }
                    }
                }
            }
            h2 { "Behaviour hooks (" (registry.behaviour_hooks.len()) ")" }
            table #behaviour-hooks {
                thead { tr { th { "Model" } th { "Behaviour" } th { "Phase" } th { "Function" } th.num { "Priority" } th { "Declared at" } } }
                tbody {
                    @for hook in &registry.behaviour_hooks {
                        tr {
                            td { (hook.model) }
                            td { (hook.behaviour) }
                            td { (hook.phase) }
                            td { code { (hook.function) } }
                            td.num { (hook.priority) }
                            td.muted { (hook.file) ":" (hook.line) }
                        }
                    }
                }
            }
        },
    )
}
