//! Checks of an `#[event_handler]` that need both its options and its
//! signature (a free function's or a `#[service]` method's).

use super::ast::Options;
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
