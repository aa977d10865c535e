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

/// Who a block's hooks are for.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// `#[hooks] impl User`: that model.
    Model(&'a syn::Type),
    /// `#[behaviour] trait Audited`: every model the behaviour is applied
    /// to; the hooks are generic over it.
    Behaviour(&'a syn::Ident),
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

/// The body of the provided method of a behaviour trait that lists its
/// hooks for a model `Self`, in declaration order.
pub(crate) fn behaviour_method(
    behaviour: &syn::Ident,
    hooks: &[HookMethod],
    methods: &[syn::Ident],
) -> TokenStream {
    let target = Target::Behaviour(behaviour);
    let mut shims = TokenStream::new();
    let mut entries = Vec::new();
    let mut index: u32 = 0;
    for hook in hooks {
        for attr in &hook.attrs {
            // Every shim in one function body: each needs a name of its own.
            let parts = hook_parts(target, hook, attr, methods, index);
            index += 1;
            shims.extend(parts.shim_fn);
            let (phase, priority, line, value) =
                (parts.phase, attr.priority, parts.line, parts.hook);
            let function = format!("{behaviour}::{}", hook.ident);
            entries.push(quote! {
                __earn::BehaviourHook {
                    phase: __earn::HookPhase::#phase,
                    priority: #priority,
                    function: #function,
                    file: ::core::file!(),
                    line: #line,
                    hook: #value,
                }
            });
        }
    }
    let name = behaviour.to_string();
    quote! {
        #shims
        __earn::BehaviourHooks {
            name: #name,
            hooks: ::std::vec![#(#entries),*],
        }
    }
}

/// A hook's shim, its `Hook` value and what goes with them.
struct Parts {
    shim_fn: TokenStream,
    hook: TokenStream,
    field_check: TokenStream,
    phase: syn::Ident,
    line: TokenStream,
}

fn hook_parts(
    target: Target<'_>,
    hook: &HookMethod,
    attr: &HookAttr,
    methods: &[syn::Ident],
    index: u32,
) -> Parts {
    let method = &hook.ident;
    let phase = super::ast::variant(attr.phase);
    let span = hook.sig_span;
    // The model in the shim, how the user's method is named, and the
    // shim's type parameter (a behaviour's hooks are generic).
    let (model, callee, generic, instance) = match target {
        Target::Model(model) => (
            quote!(#model),
            quote!(<#model>::#method),
            quote!(),
            quote!(),
        ),
        Target::Behaviour(behaviour) => (
            quote!(__M),
            quote!(<__M as #behaviour>::#method),
            quote!(, __M: #behaviour + ::core::marker::Send + ::core::marker::Sync + 'static),
            quote!(::<Self>),
        ),
    };

    let args = if hook.signature.takes_context {
        quote!(model, ctx)
    } else if hook.signature.takes_changes {
        quote!(model, changes)
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
                #into_result(#callee(#args).await)
            }))
        }
    } else {
        quote_spanned! {span=>
            __earn::HookStep::Ready(#into_result(#callee(#args)))
        }
    };
    // `&self` methods receive the `&mut` reborrowed as shared.
    let model_param = quote!(model: &'a mut #model);
    let shim = format_ident!("__earn_{}_{}_{index}", attr.phase.as_str(), method);
    let (shim_fn, call) = if attr.phase.in_transaction() {
        (
            quote! {
                #[allow(unused_variables)]
                fn #shim<'a, 'b #generic>(#model_param, ctx: &'a mut __earn::HookContext<'b>) -> __earn::HookStep<'a> {
                    #step
                }
            },
            quote!(__earn::HookFn::InTx(#shim #instance)),
        )
    } else if hook.signature.takes_changes {
        (
            quote! {
                fn #shim<'a #generic>(#model_param, changes: &'a __earn::TransactionChanges<#model>) -> __earn::HookStep<'a> {
                    #step
                }
            },
            quote!(__earn::HookFn::Committed(#shim #instance)),
        )
    } else {
        (
            quote! {
                fn #shim<'a #generic>(#model_param) -> __earn::HookStep<'a> {
                    #step
                }
            },
            quote!(__earn::HookFn::Detached(#shim #instance)),
        )
    };
    let on = match attr.on {
        Some(operation) => {
            let variant = format_ident!("{operation:?}");
            quote!(::core::option::Option::Some(__earn::Operation::#variant))
        }
        None => quote!(::core::option::Option::None),
    };
    // Where the hook value is built: outside the impl for a model (which
    // names the model), inside the behaviour's provided method (`Self`).
    let (owner, owner_ty) = match target {
        Target::Model(model) => (quote!(<#model>), quote!(#model)),
        Target::Behaviour(_) => (quote!(Self), quote!(Self)),
    };
    let condition = match &attr.condition {
        Some(path) => {
            let span = syn::spanned::Spanned::span(path);
            // `Self::is_active` names the owner; a bare name of a method of
            // this block means that method, as in Rails' `if: :active?`;
            // any other path is taken as written (a free function).
            let path = match path.segments.first() {
                Some(first) if first.ident == "Self" => {
                    let rest = path.segments.iter().skip(1);
                    quote!(#owner #(:: #rest)*)
                }
                Some(only)
                    if path.segments.len() == 1
                        && path.leading_colon.is_none()
                        && methods.contains(&only.ident) =>
                {
                    quote!(#owner::#only)
                }
                _ => quote!(#path),
            };
            // A typed binding, so a wrong signature is a type mismatch on the path.
            quote_spanned!(span=> ::core::option::Option::Some({
                let condition: fn(&#owner_ty) -> bool = #path;
                condition
            }))
        }
        None => quote!(::core::option::Option::None),
    };
    let (when_changed, field_check) = match (&attr.when_changed, target) {
        (Some(field), Target::Model(model)) => {
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
        // Refused when the behaviour is parsed.
        _ => (quote!(&[]), quote!()),
    };
    let line = quote_spanned!(attr.span=> ::core::line!());
    Parts {
        shim_fn,
        hook: quote! {
            __earn::Hook {
                call: #call,
                on: #on,
                condition: #condition,
                when_changed: #when_changed,
            }
        },
        field_check,
        phase,
        line,
    }
}

fn registration(
    root: &TokenStream,
    model: &syn::Type,
    hook: &HookMethod,
    attr: &HookAttr,
    index: u32,
    methods: &[syn::Ident],
) -> TokenStream {
    let function = hook.ident.to_string();
    let priority = attr.priority;
    let Parts {
        shim_fn,
        hook,
        field_check,
        phase,
        line,
    } = hook_parts(Target::Model(model), hook, attr, methods, index);
    quote! {
        #[doc(hidden)]
        const _: () = {
            use #root::__private as __earn;

            #shim_fn

            const _: () = { #field_check };

            static HOOK: __earn::Hook<#model> = #hook;

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
