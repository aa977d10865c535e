//! Checks of an `#[event_handler]` that need both its options and its
//! signature (a free function's or a `#[service]` method's).

use super::ast::{Input, Options, Signature, is_event_type, vec_element};
use crate::ctxt::Ctxt;

/// `timeout_ms` on a sync handler would be a promise the bus cannot keep:
/// a sync handler runs to its end on the worker's thread, nothing can
/// interrupt it. Reported on `timeout_ms`.
pub(crate) fn timeout_needs_async(cx: &mut Ctxt, options: &Options, sig: &syn::Signature) {
    let Some(timeout) = &options.timeout else {
        return;
    };
    if sig.asyncness.is_none() {
        cx.error(
            &timeout.key,
            format!(
                "`timeout_ms` needs an async handler: a sync handler cannot be interrupted, it \
                 runs to its end on the worker's thread; make it `async fn {}` (moving blocking \
                 work to `tokio::task::spawn_blocking`), or remove `timeout_ms`",
                sig.ident
            ),
        );
    }
}

/// A batch handler takes its batch, `Vec<Event>` or a `Vec` of payloads;
/// a handler taking `Vec<Event>` without `batch` most likely meant one.
/// Reported on the parameter's type.
pub(crate) fn batch_signature(
    cx: &mut Ctxt,
    options: &Options,
    signature: &Signature,
    sig: &syn::Signature,
) {
    let parameter = sig.inputs.first().and_then(|input| match input {
        syn::FnArg::Typed(typed) => Some(&*typed.ty),
        syn::FnArg::Receiver(_) => None,
    });
    let element = match &signature.input {
        Input::Payload(ty) => vec_element(ty),
        _ => None,
    };
    match (&options.batch, element) {
        (Some(_), None) => {
            if let Some(parameter) = parameter {
                cx.error(
                    parameter,
                    "a batch handler takes its batch: `(events: Vec<Event>)`, or a `Vec` of a \
                     payload type `(readings: Vec<Reading>)`",
                );
            }
        }
        // A `batch` that did not parse is reported already.
        (None, Some(element)) if is_event_type(element) && !cx.has_errors() => {
            if let Some(parameter) = parameter {
                cx.error(
                    parameter,
                    "`Vec<Event>` is a batch of events: add `batch = 100` (and `linger_ms = 50`) \
                     to the attribute to take events in batches, or take one event `(event: &Event)`",
                );
            }
        }
        _ => {}
    }
}
