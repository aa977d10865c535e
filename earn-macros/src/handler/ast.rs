//! A typed model of an `#[event_handler]`: its options and what its
//! parameter asks for.

use proc_macro2::TokenStream;
use quote::ToTokens;

use super::pattern;
use crate::attr::{self, Opt};
use crate::ctxt::Ctxt;

pub(crate) struct Options {
    pub(crate) pattern: syn::LitStr,
    pub(crate) priority: i32,
    pub(crate) filter: Option<syn::Path>,
    pub(crate) retries: Option<u32>,
    pub(crate) timeout: Option<Timeout>,
    /// `sources = ["billing", …]`.
    pub(crate) sources: Vec<syn::LitStr>,
    /// `batch = N` (and `linger_ms = N`).
    pub(crate) batch: Option<Batch>,
}

/// `batch = N, linger_ms = M`, with the option's name for errors about it.
pub(crate) struct Batch {
    pub(crate) key: syn::Path,
    pub(crate) size: usize,
    pub(crate) linger_ms: u64,
}

/// How long the first event of a batch waits for others when
/// `linger_ms` is not given.
const DEFAULT_LINGER_MS: u64 = 100;

/// `timeout_ms = N`, with the option's name for errors about it.
pub(crate) struct Timeout {
    pub(crate) key: syn::Path,
    pub(crate) ms: u64,
}

/// Parses `"pattern", priority = N, filter = path, retries = N,
/// timeout_ms = N, sources = ["…", …]`.
pub(crate) fn parse_options(cx: &mut Ctxt, args: TokenStream) -> Option<Options> {
    let parser = |input: syn::parse::ParseStream<'_>| -> syn::Result<Options> {
        if input.is_empty() {
            return Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[event_handler] needs the pattern it handles: `#[event_handler(\"user.created\")]`",
            ));
        }
        if input.peek(syn::Ident) && input.peek2(syn::Token![=]) {
            let options: TokenStream = input.fork().parse()?;
            return Err(input.error(format!(
                "the event pattern comes first, before the options: \
                 `#[event_handler(\"user.created\", {options})]`"
            )));
        }
        if !input.peek(syn::LitStr) {
            return Err(not_a_string(input));
        }
        let pattern: syn::LitStr = input.parse()?;
        if let Err(message) = pattern::check(&pattern.value()) {
            cx.error(&pattern, message);
        }
        let mut priority = Opt::none("priority");
        let mut filter = Opt::none("filter");
        let mut retries = Opt::none("retries");
        let mut timeout_ms = Opt::none("timeout_ms");
        let mut sources = Opt::none("sources");
        let mut batch = Opt::none("batch");
        let mut linger_ms = Opt::none("linger_ms");
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
                        let value = count::<u32>(
                            &meta.value()?.parse()?,
                            "retries = 3",
                            "`retries` cannot be negative: write `retries = 0` to never retry, \
                             or a count such as `retries = 3`",
                        )?;
                        retries.set(cx, &path, value);
                    } else if path.is_ident("timeout_ms") {
                        let value = count::<u64>(
                            &meta.value()?.parse()?,
                            "timeout_ms = 500",
                            "`timeout_ms` cannot be negative: write a duration in milliseconds \
                             such as `timeout_ms = 500`",
                        )?;
                        timeout_ms.set(
                            cx,
                            &path,
                            Timeout {
                                key: path.clone(),
                                ms: value,
                            },
                        );
                    } else if path.is_ident("sources") {
                        let value = source_list(&meta.value()?.parse()?)?;
                        sources.set(cx, &path, value);
                    } else if path.is_ident("batch") {
                        let expr: syn::Expr = meta.value()?.parse()?;
                        let value = count::<usize>(
                            &expr,
                            "batch = 100",
                            "`batch` is how many events one call takes at most: write a count such as `batch = 100`",
                        )?;
                        if value == 0 {
                            return Err(syn::Error::new_spanned(
                                &expr,
                                "a batch of 0 events would never be handled: write at least `batch = 1`",
                            ));
                        }
                        batch.set(cx, &path, (path.clone(), value));
                    } else if path.is_ident("linger_ms") {
                        let value = count::<u64>(
                            &meta.value()?.parse()?,
                            "linger_ms = 50",
                            "`linger_ms` cannot be negative: write how long the first event of a batch \
                             waits for others, in milliseconds, such as `linger_ms = 50`",
                        )?;
                        linger_ms.set(cx, &path, (path.clone(), value));
                    } else {
                        return Err(unknown(&meta));
                    }
                    Ok(())
                })();
                attr::recover(cx, &meta, result)
            });
            syn::parse::Parser::parse2(options, input.parse::<TokenStream>()?)?;
        }
        let linger = linger_ms.take();
        let batch = match (batch.take(), linger) {
            (Some((key, size)), linger) => Some(Batch {
                key,
                size,
                linger_ms: linger.map_or(DEFAULT_LINGER_MS, |(_, ms)| ms),
            }),
            (None, Some((key, _))) => {
                cx.error(
                    &key,
                    "`linger_ms` is how long a batch handler waits to fill its batch: \
                     add `batch = N` to take events in batches, or remove `linger_ms`",
                );
                None
            }
            (None, None) => None,
        };
        Ok(Options {
            pattern,
            priority: priority.take().unwrap_or(0),
            filter: filter.take(),
            retries: retries.take(),
            timeout: timeout_ms.take(),
            sources: sources.take().unwrap_or_default(),
            batch,
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

/// The options after the pattern, each with how it is written.
const OPTIONS: [(&str, &str); 7] = [
    ("priority", "priority = N"),
    ("filter", "filter = path"),
    ("retries", "retries = N"),
    ("timeout_ms", "timeout_ms = N"),
    ("sources", "sources = [\"billing\"]"),
    ("batch", "batch = N"),
    ("linger_ms", "linger_ms = N"),
];

/// `sources = ["billing", "shop"]`: a non-empty list of string literals.
fn source_list(value: &syn::Expr) -> syn::Result<Vec<syn::LitStr>> {
    let syn::Expr::Array(array) = value else {
        return Err(syn::Error::new_spanned(
            value,
            "`sources` takes a list of the event sources the handler accepts: \
             `sources = [\"billing\", \"shop\"]`",
        ));
    };
    if array.elems.is_empty() {
        return Err(syn::Error::new_spanned(
            array,
            "an empty `sources` list would accept no event: remove `sources` to accept \
             events from any source",
        ));
    }
    array
        .elems
        .iter()
        .map(|elem| match elem {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(source),
                ..
            }) if !source.value().is_empty() => Ok(source.clone()),
            other => Err(syn::Error::new_spanned(
                other,
                "a source is a non-empty string literal: `sources = [\"billing\"]`",
            )),
        })
        .collect()
}

/// The error for an option `#[event_handler]` does not have, with the
/// option meant when it is a near miss (`priorty`) or shares its start
/// (`retry`, `timeout`).
fn unknown(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Error {
    let name = meta.path.to_token_stream().to_string().replace(' ', "");
    let names = OPTIONS.iter().map(|(option, _)| *option);
    let shared = |option: &str| {
        name.chars()
            .zip(option.chars())
            .take_while(|(a, b)| a == b)
            .count()
    };
    let meant = attr::closest(&name, names.clone())
        .or_else(|| names.clone().find(|option| shared(option) >= 4));
    match OPTIONS.iter().find(|(option, _)| Some(*option) == meant) {
        Some((_, usage)) => meta.error(format!(
            "unknown event_handler option `{name}`: write `{usage}`"
        )),
        None => {
            let expected: Vec<String> = OPTIONS
                .iter()
                .map(|(_, usage)| format!("`{usage}`"))
                .collect();
            attr::unknown(meta, "event_handler", &expected.join(", "))
        }
    }
}

/// Reads a non-negative integer literal (`usage` shows one); a negative one
/// gets its own message.
fn count<T: std::str::FromStr>(expr: &syn::Expr, usage: &str, negative: &str) -> syn::Result<T>
where
    T::Err: std::fmt::Display,
{
    match expr {
        syn::Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            ..
        }) => Err(syn::Error::new_spanned(expr, negative)),
        _ => attr::unsigned(expr, usage),
    }
}

/// The error for a first argument that is not a string literal, spanned
/// over all of it (up to the first `,`).
fn not_a_string(input: syn::parse::ParseStream<'_>) -> syn::Error {
    let mut written = TokenStream::new();
    while !input.is_empty() && !input.peek(syn::Token![,]) {
        match input.parse::<proc_macro2::TokenTree>() {
            Ok(token) => written.extend([token]),
            Err(error) => return error,
        }
    }
    let text = shown(&written);
    let text = text.trim_matches('\'');
    // Suggest quoting what was written only if that makes a valid pattern.
    let message = if pattern::check(text).is_ok() {
        format!("the event pattern is a string literal: write `\"{text}\"`")
    } else {
        "the event pattern is a string literal: `#[event_handler(\"user.created\")]`".to_owned()
    };
    syn::Error::new_spanned(written, message)
}

/// Tokens as the user would write them: `Vec<User>`, `user.created`, with
/// spaces kept only between words (`dyn Any`).
pub(crate) fn shown(tokens: &impl ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    let chars: Vec<char> = text.chars().collect();
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    chars
        .iter()
        .enumerate()
        .filter(|&(i, c)| {
            *c != ' '
                || (word(i.checked_sub(1).and_then(|j| chars.get(j))) && word(chars.get(i + 1)))
        })
        .map(|(_, c)| c)
        .collect()
}

/// The parts of a handler's signature the shim adapts to.
pub(crate) struct Signature {
    pub(crate) input: Input,
    /// The return type, when it can be named in the shim (not `impl Trait`):
    /// a type that is not a handler result is then reported on it.
    pub(crate) output: Option<Box<syn::Type>>,
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

pub(crate) fn parse_signature(cx: &mut Ctxt, function: &syn::ItemFn) -> Option<Signature> {
    let sig = &function.sig;
    if !sig.generics.params.is_empty() {
        cx.error(
            &sig.generics,
            "event handlers cannot be generic: the bus calls one concrete function; \
             remove the type parameters and take `&Event`, `Event` or a concrete payload type `(user: User)`",
        );
        return None;
    }
    // A method is reported once, not also for the parameters after `self`.
    if let Some(receiver) = sig.receiver() {
        cx.error(
            receiver,
            "a method handles events when its impl block is a service: put `#[service]` on the \
             impl block and attach an instance with `bus.attach(Arc::new(…))`; or move the \
             handler out of the impl block",
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
        cx.error(
            extra,
            "an event handler takes one parameter, the event (`&Event` / `Event`) or its payload type: \
             remove this one. A handler that needs a `Db` or other state is a method of a \
             `#[service]` struct holding it (`#[service] impl Mailer { #[event_handler(\"…\")] \
             async fn welcome(&self, event: &Event) … }`, attached with `bus.attach(Arc::new(mailer))`)",
        );
    }
    let syn::FnArg::Typed(typed) = first else {
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
            let owned = &reference.elem;
            cx.error(
                reference,
                format!(
                    "a payload parameter is owned, deserialized from the event for each call: \
                     write `{}`, without `&`",
                    shown(owned)
                ),
            );
            return None;
        }
        ty => Input::Payload(Box::new(ty.clone())),
    };
    let output = match &sig.output {
        syn::ReturnType::Type(_, ty) if nameable(ty.to_token_stream()) => Some(ty.clone()),
        _ => None,
    };
    Some(Signature { input, output })
}

/// Whether a type can be written outside the function: not `impl Trait`,
/// not `Self`.
fn nameable(tokens: TokenStream) -> bool {
    tokens.into_iter().all(|token| match token {
        proc_macro2::TokenTree::Ident(ident) => ident != "impl" && ident != "Self",
        proc_macro2::TokenTree::Group(group) => nameable(group.stream()),
        proc_macro2::TokenTree::Punct(_) | proc_macro2::TokenTree::Literal(_) => true,
    })
}

fn is_event(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Event" && s.arguments.is_none()))
}

/// `T` of a parameter written `Vec<T>`.
pub(crate) fn vec_element(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Vec" || path.qself.is_some() {
        return None;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `ty` is `Event` (any path ending in it).
pub(crate) fn is_event_type(ty: &syn::Type) -> bool {
    is_event(ty)
}
