//! Checks on a parsed model, each reported on the token to fix.

use std::collections::HashSet;

use super::ast::{Container, Scalar, classify, option_inner};
use crate::ctxt::Ctxt;

pub(crate) fn check(cx: &mut Ctxt, model: &Container<'_>) {
    check_key(cx, model);
    check_version(cx, model);
    check_belongs_to(cx, model);
    check_timestamps(cx, model);
    let mut columns = HashSet::new();
    for field in &model.fields {
        if let Some(skip) = field.skip {
            if field.unique.is_some() || field.index.is_some() || field.default.is_some() {
                cx.push(syn::Error::new(
                    skip,
                    "`skip` fields have no column, so no `unique`, `index` or `default`: \
                     remove `skip`, or the other options",
                ));
            }
            if field.is_key() || field.json.is_some() || field.column.is_some() {
                cx.push(syn::Error::new(
                    skip,
                    "`skip` fields are not stored, so they cannot be `primary_key`, `json` or have a \
                     `column`: remove `skip`, or the other options",
                ));
            }
            continue;
        }
        if !columns.insert(field.column_name()) {
            let at = field
                .column
                .as_ref()
                .map_or(field.ident.span(), |c| c.span());
            cx.push(syn::Error::new(
                at,
                format!(
                    "column `{}` is used by two fields; rename one with `column = \"…\"`",
                    field.column_name()
                ),
            ));
        }
        if let Some(json) = field.json
            && field.is_key()
        {
            cx.push(syn::Error::new(json, "a `json` field cannot be the primary key: remove `json`, or make another field the key"));
        }
        // Whether the type has a column is the `Storable` trait's to say
        // (aliases and the user's own `Field` types are accepted), on the
        // field's type, in the generated code.
    }
}

/// `created_at` / `updated_at` / `soft_delete`: at most one of each, on a
/// plain stored field (the type is checked by the `Timestamp` and
/// `SoftDelete` traits, spanned at it).
fn check_timestamps(cx: &mut Ctxt, model: &Container<'_>) {
    for (option, span_of) in [
        (
            "created_at",
            (|f| f.created_at) as fn(&super::ast::Field<'_>) -> Option<proc_macro2::Span>,
        ),
        ("updated_at", |f| f.updated_at),
        ("soft_delete", |f| f.soft_delete),
    ] {
        let mut seen = false;
        for field in &model.fields {
            let Some(at) = span_of(field) else {
                continue;
            };
            if seen {
                cx.push(syn::Error::new(
                    at,
                    format!("a second `{option}` field: a model has at most one; remove this one"),
                ));
            }
            seen = true;
            if field.skip.is_some()
                || field.json.is_some()
                || field.is_key()
                || field.version.is_some()
            {
                cx.push(syn::Error::new(
                    at,
                    format!(
                        "`{option}` goes on a date-time field of its own: not the key, `json`, \
                         `skip` or `version`"
                    ),
                ));
            }
        }
    }
    for field in &model.fields {
        let marks = [field.created_at, field.updated_at, field.soft_delete];
        if let Some(second) = marks.iter().flatten().nth(1) {
            cx.push(syn::Error::new(
                *second,
                "a field is one of `created_at`, `updated_at` and `soft_delete`: give each its own field",
            ));
        }
    }
}

/// `belongs_to = Parent`: a stored, non-JSON, non-key field named after its
/// relation with `_id` (`order_id` gives `line.order(&db)`).
fn check_belongs_to(cx: &mut Ctxt, model: &Container<'_>) {
    for field in &model.fields {
        let Some(parent) = &field.belongs_to else {
            continue;
        };
        if field.skip.is_some() || field.json.is_some() || field.is_key() {
            cx.error(
                parent,
                "a `belongs_to` field holds the parent's key in a column of its own: \
                 it cannot be `skip`, `json` or the primary key",
            );
        } else if super::relations::belongs_to_name(field).is_none() {
            cx.error(
                field.ident,
                format!(
                    "a `belongs_to` field is named after its relation with `_id`: rename `{0}` \
                     to `{0}_id` (the relation is then loaded with `.{0}(&db)`)",
                    field.ident
                ),
            );
        }
    }
}

/// `#[model(version)]`: one plain integer field that is neither the key
/// nor JSON nor skipped.
fn check_version(cx: &mut Ctxt, model: &Container<'_>) {
    let mut seen = false;
    for field in &model.fields {
        let Some(version) = field.version else {
            continue;
        };
        if seen {
            cx.push(syn::Error::new(
                version,
                "a model has at most one `version` field: remove this one",
            ));
            continue;
        }
        seen = true;
        if field.is_key() || field.json.is_some() || field.skip.is_some() {
            cx.push(syn::Error::new(
                version,
                "the `version` field counts the updates of a row: it cannot be the `primary_key`, \
                 `json` or `skip`",
            ));
        } else if matches!(classify(field.ty), Some((scalar, nullable)) if scalar != Scalar::Integer || nullable)
            || option_inner(field.ty).is_some()
        {
            cx.error(
                field.ty,
                "a `version` field is an integer (`i64`, `i32`, `u32`, …), not an Option: \
                 new rows start at the value it holds (usually 0) and each update adds one",
            );
        }
    }
}

fn check_key(cx: &mut Ctxt, model: &Container<'_>) {
    let keys: Vec<_> = model.fields.iter().filter(|f| f.is_key()).collect();
    match keys.as_slice() {
        [] => cx.error(
            model.ident,
            format!(
                "`{}` has no primary key: mark one field `#[model(primary_key)]` \
                 (add `auto` for a database-generated `Option<i64>` id)",
                model.ident
            ),
        ),
        [_] => {}
        [_, extra @ ..] => {
            for field in extra {
                if let Some(span) = field.primary_key {
                    cx.push(syn::Error::new(
                        span,
                        "a model has exactly one `primary_key`: remove this one (composite keys \
                         are not supported; add a surrogate `#[model(primary_key, auto)] id: Option<i64>` \
                         if no single field identifies a row)",
                    ));
                }
            }
        }
    }
    for field in &model.fields {
        let Some(auto) = field.auto else {
            if field.is_key() && option_inner(field.ty).is_some() && field.json.is_none() {
                cx.error(
                    field.ty,
                    "a natural (non-`auto`) primary key cannot be an Option: it is set before the row \
                     is saved; add `auto` if the database generates it",
                );
            }
            continue;
        };
        if !field.is_key() {
            cx.push(syn::Error::new(
                auto,
                "`auto` marks a database-generated primary key: remove it, or write \
                 `#[model(primary_key, auto)]` if this field is the key",
            ));
            continue;
        }
        // A type earn does not know (an alias) is left to the compiler.
        match option_inner(field.ty).map(|inner| (inner, classify(inner))) {
            Some((_, Some((Scalar::Integer, false)) | None)) => {}
            Some(_) => cx.error(
                field.ty,
                "an `auto` key is generated by the database and must be an integer: write `Option<i64>`, \
                 or remove `auto` for a key the application sets",
            ),
            None => cx.error(
                field.ty,
                "an `auto` key is `None` until the database assigns it: write `Option<i64>` \
                 (or an Option of another integer type), or remove `auto` for a key the application sets",
            ),
        }
    }
    for field in &keys {
        if field.json.is_some() || field.skip.is_some() {
            continue;
        }
        let plain = if field.auto.is_some() {
            option_inner(field.ty)
        } else {
            Some(field.ty)
        };
        if let Some((Scalar::Float | Scalar::Bool, _)) = plain.and_then(classify) {
            cx.error(
                field.ty,
                "a primary key cannot be a float or a bool; use an integer, String or Uuid",
            );
        }
    }
}
