//! `#[service]`: the `#[event_handler]` methods of an impl block become the
//! handlers of `earn::Service`, attached to a bus with `bus.attach`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::ctxt::Ctxt;
use crate::handler::ast;
use crate::handler::expand as handler_expand;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    if !args.is_empty() {
        cx.error(&args, "#[service] takes no options");
    }
    let mut block: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(block) => block,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[service] goes on the impl block of a type whose methods handle events: \
                 `#[service] impl Mailer { #[event_handler(\"user.created\")] async fn welcome(&self, event: &Event) { … } }`",
            )
            .into_compile_error();
            return quote!(#error #item);
        }
    };
    if let Some((_, path, _)) = &block.trait_ {
        cx.error(
            path,
            "#[service] goes on an inherent impl (`impl Mailer`), not a trait impl",
        );
    }
    if !block.generics.params.is_empty() {
        cx.error(&block.generics, "a #[service] impl block cannot be generic");
    }
    let service = &block.self_ty;
    let mut handlers = Vec::new();
    for impl_item in &mut block.items {
        let syn::ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let mut attrs = Vec::new();
        method.attrs.retain(|attr| {
            let is_handler = attr
                .path()
                .segments
                .last()
                .is_some_and(|s| s.ident == "event_handler");
            if is_handler {
                attrs.push(attr.clone());
            }
            !is_handler
        });
        for attr in attrs {
            let args = match &attr.meta {
                syn::Meta::List(list) => list.tokens.clone(),
                _ => TokenStream::new(),
            };
            let options = ast::parse_options(&mut cx, args);
            let signature = method_signature(&mut cx, method);
            if let (Some(options), Some(signature)) = (options, signature) {
                handlers.push(handler(service, method, &options, &signature));
            }
        }
    }
    match cx.check() {
        Ok(()) => {
            let count = handlers.len();
            quote! {
                #block
                #[doc(hidden)]
                const _: () = {
                    use ::earn::__private as __earn;
                    impl __earn::Service for #service {
                        fn handlers() -> &'static [__earn::ServiceHandler<Self>] {
                            static HANDLERS: [__earn::ServiceHandler<#service>; #count] = [#(#handlers),*];
                            &HANDLERS
                        }
                    }
                };
            }
        }
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #block)
        }
    }
}

/// The method's signature as a free function's: `&self` removed, checked
/// like an `#[event_handler]` function's.
fn method_signature(cx: &mut Ctxt, method: &syn::ImplItemFn) -> Option<ast::Signature> {
    match method.sig.receiver() {
        Some(receiver) if receiver.reference.is_some() && receiver.mutability.is_none() => {}
        Some(receiver) => {
            cx.error(
                receiver,
                "a service's handlers share it: take `&self` (state that changes goes behind a Mutex or an atomic)",
            );
            return None;
        }
        None => {
            cx.error(
                &method.sig.ident,
                "a handler method of a #[service] takes `&self`, then the event: `(&self, event: &Event)`",
            );
            return None;
        }
    }
    let mut sig = method.sig.clone();
    sig.inputs = sig.inputs.into_iter().skip(1).collect();
    let function = syn::ItemFn {
        attrs: Vec::new(),
        vis: syn::Visibility::Inherited,
        sig,
        block: Box::new(method.block.clone()),
    };
    ast::parse_signature(cx, &function)
}

fn handler(
    service: &syn::Type,
    method: &syn::ImplItemFn,
    options: &ast::Options,
    signature: &ast::Signature,
) -> TokenStream {
    let ident = &method.sig.ident;
    let name = format!("{}::{ident}", quote!(#service).to_string().replace(' ', ""));
    let pattern = &options.pattern;
    let priority = options.priority;
    let this = format_ident!("this");
    let step = handler_expand::step(
        &method.sig,
        signature,
        quote!(#this.#ident),
        quote!(let #this = ::std::sync::Arc::clone(#this);),
    );
    let (filter, retries, timeout_ms) = handler_expand::option_values(options);
    quote! {
        __earn::ServiceHandler {
            name: #name,
            pattern: #pattern,
            priority: #priority,
            filter: #filter,
            retries: #retries,
            timeout_ms: #timeout_ms,
            call: {
                #[allow(unused_variables)]
                fn shim(#this: &::std::sync::Arc<#service>, event: &__earn::Event) -> __earn::HandlerStep {
                    #step
                }
                shim
            },
        }
    }
}
