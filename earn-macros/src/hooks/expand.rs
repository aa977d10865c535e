//! Generates the shims and `inventory` registrations of a `#[hooks]` block.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use super::ast::{HookAttr, Signature};

pub(crate) struct HookMethod {
    pub(crate) ident: syn::Ident,
    pub(crate) sig_span: Span,
    /// The declared return type, when it can be named outside the impl.
    pub(crate) output: Option<syn::Type>,
    pub(crate) signature: Signature,
    pub(crate) attrs: Vec<HookAttr>,
}

pub(crate) fn registrations(
    root: &TokenStream,
    model: &syn::Type,
    hooks: &[HookMethod],
    methods: &[syn::Ident],
) -> TokenStream {
    let mut out = TokenStream::new();
    let mut index: u32 = 0;
    for hook in hooks {
        for attr in &hook.attrs {
            out.extend(registration(root, model, hook, attr, index, methods));
            index += 1;
        }
    }
    out
}

fn registration(
    root: &TokenStream,
    model: &syn::Type,
    hook: &HookMethod,
    attr: &HookAttr,
    index: u32,
    methods: &[syn::Ident],
) -> TokenStream {
    let method = &hook.ident;
    let function = method.to_string();
    let phase = super::ast::variant(attr.phase);
    let priority = attr.priority;
    let span = hook.sig_span;

    let args = if hook.signature.takes_context {
        quote!(model, ctx)
    } else {
        quote!(model)
    };
    // A return type that is not a hook result is reported on the user's
    // return type, which the conversion names.
    let into_result = match &hook.output {
        Some(output) => quote!(<#output as __earn::IntoHookResult>::into_hook_result),
        None => quote_spanned!(span=> __earn::IntoHookResult::into_hook_result),
    };
    // Spanned at the user's signature, so a future that is not `Send` is
    // reported on their code.
    let step = if hook.signature.is_async {
        quote_spanned! {span=>
            __earn::HookStep::Pending(::std::boxed::Box::pin(async move {
                #into_result(<#model>::#method(#args).await)
            }))
        }
    } else {
        quote_spanned! {span=>
            __earn::HookStep::Ready(#into_result(<#model>::#method(#args)))
        }
    };
    // `&self` methods receive the `&mut` reborrowed as shared.
    let model_param = quote!(model: &'a mut #model);
    let shim = format_ident!("__earn_{}_{}", attr.phase.as_str(), method);
    let (shim_fn, call) = if attr.phase.in_transaction() {
        (
            quote! {
                #[allow(unused_variables)]
                fn #shim<'a, 'b>(#model_param, ctx: &'a mut __earn::HookContext<'b>) -> __earn::HookStep<'a> {
                    #step
                }
            },
            quote!(__earn::HookFn::InTx(#shim)),
        )
    } else {
        (
            quote! {
                fn #shim<'a>(#model_param) -> __earn::HookStep<'a> {
                    #step
                }
            },
            quote!(__earn::HookFn::Detached(#shim)),
        )
    };
    let on = match attr.on {
        Some(operation) => {
            let variant = format_ident!("{operation:?}");
            quote!(::core::option::Option::Some(__earn::Operation::#variant))
        }
        None => quote!(::core::option::Option::None),
    };
    let condition = match &attr.condition {
        Some(path) => {
            let span = syn::spanned::Spanned::span(path);
            // `Self::is_active` names the model: the registration is outside
            // the impl. A bare name of a method of this block means that
            // method, as in Rails' `if: :active?`; any other path is taken
            // as written (a free function).
            let path = match path.segments.first() {
                Some(first) if first.ident == "Self" => {
                    let rest = path.segments.iter().skip(1);
                    quote!(<#model> #(:: #rest)*)
                }
                Some(only)
                    if path.segments.len() == 1
                        && path.leading_colon.is_none()
                        && methods.contains(&only.ident) =>
                {
                    quote!(<#model>::#only)
                }
                _ => quote!(#path),
            };
            // A typed binding, so a wrong signature is a type mismatch on the path.
            quote_spanned!(span=> ::core::option::Option::Some({
                let condition: fn(&#model) -> bool = #path;
                condition
            }))
        }
        None => quote!(::core::option::Option::None),
    };
    let (when_changed, field_check) = match &attr.when_changed {
        Some(field) => {
            let name = field.value();
            let message = format!(
                "`when_changed = \"{name}\"`: the model has no stored field `{name}`; name one of its fields"
            );
            (
                quote!(&[#name]),
                // Fails to compile, on the string, if the model has no such
                // field. Checked against the model's columns rather than by
                // a field access, whose help would suggest an unquoted name.
                quote_spanned! {field.span()=>
                    ::core::assert!(
                        __earn::has_field(<#model as __earn::Entity>::INFO, #name),
                        #message
                    );
                },
            )
        }
        None => (quote!(&[]), quote!()),
    };
    let line = quote_spanned!(attr.span=> ::core::line!());
    quote! {
        #[doc(hidden)]
        const _: () = {
            use #root::__private as __earn;

            #shim_fn

            const _: () = { #field_check };

            static HOOK: __earn::Hook<#model> = __earn::Hook {
                call: #call,
                on: #on,
                condition: #condition,
                when_changed: #when_changed,
            };

            __earn::inventory::submit! {
                __earn::HookRegistration {
                    model: __earn::type_id::<#model>,
                    model_name: <#model as __earn::Entity>::INFO.name,
                    phase: __earn::HookPhase::#phase,
                    priority: #priority,
                    function: #function,
                    module: ::core::module_path!(),
                    file: ::core::file!(),
                    line: #line,
                    index: #index,
                    hook: &HOOK,
                }
            }
        };
    }
}
