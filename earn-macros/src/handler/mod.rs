//! `#[event_handler("pattern", …)]` on a free function: parse → check →
//! expand.

pub(crate) mod ast;
pub(crate) mod check;
pub(crate) mod expand;
mod pattern;

pub(crate) use pattern::check_name;

use proc_macro2::TokenStream;
use quote::quote;

use crate::ctxt::Ctxt;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let function: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                format!(
                    "#[event_handler] goes on a free function, not {}: \
                     `#[event_handler(\"user.created\")] async fn welcome(event: &Event) {{ … }}`",
                    item_kind(&item)
                ),
            )
            .into_compile_error();
            return quote!(#error #item);
        }
    };
    let options = ast::parse_options(&mut cx, args);
    let signature = ast::parse_signature(&mut cx, &function);
    if let Some(options) = &options {
        check::timeout_needs_async(&mut cx, options, &function.sig);
        if let Some(signature) = &signature {
            check::batch_signature(&mut cx, options, signature, &function.sig);
        }
    }
    let generated = match (options, signature) {
        (Some(options), Some(signature)) if !cx.has_errors() => {
            expand::registration(&function, &options, &signature)
        }
        _ => TokenStream::new(),
    };
    match cx.check() {
        Ok(()) => quote!(#function #generated),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #function)
        }
    }
}

/// What the attribute was put on instead of a function, for the message.
fn item_kind(item: &TokenStream) -> &'static str {
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(_)) => "a struct",
        Ok(syn::Item::Enum(_)) => "an enum",
        Ok(syn::Item::Union(_)) => "a union",
        Ok(syn::Item::Impl(_)) => "an impl block",
        Ok(syn::Item::Trait(_)) => "a trait",
        Ok(syn::Item::Mod(_)) => "a module",
        Ok(syn::Item::Const(_) | syn::Item::Static(_)) => "a constant",
        Ok(syn::Item::Type(_)) => "a type alias",
        Ok(syn::Item::Use(_)) => "an import",
        _ => "this item",
    }
}
