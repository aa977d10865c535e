//! One option of an attribute, set at most once.

use proc_macro2::{Span, TokenTree};
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
            cx.error(
                &at,
                format!("duplicate `{}` option: remove this one", self.name),
            );
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

/// Records the error of one option, if any, and skips to the next option,
/// so that every mistake in an attribute is reported at once.
pub(crate) fn recover(
    cx: &mut Ctxt,
    meta: &ParseNestedMeta<'_>,
    result: syn::Result<()>,
) -> syn::Result<()> {
    let Err(error) = result else { return Ok(()) };
    cx.push(error);
    meta.input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((token, next)) = rest.token_tree() {
            if matches!(&token, TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

/// Reads `= "string"`; `usage` shows the option written correctly.
pub(crate) fn string(meta: &ParseNestedMeta<'_>, usage: &str) -> syn::Result<syn::LitStr> {
    if !meta.input.peek(syn::Token![=]) {
        return Err(meta.error(format!("expected a value: `{usage}`")));
    }
    match ungroup(meta.value()?.parse::<syn::Expr>()?) {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(value),
            ..
        }) => Ok(value),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a string literal: `{usage}`"),
        )),
    }
}

/// The expression inside the invisible groups `macro_rules!` wraps around
/// a fragment it passes on (`$table:literal`).
pub(crate) fn ungroup(mut expr: syn::Expr) -> syn::Expr {
    while let syn::Expr::Group(group) = expr {
        expr = *group.expr;
    }
    expr
}

/// The error for an option the attribute does not have.
pub(crate) fn unknown(meta: &ParseNestedMeta<'_>, attribute: &str, expected: &str) -> syn::Error {
    let name = meta.path.to_token_stream().to_string().replace(' ', "");
    meta.error(format!(
        "unknown {attribute} option `{name}`; expected one of: {expected}"
    ))
}

/// The candidate closest to a misspelled `name`, if one is close enough.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= name.len().max(3) / 3)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Reads an `i32` literal, negative allowed: `priority = -5`.
pub(crate) fn priority(expr: &syn::Expr) -> syn::Result<i32> {
    let (negative, lit) = match expr {
        syn::Expr::Lit(lit) => (false, lit),
        syn::Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            syn::Expr::Lit(lit) => (true, lit),
            _ => return Err(priority_error(expr)),
        },
        _ => return Err(priority_error(expr)),
    };
    let syn::Lit::Int(int) = &lit.lit else {
        return Err(priority_error(expr));
    };
    let value: i64 = int.base10_parse()?;
    let value = if negative { -value } else { value };
    i32::try_from(value).map_err(|_| syn::Error::new_spanned(expr, "`priority` must fit in an i32"))
}

fn priority_error(expr: &syn::Expr) -> syn::Error {
    syn::Error::new_spanned(
        expr,
        "`priority` takes an integer literal, e.g. `priority = 10` (higher runs first)",
    )
}

/// Reads a non-negative integer literal: `retries = 3`.
pub(crate) fn unsigned<T: std::str::FromStr>(expr: &syn::Expr, usage: &str) -> syn::Result<T>
where
    T::Err: std::fmt::Display,
{
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        }) => int.base10_parse(),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a non-negative integer literal: `{usage}`"),
        )),
    }
}
