//! The typed columns of a model (`User::EMAIL`) and its `sqlx::FromRow`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::ast::{Container, Field, option_inner};

/// `User::EMAIL` for `email`: the associated constant of a field.
pub(crate) fn const_name(field: &Field<'_>) -> syn::Ident {
    let name = field.ident.to_string();
    format_ident!("{}", name.trim_start_matches("r#").to_uppercase())
}

/// One `Col` constant per stored field that is not JSON.
pub(crate) fn constants(model: &Container<'_>, stored: &[&Field<'_>]) -> TokenStream {
    let ident = model.ident;
    let vis = model.vis;
    let constants = stored
        .iter()
        .enumerate()
        .filter(|(_, f)| f.json.is_none())
        .map(|(index, f)| {
            let field = f.ident;
            let ty = f.ty;
            let compared = option_inner(ty).unwrap_or(ty);
            let name = const_name(f);
            let doc = format!(
                "The `{}` column (field `{}`), for queries: `{ident}::{name}.eq(…)`.",
                f.column_name(),
                field
            );
            quote! {
                #[doc = #doc]
                #vis const #name: __earn::Col<#ident, #compared, #ty> = __earn::Col::new(
                    #index,
                    |model: &#ident| &model.#field,
                    |model: &mut #ident| &mut model.#field,
                );
            }
        });
    quote!(#(#constants)*)
}

/// `impl sqlx::FromRow` decoding by column name, for `sqlx::query_as`.
pub(crate) fn from_row(model: &Container<'_>) -> TokenStream {
    let ident = model.ident;
    quote! {
        impl<'r, R> __earn::sqlx::FromRow<'r, R> for #ident
        where
            R: __earn::sqlx::Row,
            <R as __earn::sqlx::Row>::Database: __earn::Backend,
            #ident: __earn::Row<<R as __earn::sqlx::Row>::Database>,
        {
            fn from_row(row: &'r R) -> ::core::result::Result<Self, __earn::sqlx::Error> {
                let at = __earn::column_positions(row, <Self as __earn::Entity>::INFO)?;
                <Self as __earn::Row<<R as __earn::sqlx::Row>::Database>>::decode_at(row, &at)
            }
        }
    }
}
