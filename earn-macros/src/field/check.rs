//! Checks on a parsed `#[derive(Field)]` that need the whole type.

use std::collections::HashMap;

use super::ast::{Body, Container};
use crate::ctxt::Ctxt;

pub(crate) fn check(cx: &mut Ctxt, container: &Container<'_>) {
    let ident = &container.input.ident;
    let variants = match &container.body {
        Body::Enum(variants) => variants,
        Body::Newtype(_) => {
            if let Some(integer) = container.integer {
                cx.push(syn::Error::new(
                    integer,
                    "`integer` applies to enums: a newtype is stored as its field is",
                ));
            }
            if let Some((rename_all, _)) = container.rename_all {
                cx.push(syn::Error::new(
                    rename_all,
                    "`rename_all` applies to enums: a newtype is stored as its field is",
                ));
            }
            return;
        }
    };
    if variants.is_empty() {
        cx.error(
            ident,
            format!("`{ident}` has no variants, so no value to store: add one"),
        );
    }
    for v in variants {
        let variant = v.variant;
        if !variant.fields.is_empty() {
            cx.error(
                &variant.fields,
                format!(
                    "`{ident}::{}` holds data: derive(Field) stores enums of unit variants only; \
                     store this enum with `#[model(json)]` on the field instead",
                    variant.ident
                ),
            );
        }
    }
    if container.integer.is_some() {
        // Only names are renamed: an integer enum stores discriminants.
        if let Some((rename_all, _)) = container.rename_all {
            cx.push(syn::Error::new(
                rename_all,
                "`rename_all` renames text values, but an `integer` enum stores \
                 discriminants: remove one of the two",
            ));
        }
        for v in variants {
            if let Some((at, _)) = &v.rename {
                cx.push(syn::Error::new(
                    *at,
                    format!(
                        "`rename` names a text value, but an `integer` enum stores \
                         `{ident}::{}` as its discriminant: remove `rename`, or `integer` \
                         to store names",
                        v.variant.ident
                    ),
                ));
            }
        }
        return;
    }
    let rule = container.rename_all.map(|(_, rule)| rule);
    let mut seen: HashMap<String, &syn::Ident> = HashMap::new();
    for v in variants {
        let name = v.stored_name(rule);
        match seen.get(&name) {
            Some(first) => {
                let message = format!(
                    "`{ident}::{}` is stored as \"{name}\", as `{ident}::{first}` is: \
                     give each variant its own name with `#[field(rename = \"…\")]`",
                    v.variant.ident
                );
                match &v.rename {
                    Some((_, literal)) => cx.error(literal, message),
                    None => cx.error(&v.variant.ident, message),
                }
            }
            None => {
                seen.insert(name, &v.variant.ident);
            }
        }
    }
}
