//! `#[derive(Field)]`: parse → check → expand. An enum of unit variants is
//! stored as text or as an integer, a newtype as the type it wraps.

mod ast;
mod check;
mod expand;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

pub(crate) fn expand(input: &syn::DeriveInput) -> TokenStream {
    let mut cx = Ctxt::default();
    let container = ast::Container::parse(&mut cx, input);
    // Checks see the whole type: run them only on attributes that parsed.
    if let Some(container) = &container
        && !cx.has_errors()
    {
        check::check(&mut cx, container);
    }
    match (cx.check(), container) {
        (Ok(()), Some(container)) => expand::expand(&container),
        (result, container) => {
            let mut out = result
                .err()
                .map(syn::Error::into_compile_error)
                .unwrap_or_default();
            // An impl beside the error: the fields and filters using the
            // type are not reported again.
            let krate = container.and_then(|c| c.krate);
            out.extend(expand::fallback(input, krate.as_ref()));
            out
        }
    }
}
