//! Generates the `Entity` and `Row<DB>` impls of a checked model.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;

use super::ast::{Container, Field, option_inner};
use super::sql::{DIALECTS, Table};
use super::{columns, relations};

pub(crate) fn expand(model: &Container<'_>) -> TokenStream {
    let ident = model.ident;
    let root = match &model.krate {
        Some(path) => quote!(#path),
        None => quote!(::earn),
    };
    let stored: Vec<&Field<'_>> = model.fields.iter().filter(|f| f.skip.is_none()).collect();
    let key_index = stored.iter().position(|f| f.is_key()).unwrap_or(0);
    let key = stored[key_index];
    let auto = key.auto.is_some();
    let key_field = key.ident;
    let key_ty = if auto {
        option_inner(key.ty).unwrap_or(key.ty)
    } else {
        key.ty
    };

    let table_name = match &model.table {
        Some(table) => table.value(),
        None => crate::case::snake_case(&ident.to_string()),
    };
    let version_index = stored.iter().position(|f| f.version.is_some());
    let table = Table {
        name: &table_name,
        columns: stored.iter().map(|f| f.column_name()).collect(),
        key_index,
        auto_key: auto,
        version_index,
    };
    let statements = DIALECTS.map(|d| {
        let s = table.statements(d);
        let (insert, update, delete, find, find_for_update, all) = (
            s.insert,
            s.update,
            s.delete,
            s.find,
            s.find_for_update,
            s.all,
        );
        quote! {
            __earn::Statements {
                insert: #insert, update: #update, delete: #delete,
                find: #find, find_for_update: #find_for_update, all: #all,
            }
        }
    });
    let quoted_table = DIALECTS.map(|d| d.quote(&table_name));
    let columns = stored.iter().map(|f| {
        let field = f.ident.to_string();
        let column = f.column_name();
        let quoted = DIALECTS.map(|d| d.quote(&column));
        let (unique, index) = (f.unique.is_some(), f.index.is_some());
        let default = match &f.default {
            Some(sql) => quote!(::core::option::Option::Some(#sql)),
            None => quote!(::core::option::Option::None),
        };
        quote!(__earn::Column {
            field: #field,
            name: #column,
            quoted: [#(#quoted),*],
            unique: #unique,
            index: #index,
            default: #default,
        })
    });
    let column_constants = columns::constants(model, &stored);
    let storable = stored.iter().filter(|f| f.json.is_none()).map(|f| {
        let ty = f.ty;
        quote::quote_spanned!(ty.span()=> const _: () = __earn::storable::<#ty>();)
    });
    let (created_at, updated_at, stamp, stamp_change) = timestamps(&stored);
    let (soft_delete, soft_delete_methods, soft_deletes) = soft_delete(ident, &stored);
    let behaviours = &model.behaviours;
    // The model named at each behaviour: a requirement of the behaviour
    // the model does not meet is reported on the behaviour's name.
    let behaviour_models: Vec<syn::Ident> = behaviours
        .iter()
        .map(|b| {
            let mut at = ident.clone();
            at.set_span(b.span());
            at
        })
        .collect();
    let behaviour_impls = behaviour_impls(model);
    let from_row = columns::from_row(model);
    let relations::Relations {
        items: relation_items,
        foreign_keys,
        dependents,
        delete_dependents,
    } = relations::expand(model, &stored);
    let name = ident.to_string();
    let field_names: Vec<String> = stored.iter().map(|f| f.ident.to_string()).collect();

    let (key_get, key_set, key_from_id) = if auto {
        (
            quote!(::core::clone::Clone::clone(&self.#key_field)),
            quote!(self.#key_field = key;),
            quote!(<#key_ty as ::core::convert::TryFrom<u64>>::try_from(id).ok()),
        )
    } else {
        (
            quote!(::core::option::Option::Some(::core::clone::Clone::clone(&self.#key_field))),
            quote!(let _ = key;),
            quote!({
                let _ = id;
                ::core::option::Option::None
            }),
        )
    };

    let changed = stored.iter().map(|f| {
        let field = f.ident;
        let field_name = field.to_string();
        let differs = if f.json.is_some() {
            quote!(!__earn::json_eq(&self.#field, &previous.#field))
        } else {
            quote!(self.#field != previous.#field)
        };
        quote!(if #differs { changed.push(#field_name); })
    });

    let bind = |f: &Field<'_>| {
        let field = f.ident;
        let ty = f.ty;
        if f.json.is_some() {
            quote!(<DB as __earn::Backend>::bind_json(args, &self.#field)?;)
        } else {
            quote!(<#ty as __earn::Field<DB>>::bind(&self.#field, args)?;)
        }
    };
    let bind_insert = stored
        .iter()
        .filter(|f| !(f.is_key() && auto))
        .map(|f| bind(f));
    // The version column gets the next version, and the row must still
    // hold the current one.
    let bind_update = stored
        .iter()
        .filter(|f| !f.is_key())
        .map(|f| {
            if f.version.is_some() {
                quote!(<Self as __earn::Row<DB>>::bind_version(self, args, true)?;)
            } else {
                bind(f)
            }
        })
        .chain(std::iter::once(bind(key)))
        .chain(
            version_index
                .map(|_| quote!(<Self as __earn::Row<DB>>::bind_version(self, args, false)?;)),
        );
    let bind_columns = stored.iter().enumerate().map(|(index, f)| {
        let bound = bind(f);
        quote!(#index => { #bound })
    });
    let (version_get, version_set, bind_version) = match stored.iter().find(|f| f.version.is_some())
    {
        Some(f) => {
            let field = f.ident;
            let ty = f.ty;
            (
                quote!(::core::option::Option::Some(::core::convert::From::from(self.#field))),
                quote! {
                    if let ::core::result::Result::Ok(version) = <#ty as ::core::convert::TryFrom<i128>>::try_from(version) {
                        self.#field = version;
                    }
                },
                quote! {
                    let value = i128::from(self.#field) + i128::from(next);
                    let value = <#ty as ::core::convert::TryFrom<i128>>::try_from(value)
                        .map_err(|_| ::std::format!("version {} of {} is at its type's maximum", self.#field, #name))?;
                    <#ty as __earn::Field<DB>>::bind(&value, args)
                },
            )
        }
        None => (
            quote!(::core::option::Option::None),
            quote!(let _ = version;),
            quote! {
                let _ = (args, next);
                ::core::result::Result::Ok(())
            },
        ),
    };

    // `decode` reads column `i` at position `i`; `decode_at` at `at[i]`
    // (a row of a query written by hand, matched by name).
    let stored_ref = &stored;
    let decoder = |positioned: bool| {
        let fields = model.fields.iter().map(move |f| {
            let field = f.ident;
            let ty = f.ty;
            if f.skip.is_some() {
                return quote!(#field: ::core::default::Default::default());
            }
            let index = stored_ref
                .iter()
                .position(|s| s.ident == f.ident)
                .unwrap_or(0);
            let index = if positioned {
                quote!(at[#index])
            } else {
                quote!(#index)
            };
            let column = f.column_name();
            let decoded = if f.json.is_some() {
                quote!(<DB as __earn::Backend>::decode_json(row, #index))
            } else {
                quote!(<#ty as __earn::Field<DB>>::decode(row, #index))
            };
            // A decoding error names the column, not its position.
            quote!(#field: #decoded.map_err(|error| __earn::column_error(error, #column))?)
        });
        quote!(#(#fields,)*)
    };
    let decode = decoder(false);
    let decode_at = decoder(true);
    let column_count = stored.len();
    let column_types = stored.iter().map(|f| {
        let ty = f.ty;
        if f.json.is_some() {
            quote! {
                __earn::ColumnType {
                    sql_type: <DB as __earn::Backend>::JSON_SQL_TYPE,
                    key_sql_type: <DB as __earn::Backend>::JSON_SQL_TYPE,
                    nullable: false,
                }
            }
        } else {
            quote! {
                __earn::ColumnType {
                    sql_type: <#ty as __earn::Field<DB>>::SQL_TYPE,
                    key_sql_type: <#ty as __earn::Field<DB>>::KEY_SQL_TYPE,
                    nullable: <#ty as __earn::Field<DB>>::NULLABLE,
                }
            }
        }
    });
    let mut bounds: Vec<&syn::Type> = stored
        .iter()
        .filter(|f| f.json.is_none())
        .map(|f| f.ty)
        .collect();
    bounds.push(key_ty);
    let json_bounds = stored.iter().filter(|f| f.json.is_some()).map(|f| {
        let ty = f.ty;
        quote!(#ty: __earn::serde::Serialize + __earn::serde::de::DeserializeOwned,)
    });
    let hooks_static = format_ident!("__EARN_HOOKS");
    let version_option = match version_index {
        Some(index) => quote!(::core::option::Option::Some(#index)),
        None => quote!(::core::option::Option::None),
    };
    let (events_prefix, event_payload) = match &model.events {
        Some(prefix) => {
            // Spanned at `events = "…"`: a model without `Serialize` is
            // reported there.
            let payload = quote::quote_spanned! {prefix.span()=>
                fn event_payload(&self) -> ::core::option::Option<::core::result::Result<__earn::serde_json::Value, __earn::serde_json::Error>> {
                    ::core::option::Option::Some(__earn::serde_json::to_value(self))
                }
            };
            (quote!(::core::option::Option::Some(#prefix)), payload)
        }
        None => (quote!(::core::option::Option::None), quote!()),
    };

    quote! {
        #[doc(hidden)]
        #[allow(non_local_definitions, clippy::all)]
        const _: () = {
            use #root::__private as __earn;

            impl __earn::Entity for #ident {
                type Key = #key_ty;

                const INFO: &'static __earn::ModelInfo = &__earn::ModelInfo {
                    name: #name,
                    table: #table_name,
                    quoted_table: [#(#quoted_table),*],
                    columns: &[#(#columns),*],
                    key_index: #key_index,
                    auto_key: #auto,
                    version_index: #version_option,
                    statements: [#(#statements),*],
                    events: #events_prefix,
                    foreign_keys: &[#(#foreign_keys),*],
                    dependents: &[#(#dependents),*],
                    created_at: #created_at,
                    updated_at: #updated_at,
                    soft_delete: #soft_delete,
                };

                #[inline]
                fn key(&self) -> ::core::option::Option<#key_ty> {
                    #key_get
                }

                #[inline]
                fn set_key(&mut self, key: ::core::option::Option<#key_ty>) {
                    #key_set
                }

                fn key_from_insert_id(id: u64) -> ::core::option::Option<#key_ty> {
                    #key_from_id
                }

                #[inline]
                fn version(&self) -> ::core::option::Option<i128> {
                    #version_get
                }

                #[inline]
                fn set_version(&mut self, version: i128) {
                    #version_set
                }

                fn changed_fields(&self, previous: &Self) -> ::std::vec::Vec<&'static str> {
                    let mut changed = ::std::vec::Vec::new();
                    #(#changed)*
                    changed
                }

                #event_payload

                fn field_names() -> &'static [&'static str] {
                    &[#(#field_names),*]
                }

                #delete_dependents
                #stamp
                #stamp_change
                #soft_delete_methods

                #[inline]
                fn hooks() -> &'static __earn::HookTable<__earn::Hook<Self>> {
                    static #hooks_static: ::std::sync::OnceLock<__earn::HookTable<__earn::Hook<#ident>>> =
                        ::std::sync::OnceLock::new();
                    #hooks_static.get_or_init(|| __earn::HookTable::collect_with(
                        ::std::any::TypeId::of::<#ident>(),
                        ::std::vec![#(<#behaviour_models as #behaviours>::__earn_behaviour()),*],
                    ))
                }
            }

            #behaviour_impls

            #soft_deletes

            impl<DB: __earn::Backend> __earn::Row<DB> for #ident
            where
                #(#bounds: __earn::Field<DB>,)*
                #(#json_bounds)*
            {
                fn bind_insert(&self, args: &mut <DB as __earn::sqlx::Database>::Arguments) -> ::core::result::Result<(), __earn::BoxDynError> {
                    #(#bind_insert)*
                    ::core::result::Result::Ok(())
                }

                fn bind_update(&self, args: &mut <DB as __earn::sqlx::Database>::Arguments) -> ::core::result::Result<(), __earn::BoxDynError> {
                    #(#bind_update)*
                    ::core::result::Result::Ok(())
                }

                fn bind_column(&self, index: usize, args: &mut <DB as __earn::sqlx::Database>::Arguments) -> ::core::result::Result<(), __earn::BoxDynError> {
                    match index {
                        #(#bind_columns)*
                        _ => return ::core::result::Result::Err(::std::format!("{} has no column {}", #name, index).into()),
                    }
                    ::core::result::Result::Ok(())
                }

                fn bind_version(&self, args: &mut <DB as __earn::sqlx::Database>::Arguments, next: bool) -> ::core::result::Result<(), __earn::BoxDynError> {
                    #bind_version
                }

                fn bind_key(key: &#key_ty, args: &mut <DB as __earn::sqlx::Database>::Arguments) -> ::core::result::Result<(), __earn::BoxDynError> {
                    <#key_ty as __earn::Field<DB>>::bind(key, args)
                }

                fn decode(row: &<DB as __earn::sqlx::Database>::Row) -> ::core::result::Result<Self, __earn::sqlx::Error> {
                    ::core::result::Result::Ok(#ident { #decode })
                }

                fn decode_at(row: &<DB as __earn::sqlx::Database>::Row, at: &[usize]) -> ::core::result::Result<Self, __earn::sqlx::Error> {
                    if at.len() != #column_count {
                        return ::core::result::Result::Err(__earn::sqlx::Error::ColumnNotFound(
                            ::std::format!("{} has {} columns, {} positions given", #name, #column_count, at.len()),
                        ));
                    }
                    ::core::result::Result::Ok(#ident { #decode_at })
                }

                fn decode_key(row: &<DB as __earn::sqlx::Database>::Row) -> ::core::result::Result<#key_ty, __earn::sqlx::Error> {
                    <#key_ty as __earn::Field<DB>>::decode(row, 0)
                }

                fn column_types() -> ::std::vec::Vec<__earn::ColumnType> {
                    ::std::vec![#(#column_types),*]
                }
            }

            // A model need not use every column or relation it is given.
            #[allow(clippy::all, dead_code)]
            impl #ident {
                #column_constants
                #relation_items
            }

            #from_row

            // Each stored field's type has a column: one error on the type
            // if not, rather than missing impls at every call site.
            #(#storable)*

            // For `earn::create_tables_sql`.
            __earn::inventory::submit! {
                __earn::ModelRegistration {
                    info: <#ident as __earn::Entity>::INFO,
                    create_table_sql: <#ident as __earn::Model>::create_table_sql,
                }
            }
        };
    }
}

/// `created_at` / `updated_at`: their indices in `ModelInfo`, and the
/// `Entity::stamp` / `stamp_change` overrides.
fn timestamps(stored: &[&Field<'_>]) -> (TokenStream, TokenStream, TokenStream, TokenStream) {
    let index = |pick: fn(&Field<'_>) -> bool| match stored.iter().position(|f| pick(f)) {
        Some(i) => quote!(::core::option::Option::Some(#i)),
        None => quote!(::core::option::Option::None),
    };
    let created = stored.iter().find(|f| f.created_at.is_some());
    let updated = stored.iter().find(|f| f.updated_at.is_some());
    // Spanned at the field's type: a type that cannot hold a date-time is
    // reported there.
    let at = |f: &Field<'_>| {
        let ty = f.ty;
        quote::quote_spanned!(ty.span()=> <#ty as __earn::Timestamp>::at(now))
    };
    let on_create = created.map(|f| {
        let field = f.ident;
        let value = at(f);
        quote!(if operation == __earn::Operation::Create { self.#field = #value; })
    });
    let on_write = updated.map(|f| {
        let field = f.ident;
        let value = at(f);
        quote!(self.#field = #value;)
    });
    let stamp = if created.is_some() || updated.is_some() {
        quote! {
            fn stamp(&mut self, now: ::std::time::SystemTime, operation: __earn::Operation) {
                #on_create
                #on_write
            }
        }
    } else {
        quote!()
    };
    let stamp_change = match updated {
        Some(f) => {
            let name = super::columns::const_name(f);
            let value = at(f);
            quote! {
                fn stamp_change(now: ::std::time::SystemTime) -> ::core::option::Option<__earn::Set<Self>> {
                    ::core::option::Option::Some(Self::#name.set(#value))
                }
            }
        }
        None => quote!(),
    };
    (
        index(|f| f.created_at.is_some()),
        index(|f| f.updated_at.is_some()),
        stamp,
        stamp_change,
    )
}

/// `soft_delete`: its index in `ModelInfo`, the `Entity` overrides, and
/// the `SoftDeletes` impl that gives the model `restore` and
/// `force_delete`.
fn soft_delete(
    ident: &syn::Ident,
    stored: &[&Field<'_>],
) -> (TokenStream, TokenStream, TokenStream) {
    let Some((index, f)) = stored
        .iter()
        .enumerate()
        .find(|(_, f)| f.soft_delete.is_some())
    else {
        return (quote!(::core::option::Option::None), quote!(), quote!());
    };
    let field = f.ident;
    let ty = f.ty;
    let name = super::columns::const_name(f);
    // Spanned at the field's type: a type that cannot mark a deleted row
    // is reported there.
    let at = quote::quote_spanned!(ty.span()=> <#ty as __earn::SoftDelete>::at(at));
    let live =
        quote::quote_spanned!(ty.span()=> <#ty as __earn::SoftDelete>::is_live(&self.#field));
    let methods = quote! {
        fn soft_delete_change(at: ::core::option::Option<::std::time::SystemTime>) -> ::core::option::Option<__earn::Set<Self>> {
            ::core::option::Option::Some(Self::#name.set(#at))
        }

        fn set_deleted(&mut self, at: ::core::option::Option<::std::time::SystemTime>) {
            self.#field = #at;
        }

        fn is_deleted(&self) -> bool {
            !#live
        }
    };
    (
        quote!(::core::option::Option::Some(#index)),
        methods,
        quote!(impl __earn::SoftDeletes for #ident {}),
    )
}

/// `behaviours(Audited, …)`: the model implements each behaviour trait
/// (spanned at its name, so a requirement the model does not meet is
/// reported there), and registers their hooks for `earn::registry()`.
fn behaviour_impls(model: &Container<'_>) -> TokenStream {
    let ident = model.ident;
    let name = ident.to_string();
    model
        .behaviours
        .iter()
        .map(|behaviour| {
            let mut ident = ident.clone();
            ident.set_span(behaviour.span());
            let describe = quote::quote_spanned! {behaviour.span()=>
                fn describe() -> ::std::vec::Vec<__earn::AppliedHook> {
                    <#ident as #behaviour>::__earn_behaviour().describe(#name)
                }
            };
            quote::quote_spanned! {behaviour.span()=>
                impl #behaviour for #ident {}

                const _: () = {
                    #describe
                    __earn::inventory::submit! {
                        __earn::BehaviourRegistration { hooks: describe }
                    }
                };
            }
        })
        .collect()
}
