//! Generates `impl Field<DB>` for every backend at once: generic over
//! `Backend`, so the user's crate needs none of earn's backend features.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::ast::{Body, Container, Variant};

pub(crate) fn expand(container: &Container<'_>) -> TokenStream {
    let input = container.input;
    let items = match &container.body {
        Body::Newtype(field) => newtype(input, field),
        Body::Enum(variants) if container.integer.is_some() => integer(input, variants),
        Body::Enum(variants) => {
            let rule = container.rename_all.map(|(_, rule)| rule);
            text(input, variants, rule)
        }
    };
    wrap(container.krate.as_ref(), items)
}

/// An impl that compiles whatever the input, emitted beside its errors.
pub(crate) fn fallback(input: &syn::DeriveInput, krate: Option<&syn::Path>) -> TokenStream {
    let header = header(input, None);
    let never = quote!(::core::unreachable!("derive(Field) reported an error"));
    wrap(
        krate,
        quote! {
            #header {
                const SQL_TYPE: &'static str = "";
                fn bind(&self, args: &mut <__Db as __earn::sqlx::Database>::Arguments) -> ::core::result::Result<(), __earn::BoxDynError> {
                    let _ = args;
                    #never
                }
                fn bind_null(args: &mut <__Db as __earn::sqlx::Database>::Arguments) -> ::core::result::Result<(), __earn::BoxDynError> {
                    let _ = args;
                    #never
                }
                fn decode(row: &<__Db as __earn::sqlx::Database>::Row, index: usize) -> ::core::result::Result<Self, __earn::sqlx::Error> {
                    let _ = (row, index);
                    #never
                }
            }
        },
    )
}

/// The items inside `const _: () = { … };`, with one path root.
fn wrap(krate: Option<&syn::Path>, items: TokenStream) -> TokenStream {
    let root = match krate {
        Some(path) => quote!(#path),
        None => quote!(::earn),
    };
    quote! {
        #[doc(hidden)]
        #[allow(non_local_definitions, clippy::all)]
        const _: () = {
            use #root::__private as __earn;
            #items
        };
    }
}

/// `impl<…, __Db: Backend> Field<__Db> for Type<…> where …, stored: Field<__Db>`.
fn header(input: &syn::DeriveInput, stored: Option<&syn::Type>) -> TokenStream {
    let ident = &input.ident;
    let mut generics = input.generics.clone();
    // Lifetimes are declared first.
    let at = generics.lifetimes().count();
    generics
        .params
        .insert(at, syn::parse_quote!(__Db: __earn::Backend));
    let (impl_generics, _, _) = generics.split_for_impl();
    let (_, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut predicates: Vec<TokenStream> = where_clause
        .map(|w| w.predicates.iter().map(|p| quote!(#p)).collect())
        .unwrap_or_default();
    if let Some(stored) = stored {
        predicates.push(quote!(#stored: __earn::Field<__Db>));
    }
    quote! {
        impl #impl_generics __earn::Field<__Db> for #ident #ty_generics
        where #(#predicates,)*
    }
}

/// The signatures of `Field`'s methods, around the given bodies.
fn methods(stored: &TokenStream, bind: TokenStream, decode: TokenStream) -> TokenStream {
    quote! {
        const SQL_TYPE: &'static str = <#stored as __earn::Field<__Db>>::SQL_TYPE;
        const KEY_SQL_TYPE: &'static str = <#stored as __earn::Field<__Db>>::KEY_SQL_TYPE;
        const NULLABLE: bool = <#stored as __earn::Field<__Db>>::NULLABLE;

        #[inline]
        fn bind(&self, args: &mut <__Db as __earn::sqlx::Database>::Arguments) -> ::core::result::Result<(), __earn::BoxDynError> {
            #bind
        }

        fn bind_null(args: &mut <__Db as __earn::sqlx::Database>::Arguments) -> ::core::result::Result<(), __earn::BoxDynError> {
            <#stored as __earn::Field<__Db>>::bind_null(args)
        }

        fn decode(row: &<__Db as __earn::sqlx::Database>::Row, index: usize) -> ::core::result::Result<Self, __earn::sqlx::Error> {
            #decode
        }
    }
}

/// A newtype: everything delegated to the field.
fn newtype(input: &syn::DeriveInput, field: &syn::Field) -> TokenStream {
    let ty = &field.ty;
    let header = header(input, Some(ty));
    let stored = quote!(#ty);
    let (get, build) = match &field.ident {
        Some(name) => (quote!(&self.#name), quote!(|inner| Self { #name: inner })),
        None => (quote!(&self.0), quote!(Self)),
    };
    let methods = methods(
        &stored,
        quote!(<#ty as __earn::Field<__Db>>::bind(#get, args)),
        quote!(<#ty as __earn::Field<__Db>>::decode(row, index).map(#build)),
    );
    quote!(#header { #methods })
}

/// An enum stored as each variant's name, in the column a `String` has.
fn text(
    input: &syn::DeriveInput,
    variants: &[Variant<'_>],
    rule: Option<crate::case::RenameRule>,
) -> TokenStream {
    let ident = &input.ident;
    let type_name = ident.to_string();
    let stored_ty: syn::Type = syn::parse_quote!(::std::string::String);
    let header = header(input, Some(&stored_ty));
    let stored = quote!(#stored_ty);
    let names: Vec<String> = variants.iter().map(|v| v.stored_name(rule)).collect();
    let idents: Vec<&syn::Ident> = variants.iter().map(|v| &v.variant.ident).collect();
    let methods = methods(
        &stored,
        quote! {
            let name = match self { #(Self::#idents => #names,)* };
            <__Db as __earn::Backend>::bind_str(args, name)
        },
        quote! {
            match <__Db as __earn::Backend>::decode_str(row, index)? {
                #(#names => ::core::result::Result::Ok(Self::#idents),)*
                stored => ::core::result::Result::Err(
                    __earn::unknown_name(index, #type_name, stored, &[#(#names),*]),
                ),
            }
        },
    );
    quote!(#header { #methods })
}

/// An enum stored as each variant's discriminant, in the column an `i64`
/// has.
fn integer(input: &syn::DeriveInput, variants: &[Variant<'_>]) -> TokenStream {
    let ident = &input.ident;
    let type_name = ident.to_string();
    let stored_ty: syn::Type = syn::parse_quote!(i64);
    let header = header(input, Some(&stored_ty));
    let stored = quote!(#stored_ty);
    let idents: Vec<&syn::Ident> = variants.iter().map(|v| &v.variant.ident).collect();
    let names: Vec<String> = idents.iter().map(|i| i.to_string()).collect();
    // `as i64` of a `u64` above `i64::MAX` would wrap: refused where the
    // variant is declared.
    let fits = idents.iter().map(|variant| {
        let message = format!(
            "the discriminant of `{ident}::{variant}` does not fit the BIGINT column of an \
             `integer` enum (an i64)"
        );
        quote_spanned! {variant.span()=>
            const _: () = ::core::assert!(
                (#ident::#variant as i128) == ((#ident::#variant as i64) as i128),
                #message
            );
        }
    });
    let methods = methods(
        &stored,
        quote! {
            let value: i64 = match self { #(Self::#idents => Self::#idents as i64,)* };
            <i64 as __earn::Field<__Db>>::bind(&value, args)
        },
        quote! {
            let stored = <i64 as __earn::Field<__Db>>::decode(row, index)?;
            #(if stored == Self::#idents as i64 {
                return ::core::result::Result::Ok(Self::#idents);
            })*
            ::core::result::Result::Err(__earn::unknown_discriminant(
                index,
                #type_name,
                stored,
                &[#((#names, Self::#idents as i64)),*],
            ))
        },
    );
    quote! {
        #header { #methods }
        #(#fits)*
    }
}
