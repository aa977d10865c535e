//! Procedural macros of [earn](https://docs.rs/earn). Use them through the
//! facade (`use earn::prelude::*`); the generated code names only `::earn`.

mod attr;
mod ctxt;
mod handler;
mod hooks;
mod model;
mod service;

use proc_macro::TokenStream;

/// Derives `earn::Model`: table metadata, SQL for every backend, row
/// decoding and the persistence API. See the `earn` crate docs.
#[proc_macro_derive(Model, attributes(model))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    model::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Registers the lifecycle hooks of an inherent `impl` block of a model.
#[proc_macro_attribute]
pub fn hooks(args: TokenStream, item: TokenStream) -> TokenStream {
    hooks::expand(args.into(), item.into()).into()
}

/// Registers a free function as an event handler of every bus built with
/// the default builder: `#[event_handler("user.created", priority = 10)]`.
///
/// Options: `priority = N` (higher first), `filter = path` (a
/// `fn(&Event) -> bool`), `retries = N` and `timeout_ms = N` (override the
/// bus's settings; `timeout_ms` only on an `async fn`: a sync handler cannot
/// be interrupted). The parameter is `&Event`, `Event`, or a payload type
/// deserialized from the event's JSON.
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(args.into(), item.into()).into()
}

/// Makes the `#[event_handler("…")]` methods of an impl block the
/// handlers of a service with state, attached at run time with
/// `bus.attach(Arc::new(service))` and removed with `bus.detach`.
#[proc_macro_attribute]
pub fn service(args: TokenStream, item: TokenStream) -> TokenStream {
    service::expand(args.into(), item.into()).into()
}

macro_rules! phase_attributes {
    ($($name:ident $variant:ident $doc:literal,)*) => {$(
        #[doc = concat!("Marks a method as a `", stringify!($name), "` hook; only valid inside `#[hooks] impl Model { … }`.")]
        #[proc_macro_attribute]
        pub fn $name(_args: TokenStream, item: TokenStream) -> TokenStream {
            hooks::outside_hooks_block(stringify!($name), item.into()).into()
        }
    )*};
}

// One attribute per phase, from the list the runtime's `HookPhase` is made of.
earn_vocab::for_each_phase!(phase_attributes);
