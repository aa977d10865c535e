//! `#[hooks]`: parse → check → expand.

mod ast;
pub(crate) mod behaviour;
mod expand;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use crate::attr;
use crate::ctxt::Ctxt;
use ast::Phase;

/// The arguments of `#[hooks]` / `#[behaviour]`: at most `crate = "…"`,
/// the path of the facade (`::earn` by default).
pub(super) fn root_arg(cx: &mut Ctxt, args: TokenStream, macro_name: &str) -> TokenStream {
    let mut krate: Option<syn::Path> = None;
    if !args.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                krate = Some(attr::string(&meta, "crate = \"earn\"")?.parse()?);
                Ok(())
            } else {
                Err(attr::unknown(&meta, macro_name, "`crate = \"…\"`"))
            }
        });
        if let Err(error) = syn::parse::Parser::parse2(parser, args) {
            cx.push(error);
        }
    }
    match &krate {
        Some(path) => quote!(#path),
        None => quote!(::earn),
    }
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let root = root_arg(&mut cx, args, "#[hooks]");
    let mut item: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[hooks] goes on an inherent impl block of a model: `#[hooks] impl User { … }`",
            )
            .into_compile_error();
            return quote!(#error #item);
        }
    };
    let trait_impl = item.trait_.is_some();
    if let Some((_, path, _)) = &item.trait_ {
        cx.error(
            path,
            format!(
                "#[hooks] goes on an inherent impl, not a trait impl: write `#[hooks] impl {} {{ … }}` \
                 and call the trait's methods from the hooks there",
                item.self_ty.to_token_stream()
            ),
        );
    }
    if !item.generics.params.is_empty() {
        cx.error(
            &item.generics,
            "#[hooks] impl blocks cannot be generic: a Model has no generics",
        );
    }

    // `if = name` may name a method of this block without `Self::`.
    let methods: Vec<syn::Ident> = item
        .items
        .iter()
        .filter_map(|impl_item| match impl_item {
            syn::ImplItem::Fn(method) => Some(method.sig.ident.clone()),
            _ => None,
        })
        .collect();
    let mut hooks = Vec::new();
    for impl_item in &mut item.items {
        let syn::ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let attrs = take_hook_attrs(&mut cx, &mut method.attrs);
        // A trait impl is reported once; its methods' shapes are the trait's.
        if attrs.is_empty() || trait_impl {
            continue;
        }
        // A hook takes `self` because its phase's shape says so, whether it
        // reads the model or not.
        method
            .attrs
            .push(syn::parse_quote!(#[allow(clippy::unused_self)]));
        if let Some(signature) = ast::parse_signature(&mut cx, &method.sig, &attrs) {
            hooks.push(expand::HookMethod {
                ident: method.sig.ident.clone(),
                sig_span: syn::spanned::Spanned::span(&method.sig),
                output: nameable_output(&method.sig.output),
                signature,
                attrs,
            });
        }
    }
    let registrations = expand::registrations(&root, &item.self_ty, &hooks, &methods);
    match cx.check() {
        Ok(()) => quote!(#item #registrations),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #item)
        }
    }
}

/// The return type of a hook, unless it only makes sense inside the impl
/// (`Self`) or cannot be named in an expression (`impl Trait`).
pub(super) fn nameable_output(output: &syn::ReturnType) -> Option<syn::Type> {
    fn unnameable(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => ident == "Self" || ident == "impl",
            proc_macro2::TokenTree::Group(group) => unnameable(group.stream()),
            proc_macro2::TokenTree::Punct(_) | proc_macro2::TokenTree::Literal(_) => false,
        })
    }
    let syn::ReturnType::Type(_, ty) = output else {
        return None;
    };
    (!unnameable(ty.to_token_stream())).then(|| (**ty).clone())
}

/// Removes the hook attributes of a method and parses them. Attributes that
/// look like a phase but are not one are reported.
pub(super) fn take_hook_attrs(
    cx: &mut Ctxt,
    attrs: &mut Vec<syn::Attribute>,
) -> Vec<ast::HookAttr> {
    let mut found = Vec::new();
    attrs.retain(|attr| {
        let Some(last) = attr.path().segments.last() else {
            return true;
        };
        let name = last.ident.to_string();
        if let Some(phase) = Phase::from_name(&name) {
            found.push((phase, attr.clone()));
            return false;
        }
        if name.starts_with("before_") || name.starts_with("after_") || name == "on_commit" {
            let phases: Vec<&str> = Phase::ALL.iter().map(|phase| phase.as_str()).collect();
            let message = match attr::closest(&name, phases.iter().copied()) {
                Some(phase) => format!("unknown hook phase `{name}`: write `{phase}`"),
                None => format!(
                    "unknown hook phase `{name}`; expected one of: {}",
                    phases.join(", ")
                ),
            };
            cx.error(attr.path(), message);
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
