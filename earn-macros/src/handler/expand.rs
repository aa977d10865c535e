//! Generates the shim and the `inventory` registration of an
//! `#[event_handler]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::{Input, Options, Signature};

/// The body of a shim: binds the handler's argument from `event` (a
/// payload that does not deserialize is a permanent failure of this
/// handler) and calls `callee`, adapting sync or async and the return type.
/// `capture` runs first in the body: it clones what an async call keeps.
pub(crate) fn step(
    sig: &syn::Signature,
    signature: &Signature,
    callee: TokenStream,
    capture: TokenStream,
) -> TokenStream {
    let span = sig.span();
    let is_async = sig.asyncness.is_some();
    // A return type that is not a handler result is reported on the user's
    // return type, which the conversion names.
    let into = match &signature.output {
        Some(output) => quote!(<#output as __earn::IntoHandlerResult>::into_handler_result),
        None => quote_spanned!(span=> __earn::IntoHandlerResult::into_handler_result),
    };
    let (prepare, argument) = match &signature.input {
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
    let call = if is_async {
        quote_spanned! {span=>
            #capture
            __earn::HandlerStep::Pending(::std::boxed::Box::pin(async move { #into(#callee(#argument).await) }))
        }
    } else {
        quote_spanned!(span=> __earn::HandlerStep::Ready(#into(#callee(#argument))))
    };
    quote!(#prepare #call)
}

/// The `HandlerOptions` value of an attribute; `batch_call` names the
/// batch shim of a batch handler.
pub(crate) fn options_value(options: &Options, batch_call: Option<&syn::Ident>) -> TokenStream {
    let pattern = &options.pattern;
    let priority = options.priority;
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
    let timeout_ms = match options.timeout.as_ref().map(|timeout| timeout.ms) {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let sources = &options.sources;
    let batch = match (&options.batch, batch_call) {
        (Some(batch), Some(call)) => {
            let (size, linger_ms) = (batch.size, batch.linger_ms);
            quote!(::core::option::Option::Some(__earn::BatchHandler {
                size: #size,
                linger_ms: #linger_ms,
                call: #call,
            }))
        }
        _ => quote!(::core::option::Option::None),
    };
    quote! {
        __earn::HandlerOptions {
            pattern: #pattern,
            priority: #priority,
            filter: #filter,
            retries: #retries,
            timeout_ms: #timeout_ms,
            sources: &[#(#sources),*],
            batch: #batch,
        }
    }
}

pub(crate) fn registration(
    function: &syn::ItemFn,
    options: &Options,
    signature: &Signature,
) -> TokenStream {
    let ident = &function.sig.ident;
    let name = ident.to_string();
    let shim = format_ident!("__earn_handler_{}", ident);
    let (per_event, batch_shim, batch_call) = match &options.batch {
        Some(_) => {
            let batch_shim = format_ident!("__earn_batch_{}", ident);
            let body = batch_step(&function.sig, signature);
            (
                quote!(__earn::batch::per_event(event)),
                quote! {
                    fn #batch_shim(events: ::std::vec::Vec<__earn::Event>) -> __earn::BatchStep {
                        #body
                    }
                },
                Some(batch_shim),
            )
        }
        None => (
            step(&function.sig, signature, quote!(#ident), quote!()),
            quote!(),
            None,
        ),
    };
    let options = options_value(options, batch_call.as_ref());
    quote! {
        #[doc(hidden)]
        const _: () = {
            use ::earn::__private as __earn;

            #[allow(unused_variables)]
            fn #shim(event: &__earn::Event) -> __earn::HandlerStep {
                #per_event
            }

            #batch_shim

            __earn::inventory::submit! {
                __earn::HandlerRegistration {
                    name: ::core::concat!(::core::module_path!(), "::", #name),
                    options: #options,
                    file: ::core::file!(),
                    line: ::core::line!(),
                    call: #shim,
                }
            }
        };
    }
}

/// The body of a batch shim: calls the handler with the events, or with
/// the payloads that deserialize (the others fail alone, permanently),
/// and turns what it returns into the batch's outcome.
fn batch_step(sig: &syn::Signature, signature: &Signature) -> TokenStream {
    let ident = &sig.ident;
    let span = sig.span();
    let into = match &signature.output {
        Some(output) => quote!(<#output as __earn::IntoBatchResult>::into_batch_result),
        None => quote_spanned!(span=> __earn::IntoBatchResult::into_batch_result),
    };
    let awaited = if sig.asyncness.is_some() {
        quote!(.await)
    } else {
        quote!()
    };
    let element = match &signature.input {
        Input::Payload(ty) => super::ast::vec_element(ty).cloned(),
        _ => None,
    };
    match element {
        Some(element) if !super::ast::is_event_type(&element) => quote_spanned! {span=>
            ::std::boxed::Box::pin(async move {
                let (payloads, from, unreadable) = __earn::batch::payloads::<#element>(&events);
                let result = if payloads.is_empty() {
                    ::core::result::Result::Ok(())
                } else {
                    #into(#ident(payloads) #awaited)
                };
                __earn::batch::merge(unreadable, &from, result)
            })
        },
        _ => quote_spanned! {span=>
            ::std::boxed::Box::pin(async move { #into(#ident(events) #awaited) })
        },
    }
}
