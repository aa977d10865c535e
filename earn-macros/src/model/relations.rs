//! `belongs_to`, `has_many` and `has_one`: relation constants, the methods
//! that load them, foreign keys for `CREATE TABLE`, and what deleting a
//! parent does.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::{Container, Field, OnDelete, RelationKind};
use super::columns::const_name;

/// What the relations of a model generate.
pub(crate) struct Relations {
    /// Constants and methods in `impl Model { … }`.
    pub(crate) items: TokenStream,
    /// `ForeignKeyColumn`s of `ModelInfo::foreign_keys`.
    pub(crate) foreign_keys: Vec<TokenStream>,
    /// Child model names of `ModelInfo::dependents`.
    pub(crate) dependents: Vec<String>,
    /// The `Entity::delete_dependents` override, if any relation has one.
    pub(crate) delete_dependents: TokenStream,
}

/// `order_id` → `order`.
pub(crate) fn belongs_to_name(field: &Field<'_>) -> Option<String> {
    let name = field.ident.to_string();
    let name = name.trim_start_matches("r#");
    name.strip_suffix("_id")
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

pub(crate) fn expand(model: &Container<'_>, stored: &[&Field<'_>]) -> Relations {
    let ident = model.ident;
    let vis = model.vis;
    let mut items = Vec::new();
    let mut foreign_keys = Vec::new();
    for (index, field) in stored.iter().enumerate() {
        let Some(parent) = &field.belongs_to else {
            continue;
        };
        let Some(name) = belongs_to_name(field) else {
            continue; // reported by the checks
        };
        let method = format_ident!("{name}");
        let method_in = format_ident!("{name}_in");
        let relation = format_ident!("{}", name.to_uppercase());
        let column = const_name(field);
        let field_ident = field.ident;
        let parent_key = quote_spanned!(parent.span()=> <#parent as __earn::Entity>::Key);
        let key_of = quote_spanned! {field.ty.span()=>
            __earn::foreign_key::<#parent_key, _>(&model.#field_ident)
        };
        let doc = format!(
            "`{ident}` belongs to `{}` through `{field_ident}`.",
            quote!(#parent)
        );
        // Spanned at the parent: a type that is not a model is reported
        // there.
        items.push(quote_spanned! {parent.span()=>
            #[doc = #doc]
            #vis const #relation: __earn::BelongsTo<#ident, #parent> = __earn::BelongsTo::new(
                #ident::#column,
                |model: &#ident| #key_of,
            );

            #[doc = concat!("The `", stringify!(#parent), "` this row refers to, or `None`.")]
            #vis fn #method<'a>(&'a self, db: &'a __earn::Db) -> impl ::core::future::Future<Output = ::core::result::Result<::core::option::Option<#parent>, __earn::Error>> + Send + 'a {
                __earn::parent(Self::#relation, self, db)
            }

            #[doc = concat!("[`", stringify!(#method), "`](Self::", stringify!(#method), ") in a transaction.")]
            #vis fn #method_in<'a>(&'a self, tx: &'a mut __earn::Tx) -> impl ::core::future::Future<Output = ::core::result::Result<::core::option::Option<#parent>, __earn::Error>> + Send + 'a {
                __earn::parent_in(Self::#relation, self, tx)
            }
        });
        foreign_keys.push(quote! {
            __earn::ForeignKeyColumn {
                column: #index,
                references: || <#parent as __earn::Entity>::INFO,
            }
        });
    }

    let mut dependents = Vec::new();
    let mut actions = Vec::new();
    let parent_snake = crate::case::snake_case(&ident.to_string());
    for relation in &model.relations {
        let child = &relation.child;
        let child_name = child
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let child_snake = crate::case::snake_case(&child_name);
        let name = match (&relation.name, relation.kind) {
            (Some(name), _) => name.value(),
            (None, RelationKind::HasMany) => format!("{child_snake}s"),
            (None, RelationKind::HasOne) => child_snake,
        };
        let (fk_field, fk_span) = match &relation.foreign_key {
            Some(fk) => (fk.value(), fk.span()),
            None => (format!("{parent_snake}_id"), child.span()),
        };
        let fk_column = format_ident!("{}", fk_field.to_uppercase(), span = fk_span);
        let fk = quote_spanned!(fk_span=> <#child>::#fk_column);
        let (action, nullify) = match &relation.on_delete {
            Some((literal, action)) => {
                let nullify = if *action == OnDelete::Nullify {
                    quote_spanned! {literal.span()=>
                        ::core::option::Option::Some((|| __earn::set_null(#fk)) as fn() -> __earn::Set<#child>)
                    }
                } else {
                    quote!(::core::option::Option::None)
                };
                (*action, nullify)
            }
            None => (OnDelete::Restrict, quote!(::core::option::Option::None)),
        };
        let variant = format_ident!("{}", action.variant());
        let relation_const = format_ident!("{}", name.to_uppercase());
        let method = format_ident!("{name}");
        let method_in = format_ident!("{name}_in");
        let key_of = quote_spanned! {fk_span=>
            __earn::foreign_key::<<#ident as __earn::Entity>::Key, _>(#fk.get(model))
        };
        let (ty, output, load, load_in) = match relation.kind {
            RelationKind::HasMany => (
                quote!(__earn::HasMany<#ident, #child>),
                quote!(::std::vec::Vec<#child>),
                quote!(children),
                quote!(children_in),
            ),
            RelationKind::HasOne => (
                quote!(__earn::HasOne<#ident, #child>),
                quote!(::core::option::Option<#child>),
                quote!(child),
                quote!(child_in),
            ),
        };
        let doc = format!(
            "`{ident}` {} `{child_name}` through its `{fk_field}`; on delete: {}.",
            if relation.kind == RelationKind::HasMany {
                "has many"
            } else {
                "has one"
            },
            action.variant().to_lowercase()
        );
        items.push(quote_spanned! {child.span()=>
            #[doc = #doc]
            #vis const #relation_const: #ty = <#ty>::new(
                #fk,
                |model: &#child| #key_of,
                __earn::OnDelete::#variant,
                #nullify,
            );

            #[doc = concat!("The `", stringify!(#child), "` rows of this row.")]
            #vis fn #method<'a>(&'a self, db: &'a __earn::Db) -> impl ::core::future::Future<Output = ::core::result::Result<#output, __earn::Error>> + Send + 'a {
                __earn::#load(Self::#relation_const, self, db)
            }

            #[doc = concat!("[`", stringify!(#method), "`](Self::", stringify!(#method), ") in a transaction.")]
            #vis fn #method_in<'a>(&'a self, tx: &'a mut __earn::Tx) -> impl ::core::future::Future<Output = ::core::result::Result<#output, __earn::Error>> + Send + 'a {
                __earn::#load_in(Self::#relation_const, self, tx)
            }
        });
        dependents.push(child_name);
        actions.push(quote! {
            #ident::#relation_const.delete_dependents(tx, keys, hooks).await?;
        });
    }
    let at = relation_span(model);
    let delete_dependents = if actions.is_empty() {
        quote!()
    } else {
        quote_spanned! {at=>
            fn delete_dependents<'a>(
                tx: &'a mut __earn::Tx,
                keys: &'a [Self::Key],
                hooks: __earn::Hooks,
            ) -> ::core::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = ::core::result::Result<(), __earn::Error>> + Send + 'a>> {
                ::std::boxed::Box::pin(async move {
                    #(#actions)*
                    ::core::result::Result::Ok(())
                })
            }
        }
    };
    Relations {
        items: quote!(#(#items)*),
        foreign_keys,
        dependents,
        delete_dependents,
    }
}

fn relation_span(model: &Container<'_>) -> proc_macro2::Span {
    model
        .relations
        .first()
        .map_or_else(|| model.ident.span(), |r| r.at.span())
}
