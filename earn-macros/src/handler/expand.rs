//! Generates the shim and the `inventory` registration of an
//! `#[event_handler]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::{Input, Options};

pub(crate) fn registration(
    function: &syn::ItemFn,
    options: &Options,
    input: &Input,
) -> TokenStream {
    let ident = &function.sig.ident;
    let name = ident.to_string();
    let span = function.sig.span();
    let is_async = function.sig.asyncness.is_some();
    let shim = format_ident!("__earn_handler_{}", ident);
    let pattern = &options.pattern;
    let priority = options.priority;
    let into = quote_spanned!(span=> __earn::IntoHandlerResult::into_handler_result);

    // Binds `argument` for the call; a payload that does not deserialize is
    // a permanent failure of this handler.
    let (prepare, argument) = match input {
        Input::Borrowed if is_async => (quote!(let event = event.clone();), quote!(&event)),
        Input::Borrowed => (quote!(), quote!(event)),
        Input::Owned => (quote!(let event = event.clone();), quote!(event)),
        Input::Payload(ty) => (
            quote_spanned! {ty.span()=>
                let payload: #ty = match event.payload::<#ty>() {
                    ::core::result::Result::Ok(payload) => payload,
                    ::core::result::Result::Err(error) => {
                        return __earn::HandlerStep::Ready(::core::result::Result::Err(__earn::HandlerError::from(error)));
                    }
                };
            },
            quote!(payload),
        ),
    };
    let step = if is_async {
        quote_spanned! {span=>
            __earn::HandlerStep::Pending(::std::boxed::Box::pin(async move { #into(#ident(#argument).await) }))
        }
    } else {
        quote_spanned!(span=> __earn::HandlerStep::Ready(#into(#ident(#argument))))
    };
    let filter = match &options.filter {
        Some(path) => quote_spanned!(path.span()=> ::core::option::Option::Some({
            let filter: fn(&__earn::Event) -> bool = #path;
            filter
        })),
        None => quote!(::core::option::Option::None),
    };
    let retries = match options.retries {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let timeout_ms = match options.timeout_ms {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #[doc(hidden)]
        const _: () = {
            use ::earn::__private as __earn;

            #[allow(unused_variables)]
            fn #shim(event: &__earn::Event) -> __earn::HandlerStep {
                #prepare
                #step
            }

            __earn::inventory::submit! {
                __earn::HandlerRegistration {
                    name: ::core::concat!(::core::module_path!(), "::", #name),
                    pattern: #pattern,
                    priority: #priority,
                    filter: #filter,
                    retries: #retries,
                    timeout_ms: #timeout_ms,
                    file: ::core::file!(),
                    line: ::core::line!(),
                    call: #shim,
                }
            }
        };
    }
}
