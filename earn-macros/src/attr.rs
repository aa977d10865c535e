//! One option of an attribute, set at most once.

use proc_macro2::Span;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;

use crate::ctxt::Ctxt;

/// An option value with the span of the token that set it.
pub(crate) struct Opt<T> {
    name: &'static str,
    value: Option<(Span, T)>,
}

impl<T> Opt<T> {
    pub(crate) fn none(name: &'static str) -> Self {
        Opt { name, value: None }
    }

    /// Sets the value, or reports a duplicate on the second occurrence.
    pub(crate) fn set(&mut self, cx: &mut Ctxt, at: impl ToTokens, value: T) {
        if self.value.is_some() {
            cx.error(&at, format!("duplicate `{}` option", self.name));
        } else {
            self.value = Some((at.to_token_stream().span(), value));
        }
    }

    pub(crate) fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|(s, _)| *s)
    }

    pub(crate) fn take(self) -> Option<T> {
        self.value.map(|(_, v)| v)
    }
}

/// Reads `= "string"`.
pub(crate) fn string(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::LitStr> {
    meta.value()?.parse()
}

/// The error for an option the attribute does not have.
pub(crate) fn unknown(meta: &ParseNestedMeta<'_>, attribute: &str, expected: &str) -> syn::Error {
    let name = meta.path.to_token_stream().to_string().replace(' ', "");
    meta.error(format!(
        "unknown {attribute} option `{name}`; expected one of: {expected}"
    ))
}
