//! A typed model of a `#[hooks]` impl block: each hook method and its options.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;

use earn_vocab::Operation;

use crate::attr::{self, Opt};
use crate::ctxt::Ctxt;

/// The lifecycle phases: the list shared with the runtime.
pub(crate) use earn_vocab::HookPhase as Phase;

/// The phase's variant in generated code (`__earn::HookPhase::BeforeSave`).
pub(crate) fn variant(phase: Phase) -> syn::Ident {
    syn::Ident::new(phase.variant_name(), Span::call_site())
}

/// One hook attribute on one method.
pub(crate) struct HookAttr {
    pub(crate) phase: Phase,
    pub(crate) span: Span,
    pub(crate) priority: i32,
    pub(crate) on: Option<Operation>,
    pub(crate) condition: Option<syn::Path>,
    pub(crate) when_changed: Option<syn::LitStr>,
}

/// Parses `#[phase(priority = N, on = "…", if = path, when_changed = "…")]`.
pub(crate) fn parse_hook_attr(cx: &mut Ctxt, phase: Phase, attr: &syn::Attribute) -> HookAttr {
    let mut options = HookOptions {
        phase,
        priority: Opt::none("priority"),
        on: Opt::none("on"),
        condition: Opt::none("if"),
        when_changed: Opt::none("when_changed"),
    };
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        let parsed = attr.parse_nested_meta(|meta| {
            let result = options.parse(cx, &meta);
            attr::recover(cx, &meta, result)
        });
        if let Err(error) = parsed {
            cx.push(error);
        }
    }
    HookAttr {
        phase,
        span: attr.span(),
        priority: options.priority.take().unwrap_or(0),
        on: options.on.take(),
        condition: options.condition.take(),
        when_changed: options.when_changed.take(),
    }
}

/// The options of one hook attribute.
struct HookOptions {
    phase: Phase,
    priority: Opt<i32>,
    on: Opt<Operation>,
    condition: Opt<syn::Path>,
    when_changed: Opt<syn::LitStr>,
}

impl HookOptions {
    fn parse(&mut self, cx: &mut Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let phase = self.phase;
        let path = &meta.path;
        if path.is_ident("priority") {
            if !meta.input.peek(syn::Token![=]) {
                return Err(meta.error("expected a value: `priority = 10` (higher runs first)"));
            }
            let value = attr::priority(&meta.value()?.parse::<syn::Expr>()?)?;
            self.priority.set(cx, path, value);
        } else if path.is_ident("on") {
            let value = attr::string(meta, "on = \"create\"")?;
            let choices = phase.on_choices();
            if choices.is_empty() {
                return Err(syn::Error::new(
                    path.span(),
                    format!(
                        "`on` does not apply to {} hooks, which run for one operation only: remove it \
                         (`on` filters before_save / after_save by \"create\" | \"update\", and \
                         after_commit / after_rollback by \"create\" | \"update\" | \"delete\")",
                        phase.as_str()
                    ),
                ));
            }
            let Some(operation) =
                Operation::from_name(&value.value()).filter(|op| choices.contains(op))
            else {
                let choices: Vec<String> =
                    choices.iter().map(|c| format!("`on = \"{c}\"`")).collect();
                return Err(syn::Error::new(
                    value.span(),
                    format!(
                        "unknown operation for {} hooks; write {}",
                        phase.as_str(),
                        choices.join(" or ")
                    ),
                ));
            };
            self.on.set(cx, path, operation);
        } else if path.is_ident("if") {
            if !meta.input.peek(syn::Token![=]) {
                return Err(
                    meta.error("expected a value: `if = is_active`, naming a `fn(&Model) -> bool`")
                );
            }
            let condition = match meta.value()?.parse::<syn::Expr>()? {
                syn::Expr::Path(syn::ExprPath {
                    qself: None, path, ..
                }) => path,
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(name),
                    ..
                }) => {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "`if` takes a path, not a string: write `if = {}`",
                            name.value()
                        ),
                    ));
                }
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "`if` takes the path of a `fn(&Model) -> bool`: write `if = is_active`",
                    ));
                }
            };
            self.condition.set(cx, path, condition);
        } else if path.is_ident("when_changed") {
            let value = attr::string(meta, "when_changed = \"field\"")?;
            if !phase.tracks_changes() {
                return Err(syn::Error::new(
                    path.span(),
                    format!(
                        "`when_changed` does not apply to {} hooks: remove it; it filters the hooks \
                         that run on update: before_save, after_save, before_update, after_update",
                        phase.as_str()
                    ),
                ));
            }
            self.when_changed.set(cx, path, value);
        } else {
            return Err(attr::unknown(
                meta,
                "hook",
                "`priority = N`, `on = \"…\"`, `if = path`, `when_changed = \"field\"`",
            ));
        }
        Ok(())
    }
}

/// The shape of a hook method's signature.
pub(crate) struct Signature {
    pub(crate) takes_context: bool,
    /// An `after_commit` hook's `changes: &TransactionChanges<Self>`.
    pub(crate) takes_changes: bool,
    pub(crate) is_async: bool,
}

/// Checks a hook method's signature against its phases.
pub(crate) fn parse_signature(
    cx: &mut Ctxt,
    sig: &syn::Signature,
    hooks: &[HookAttr],
) -> Option<Signature> {
    if !sig.generics.params.is_empty() {
        cx.error(
            &sig.generics,
            "hook methods cannot be generic: remove the type parameters; a hook receives \
             only the model and, optionally, `ctx: &mut HookContext<'_>`",
        );
    }
    let mut inputs = sig.inputs.iter();
    let mutable = match inputs.next() {
        Some(syn::FnArg::Receiver(receiver)) if receiver.reference.is_some() => {
            receiver.mutability.is_some()
        }
        Some(syn::FnArg::Receiver(receiver)) => {
            cx.error(
                receiver,
                "hooks borrow the model: take `&self` or `&mut self`, not `self`",
            );
            return None;
        }
        first => {
            let message = format!(
                "a hook is a method: its first parameter must be `&self` or `&mut self`: \
                 write `fn {}(&self)`",
                sig.ident
            );
            match first {
                Some(arg) => cx.error(arg, message),
                None => cx.push(syn::Error::new(sig.paren_token.span.join(), message)),
            }
            return None;
        }
    };
    if let Some(hook) = hooks.iter().find(|h| mutable && !h.phase.may_mutate()) {
        let why = if hook.phase == Phase::BeforeDelete {
            "the row is about to be deleted, not written, so changes to the model would not \
             be saved; to keep the row and change it instead, update it from your own code"
        } else {
            "the write has already happened, so changes to the model would not be saved; \
             change fields in a before_save hook"
        };
        cx.error(
            sig.inputs.first(),
            format!("{} hooks take `&self`: {why}", hook.phase.as_str()),
        );
    }
    let mut takes_context = false;
    let mut takes_changes = false;
    if let Some(arg) = inputs.next() {
        if is_named_ref(arg, "TransactionChanges", false) {
            takes_changes = true;
            if let Some(hook) = hooks.iter().find(|h| h.phase != Phase::AfterCommit) {
                cx.error(
                    arg,
                    format!(
                        "only after_commit hooks receive the transaction's changes, not {} hooks; \
                         {}",
                        hook.phase.as_str(),
                        if hook.phase.in_transaction() {
                            "take `ctx: &mut HookContext<'_>` and read `ctx.changed()` and `ctx.previous()`"
                        } else {
                            "remove the parameter"
                        }
                    ),
                );
            }
        } else if is_context(arg) {
            takes_context = true;
            if let Some(hook) = hooks.iter().find(|h| !h.phase.in_transaction()) {
                cx.error(
                    arg,
                    format!(
                        "{} hooks run outside the transaction and take no HookContext; \
                         declare the method as `fn {}(&self)`",
                        hook.phase.as_str(),
                        sig.ident
                    ),
                );
            }
        } else {
            cx.error(
                arg,
                "a hook's only optional parameter is `ctx: &mut HookContext<'_>` (or, for an \
                 after_commit hook, `changes: &TransactionChanges<Self>`)",
            );
        }
    }
    for extra in inputs {
        cx.error(extra, "too many parameters: a hook takes `&self` or `&mut self`, then optionally `ctx: &mut HookContext<'_>`");
    }
    Some(Signature {
        takes_context,
        takes_changes,
        is_async: sig.asyncness.is_some(),
    })
}

fn is_context(arg: &syn::FnArg) -> bool {
    is_named_ref(arg, "HookContext", true)
}

/// Whether `arg` is a reference (`&mut` if `mutable`) to a type named `name`.
fn is_named_ref(arg: &syn::FnArg, name: &str, mutable: bool) -> bool {
    let syn::FnArg::Typed(typed) = arg else {
        return false;
    };
    let syn::Type::Reference(reference) = &*typed.ty else {
        return false;
    };
    if reference.mutability.is_some() != mutable {
        return false;
    }
    matches!(&*reference.elem, syn::Type::Path(p)
        if p.path.segments.last().is_some_and(|s| s.ident == name))
}
