//! `#[derive(Model)]`: parse → check → expand.

mod ast;
mod check;
mod columns;
mod expand;
mod relations;
mod sql;

use crate::ctxt::Ctxt;

pub(crate) fn expand(input: &syn::DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let mut cx = Ctxt::default();
    let model = ast::Container::parse(&mut cx, input);
    // Checks see the whole model: run them only on attributes that parsed.
    if let Some(model) = &model
        && !cx.has_errors()
    {
        check::check(&mut cx, model);
    }
    cx.check()?;
    match model {
        Some(model) => Ok(expand::expand(&model)),
        None => Ok(proc_macro2::TokenStream::new()),
    }
}
