//! A typed model of an `#[event_handler]`: its options and what its
//! parameter asks for.

use proc_macro2::TokenStream;

use super::pattern;
use crate::attr::{self, Opt};
use crate::ctxt::Ctxt;

pub(crate) struct Options {
    pub(crate) pattern: syn::LitStr,
    pub(crate) priority: i32,
    pub(crate) filter: Option<syn::Path>,
    pub(crate) retries: Option<u32>,
    pub(crate) timeout_ms: Option<u64>,
}

const OPTIONS: &str = "`priority = N`, `filter = path`, `retries = N`, `timeout_ms = N`";

/// Parses `"pattern", priority = N, filter = path, retries = N, timeout_ms = N`.
pub(crate) fn parse_options(cx: &mut Ctxt, args: TokenStream) -> Option<Options> {
    let parser = |input: syn::parse::ParseStream<'_>| -> syn::Result<Options> {
        if input.is_empty() {
            return Err(input.error(
                "#[event_handler] needs the pattern it handles: `#[event_handler(\"user.created\")]`",
            ));
        }
        let pattern: syn::LitStr = input.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                "the first argument is the event pattern, a string: `#[event_handler(\"user.*\")]`",
            )
        })?;
        if let Err(message) = pattern::check(&pattern.value()) {
            cx.error(&pattern, message);
        }
        let mut priority = Opt::none("priority");
        let mut filter = Opt::none("filter");
        let mut retries = Opt::none("retries");
        let mut timeout_ms = Opt::none("timeout_ms");
        if !input.is_empty() {
            input.parse::<syn::Token![,]>()?;
            let options = syn::meta::parser(|meta| {
                let path = meta.path.clone();
                let result = (|| {
                    if path.is_ident("priority") {
                        let value = attr::priority(&meta.value()?.parse::<syn::Expr>()?)?;
                        priority.set(cx, &path, value);
                    } else if path.is_ident("filter") {
                        let value: syn::Path = meta.value()?.parse()?;
                        filter.set(cx, &path, value);
                    } else if path.is_ident("retries") {
                        let value = attr::unsigned::<u32>(&meta.value()?.parse()?, "retries = 3")?;
                        retries.set(cx, &path, value);
                    } else if path.is_ident("timeout_ms") {
                        let value =
                            attr::unsigned::<u64>(&meta.value()?.parse()?, "timeout_ms = 500")?;
                        timeout_ms.set(cx, &path, value);
                    } else {
                        return Err(attr::unknown(&meta, "event_handler", OPTIONS));
                    }
                    Ok(())
                })();
                attr::recover(cx, &meta, result)
            });
            syn::parse::Parser::parse2(options, input.parse::<TokenStream>()?)?;
        }
        Ok(Options {
            pattern,
            priority: priority.take().unwrap_or(0),
            filter: filter.take(),
            retries: retries.take(),
            timeout_ms: timeout_ms.take(),
        })
    };
    match syn::parse::Parser::parse2(parser, args) {
        Ok(options) => Some(options),
        Err(error) => {
            cx.push(error);
            None
        }
    }
}

/// What the handler's one parameter receives.
pub(crate) enum Input {
    /// `&Event`.
    Borrowed,
    /// `Event`.
    Owned,
    /// Any other type: the payload, deserialized.
    Payload(Box<syn::Type>),
}

pub(crate) fn parse_signature(cx: &mut Ctxt, function: &syn::ItemFn) -> Option<Input> {
    let sig = &function.sig;
    if !sig.generics.params.is_empty() {
        cx.error(
            &sig.generics,
            "event handlers cannot be generic: the bus calls one concrete function",
        );
        return None;
    }
    let mut inputs = sig.inputs.iter();
    let Some(first) = inputs.next() else {
        cx.push(syn::Error::new(
            sig.paren_token.span.join(),
            "an event handler takes the event: `(event: &Event)`, `(event: Event)`, or a payload type `(user: User)`",
        ));
        return None;
    };
    for extra in inputs {
        cx.error(extra, "an event handler takes one parameter: the event (`&Event` / `Event`) or its payload type");
    }
    let syn::FnArg::Typed(typed) = first else {
        cx.error(first, "#[event_handler] goes on a free function; for methods of a service, use `bus.subscribe` with a closure");
        return None;
    };
    let input = match &*typed.ty {
        syn::Type::Reference(reference) if is_event(&reference.elem) => {
            if let Some(mutability) = reference.mutability {
                cx.error(
                    mutability,
                    "handlers share the event: take `&Event`, not `&mut Event`",
                );
                return None;
            }
            Input::Borrowed
        }
        ty if is_event(ty) => Input::Owned,
        syn::Type::Reference(reference) => {
            cx.error(
                reference,
                "a payload parameter is owned: write the type without `&` (it is deserialized for the call)",
            );
            return None;
        }
        ty => Input::Payload(Box::new(ty.clone())),
    };
    Some(input)
}

fn is_event(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Event" && s.arguments.is_none()))
}
