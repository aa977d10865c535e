//! `#[event_handler("pattern", …)]` on a free function: parse → check →
//! expand.

mod ast;
mod expand;
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
                "#[event_handler] goes on a free function: `#[event_handler(\"user.created\")] async fn welcome(event: &Event) { … }`",
            )
            .into_compile_error();
            return quote!(#error #item);
        }
    };
    let options = ast::parse_options(&mut cx, args);
    let input = ast::parse_signature(&mut cx, &function);
    let generated = match (options, input) {
        (Some(options), Some(input)) if !cx.has_errors() => {
            expand::registration(&function, &options, &input)
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
