//! `#[behaviour]`: hooks written once, on a trait, and applied to every
//! model that lists it in `#[model(behaviours(…))]`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use super::ast;
use super::expand::{self, HookMethod};
use super::{nameable_output, root_arg, take_hook_attrs};
use crate::ctxt::Ctxt;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let root = root_arg(&mut cx, args, "#[behaviour]");
    let mut item: syn::ItemTrait = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[behaviour] goes on a trait whose methods are hooks: \
                 `#[behaviour] trait Audited: Model { #[after_save] fn audit(&self) { … } }`",
            )
            .into_compile_error();
            return quote!(#error #item);
        }
    };
    if !item.generics.params.is_empty() {
        cx.error(
            &item.generics,
            "a behaviour cannot be generic: it is generic over the models that apply it already \
             (`Self`); express what it needs as supertraits (`trait Tenanted: Model + HasTenant`)",
        );
    }
    let methods: Vec<syn::Ident> = item
        .items
        .iter()
        .filter_map(|trait_item| match trait_item {
            syn::TraitItem::Fn(method) => Some(method.sig.ident.clone()),
            _ => None,
        })
        .collect();
    let mut hooks = Vec::new();
    for trait_item in &mut item.items {
        let syn::TraitItem::Fn(method) = trait_item else {
            continue;
        };
        let attrs = take_hook_attrs(&mut cx, &mut method.attrs);
        if attrs.is_empty() {
            continue;
        }
        for hook in &attrs {
            if let Some(field) = &hook.when_changed {
                cx.error(
                    field,
                    "`when_changed` is not available in a behaviour, which does not know the \
                     fields of the models it is applied to: test `ctx.is_changed(\"field\")` \
                     in the hook",
                );
            }
        }
        if method.default.is_none() {
            cx.error(
                &method.sig,
                "a behaviour's hook needs a body: it is written once, for every model that \
                 applies the behaviour",
            );
            continue;
        }
        method
            .attrs
            .push(syn::parse_quote!(#[allow(clippy::unused_self)]));
        let Some(signature) = ast::parse_signature(&mut cx, &method.sig, &attrs) else {
            continue;
        };
        let output = nameable_output(&method.sig.output);
        let sig_span = syn::spanned::Spanned::span(&method.sig);
        if signature.is_async {
            send_future(method);
        }
        hooks.push(HookMethod {
            ident: method.sig.ident.clone(),
            sig_span,
            output,
            signature,
            attrs,
        });
    }
    let listing = expand::behaviour_method(&item.ident, &hooks, &methods);
    item.items.push(syn::parse_quote! {
        #[doc(hidden)]
        #[allow(clippy::all)]
        fn __earn_behaviour() -> #root::__private::BehaviourHooks<#root::__private::Hook<Self>>
        where
            Self: ::core::marker::Sized + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            use #root::__private as __earn;
            #listing
        }
    });
    match cx.check() {
        Ok(()) => item.into_token_stream(),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #item)
        }
    }
}

/// `async fn audit(&self, …) -> R { body }` becomes
/// `fn audit(&self, …) -> impl Future<Output = R> + Send { async move { body } }`:
/// a hook's future must be `Send`, and a trait's `async fn` does not say
/// so to the code that is generic over its implementors.
fn send_future(method: &mut syn::TraitItemFn) {
    method.sig.asyncness = None;
    let output = match &method.sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    method.sig.output = syn::parse_quote! {
        -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
    };
    if let Some(body) = &method.default {
        method.default = Some(syn::parse_quote!({ async move #body }));
    }
}
