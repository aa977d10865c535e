//! `#[service]`: the `#[event_handler]` methods of an impl block become the
//! handlers of `earn::Service`, attached to a bus with `bus.attach`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::ctxt::Ctxt;
use crate::handler::expand as handler_expand;
use crate::handler::{ast, check};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    if !args.is_empty() {
        cx.error(
            &args,
            "#[service] takes no options: write `#[service]`; a handler's options go on its method, \
             `#[event_handler(\"user.created\", priority = 10)]`",
        );
    }
    let mut block: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(block) => block,
        Err(_) => {
            let error = not_an_impl(&item).into_compile_error();
            return quote!(#error #item);
        }
    };
    if let Some((_, path, _)) = &block.trait_ {
        cx.error(
            path,
            format!(
                "#[service] goes on an inherent impl, not a trait impl: put it on `impl {} {{ … }}`, \
                 the block that holds the `#[event_handler]` methods",
                ast::shown(&block.self_ty)
            ),
        );
    }
    if !block.generics.params.is_empty() {
        cx.error(
            &block.generics,
            format!(
                "a #[service] impl block cannot be generic: the bus keeps one table of handlers per \
                 service type; remove the parameters and write the impl for a concrete type, \
                 `impl {}` with the parameters filled in",
                concrete(&block.self_ty)
            ),
        );
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
        if attrs.is_empty() {
            continue;
        }
        // Checked once, however many patterns the method handles.
        let signature = method_signature(&mut cx, method);
        for attr in attrs {
            let args = match &attr.meta {
                syn::Meta::List(list) if !list.tokens.is_empty() => list.tokens.clone(),
                _ => {
                    cx.error(
                        &attr,
                        "#[event_handler] needs the pattern it handles: `#[event_handler(\"user.created\")]`",
                    );
                    continue;
                }
            };
            let options = ast::parse_options(&mut cx, args);
            if let Some(options) = &options {
                check::timeout_needs_async(&mut cx, options, &method.sig);
                if let Some(batch) = &options.batch {
                    cx.error(
                        &batch.key,
                        "`batch` takes a free function for now: move this handler out of the \
                         `#[service]` impl (`#[event_handler(\"…\", batch = N)] async fn …(events: Vec<Event>)`), \
                         or subscribe a closure with `bus.subscribe_batch`",
                    );
                }
            }
            if let (Some(options), Some(signature)) = (options, &signature) {
                handlers.push(handler(service, method, &options, signature));
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

/// The error for `#[service]` on something other than an impl block.
fn not_an_impl(item: &TokenStream) -> syn::Error {
    let (kind, name) = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(item)) => ("a struct", Some(item.ident)),
        Ok(syn::Item::Enum(item)) => ("an enum", Some(item.ident)),
        Ok(syn::Item::Union(item)) => ("a union", Some(item.ident)),
        Ok(syn::Item::Fn(_)) => ("a function", None),
        Ok(syn::Item::Trait(_)) => ("a trait", None),
        Ok(syn::Item::Mod(_)) => ("a module", None),
        _ => ("this item", None),
    };
    let name = name.map_or_else(|| "Mailer".to_owned(), |name| name.to_string());
    syn::Error::new(
        proc_macro2::Span::call_site(),
        format!(
            "#[service] goes on an impl block, not {kind}: write `#[service] impl {name} {{ \
             #[event_handler(\"user.created\")] async fn welcome(&self, event: &Event) {{ … }} }}`"
        ),
    )
}

/// The service type as written, with `…` for the arguments of a generic
/// one: `Mailer<…>`.
fn concrete(ty: &syn::Type) -> String {
    if let syn::Type::Path(path) = ty
        && path.qself.is_none()
        && let Some(last) = path.path.segments.last()
        && !last.arguments.is_none()
    {
        return format!("{}<…>", last.ident);
    }
    ast::shown(ty)
}

/// The method's signature as a free function's: `&self` removed, checked
/// like an `#[event_handler]` function's.
fn method_signature(cx: &mut Ctxt, method: &syn::ImplItemFn) -> Option<ast::Signature> {
    let ident = &method.sig.ident;
    match method.sig.receiver() {
        Some(receiver) if receiver.colon_token.is_some() => {
            cx.error(
                receiver,
                format!(
                    "a handler method of a #[service] takes `&self`: write `&self`, not `self: {}`",
                    ast::shown(&receiver.ty)
                ),
            );
            return None;
        }
        Some(receiver) if receiver.reference.is_some() && receiver.mutability.is_some() => {
            cx.error(
                receiver,
                "a service's handlers share it: take `&self`, not `&mut self`; \
                 state that changes goes behind a Mutex or an atomic",
            );
            return None;
        }
        Some(receiver) if receiver.reference.is_none() => {
            cx.error(
                receiver,
                "the bus keeps a service in an `Arc` shared by its handlers, so a handler cannot \
                 take it by value: write `&self`",
            );
            return None;
        }
        Some(_) => {}
        None => {
            let params: Vec<String> = method
                .sig
                .inputs
                .iter()
                .map(|input| match input {
                    syn::FnArg::Typed(typed) => {
                        format!("{}: {}", ast::shown(&typed.pat), ast::shown(&typed.ty))
                    }
                    syn::FnArg::Receiver(receiver) => ast::shown(receiver),
                })
                .collect();
            let params = if params.is_empty() {
                "event: &Event".to_owned()
            } else {
                params.join(", ")
            };
            let message = format!(
                "a handler method of a #[service] takes `&self` first: write `fn {ident}(&self, {params})`, \
                 or move `{ident}` out of the impl block as a free `#[event_handler]` function"
            );
            match method.sig.inputs.first() {
                Some(first) => cx.error(first, message),
                None => cx.push(syn::Error::new(method.sig.paren_token.span.join(), message)),
            }
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
    let this = format_ident!("this");
    let step = handler_expand::step(
        &method.sig,
        signature,
        quote!(#this.#ident),
        quote!(let #this = ::std::sync::Arc::clone(#this);),
    );
    let options = handler_expand::options_value(options, None);
    quote! {
        __earn::ServiceHandler {
            name: #name,
            options: #options,
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
