//! `#[hooks]`: parse → check → expand.

mod ast;
mod expand;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use crate::ctxt::Ctxt;
use ast::{PHASES, Phase};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let mut krate: Option<syn::Path> = None;
    if !args.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                let path: syn::LitStr = meta.value()?.parse()?;
                krate = Some(path.parse()?);
                Ok(())
            } else {
                Err(meta.error("unknown #[hooks] option; expected `crate = \"…\"`"))
            }
        });
        if let Err(error) = syn::parse::Parser::parse2(parser, args) {
            cx.push(error);
        }
    }
    let mut item: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &item,
                "#[hooks] goes on an inherent impl block of a model: `#[hooks] impl User { … }`",
            )
            .into_compile_error();
            return quote!(#error #item);
        }
    };
    if let Some((_, path, _)) = &item.trait_ {
        cx.error(path, "#[hooks] goes on an inherent impl (`impl User`), not a trait impl");
    }
    if !item.generics.params.is_empty() {
        cx.error(&item.generics, "#[hooks] impl blocks cannot be generic: a Model has no generics");
    }

    let mut hooks = Vec::new();
    for impl_item in &mut item.items {
        let syn::ImplItem::Fn(method) = impl_item else { continue };
        let attrs = take_hook_attrs(&mut cx, method);
        if attrs.is_empty() {
            continue;
        }
        if let Some(signature) = ast::parse_signature(&mut cx, method, &attrs) {
            hooks.push(expand::HookMethod {
                ident: method.sig.ident.clone(),
                sig_span: syn::spanned::Spanned::span(&method.sig),
                signature,
                attrs,
            });
        }
    }
    let root = match &krate {
        Some(path) => quote!(#path),
        None => quote!(::earn),
    };
    let registrations = expand::registrations(&root, &item.self_ty, &hooks);
    match cx.check() {
        Ok(()) => quote!(#item #registrations),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #item)
        }
    }
}

/// Removes the hook attributes of a method and parses them. Attributes that
/// look like a phase but are not one are reported.
fn take_hook_attrs(cx: &mut Ctxt, method: &mut syn::ImplItemFn) -> Vec<ast::HookAttr> {
    let mut found = Vec::new();
    method.attrs.retain(|attr| {
        let Some(last) = attr.path().segments.last() else { return true };
        let name = last.ident.to_string();
        if let Some((_, phase)) = PHASES.iter().find(|(n, _)| *n == name) {
            found.push((*phase, attr.clone()));
            return false;
        }
        if name.starts_with("before_") || name.starts_with("after_") || name == "on_commit" {
            let phases: Vec<&str> = PHASES.iter().map(|(n, _)| *n).collect();
            cx.error(
                attr.path(),
                format!("unknown hook phase `{name}`; expected one of: {}", phases.join(", ")),
            );
            return false;
        }
        true
    });
    found
        .into_iter()
        .map(|(phase, attr): (Phase, syn::Attribute)| ast::parse_hook_attr(cx, phase, &attr))
        .collect()
}

/// A phase attribute used outside `#[hooks]`: an error on the attribute,
/// with the item left intact.
pub(crate) fn outside_hooks_block(name: &str, item: TokenStream) -> TokenStream {
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        format!(
            "#[{name}] only works on a method inside a `#[hooks]` impl block: \
             write `#[hooks] impl MyModel {{ #[{name}] fn …(&self) {{ … }} }}`"
        ),
    )
    .into_compile_error();
    let mut out = error;
    item.to_tokens(&mut out);
    out
}
