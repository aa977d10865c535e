//! A typed model of what the user wrote on `#[derive(Field)]`.

use proc_macro2::Span;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;

use crate::attr::{self, Opt};
use crate::case::{self, RenameRule};
use crate::ctxt::Ctxt;

pub(crate) struct Container<'a> {
    pub(crate) input: &'a syn::DeriveInput,
    pub(crate) krate: Option<syn::Path>,
    /// `integer`: stored as the discriminant rather than the name.
    pub(crate) integer: Option<Span>,
    /// `rename_all = "…"`: the `rename_all` token and the rule.
    pub(crate) rename_all: Option<(Span, RenameRule)>,
    pub(crate) body: Body<'a>,
}

pub(crate) enum Body<'a> {
    Enum(Vec<Variant<'a>>),
    /// A struct of one field: `struct Email(String);`.
    Newtype(&'a syn::Field),
}

pub(crate) struct Variant<'a> {
    pub(crate) variant: &'a syn::Variant,
    /// `rename = "…"`: the `rename` token and the name.
    pub(crate) rename: Option<(Span, syn::LitStr)>,
}

impl Variant<'_> {
    /// The name the variant is stored as in a text column.
    pub(crate) fn stored_name(&self, rule: Option<RenameRule>) -> String {
        if let Some((_, name)) = &self.rename {
            return name.value();
        }
        let name = self.variant.ident.to_string();
        let name = name.trim_start_matches("r#");
        match rule {
            Some(rule) => rule.apply(name),
            None => name.to_owned(),
        }
    }
}

/// The options and how each is written.
const CONTAINER_OPTIONS: [(&str, &str); 3] = [
    ("integer", "`integer`"),
    ("rename_all", "`rename_all = \"…\"`"),
    ("crate", "`crate = \"…\"`"),
];
const VARIANT_OPTIONS: [(&str, &str); 1] = [("rename", "`rename = \"…\"`")];

impl<'a> Container<'a> {
    pub(crate) fn parse(cx: &mut Ctxt, input: &'a syn::DeriveInput) -> Option<Self> {
        let mut options = ContainerOptions {
            krate: Opt::none("crate"),
            integer: Opt::none("integer"),
            rename_all: Opt::none("rename_all"),
        };
        for attr in field_attrs(&input.attrs) {
            let parsed = attr.parse_nested_meta(|meta| {
                let result = options.parse(cx, &meta);
                attr::recover(cx, &meta, result)
            });
            if let Err(error) = parsed {
                cx.push(error);
            }
        }
        let body = match &input.data {
            syn::Data::Enum(data) => Body::Enum(
                data.variants
                    .iter()
                    .map(|variant| Variant::parse(cx, variant))
                    .collect(),
            ),
            syn::Data::Struct(data) if data.fields.len() == 1 => {
                let field = data.fields.iter().next()?;
                for attr in field_attrs(&field.attrs) {
                    cx.error(
                        attr,
                        "`#[field(…)]` goes above the type, or on an enum's variants; \
                         a newtype is stored as its field is",
                    );
                }
                Body::Newtype(field)
            }
            syn::Data::Struct(data) => {
                let at = match &data.fields {
                    syn::Fields::Unit => input.ident.to_token_stream(),
                    fields => fields.to_token_stream(),
                };
                let count = if data.fields.is_empty() {
                    "no field"
                } else {
                    "several fields"
                };
                cx.error(
                    at,
                    format!(
                        "derive(Field) on a struct needs exactly one field, the value it \
                         wraps (`struct {}(String);`), and this one has {count}; \
                         store a struct of several fields with `#[model(json)]`",
                        input.ident
                    ),
                );
                return None;
            }
            syn::Data::Union(data) => {
                cx.error(
                    data.union_token,
                    "derive(Field) needs an enum of unit variants or a newtype struct, \
                     not a union",
                );
                return None;
            }
        };
        Some(Container {
            input,
            krate: options.krate.take(),
            integer: options.integer.span(),
            rename_all: options.rename_all.span().zip(options.rename_all.take()),
            body,
        })
    }
}

/// The error for an option `#[field]` does not have, with the closest one.
fn unknown(meta: &ParseNestedMeta<'_>, place: &str, options: &[(&str, &str)]) -> syn::Error {
    let name = meta.path.to_token_stream().to_string().replace(' ', "");
    let hint = attr::closest(&name, options.iter().map(|(option, _)| *option))
        .map(|option| format!(" (did you mean `{option}`?)"))
        .unwrap_or_default();
    let expected: Vec<&str> = options.iter().map(|(_, usage)| *usage).collect();
    meta.error(format!(
        "unknown {place} option `{name}`{hint}; expected {}",
        expected.join(", ")
    ))
}

fn field_attrs(attrs: &[syn::Attribute]) -> impl Iterator<Item = &syn::Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("field"))
}

/// The options of `#[field(…)]` above the type.
struct ContainerOptions {
    krate: Opt<syn::Path>,
    integer: Opt<()>,
    rename_all: Opt<RenameRule>,
}

impl ContainerOptions {
    fn parse(&mut self, cx: &mut Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let path = &meta.path;
        if path.is_ident("integer") {
            self.integer.set(cx, path, ());
        } else if path.is_ident("rename_all") {
            let value = attr::string(meta, "rename_all = \"snake_case\"")?;
            let Some(rule) = RenameRule::from_name(&value.value()) else {
                let names = case::RULES.map(|(name, _)| name);
                let hint = attr::closest(&value.value(), names)
                    .map(|name| format!(" (did you mean `\"{name}\"`?)"))
                    .unwrap_or_default();
                let expected = names.map(|name| format!("\"{name}\"")).join(", ");
                return Err(syn::Error::new(
                    value.span(),
                    format!(
                        "unknown `rename_all` rule `\"{}\"`{hint}; expected one of: {expected}",
                        value.value()
                    ),
                ));
            };
            self.rename_all.set(cx, path, rule);
        } else if path.is_ident("crate") {
            let value = attr::string(meta, "crate = \"earn\"")?;
            self.krate.set(cx, path, value.parse::<syn::Path>()?);
        } else if path.is_ident("rename") {
            return Err(meta.error(
                "`rename` goes on a variant; above the enum, `rename_all = \"snake_case\"` \
                 renames every variant",
            ));
        } else {
            return Err(unknown(meta, "field", &CONTAINER_OPTIONS));
        }
        Ok(())
    }
}

impl<'a> Variant<'a> {
    fn parse(cx: &mut Ctxt, variant: &'a syn::Variant) -> Self {
        let mut rename = Opt::none("rename");
        for attr in field_attrs(&variant.attrs) {
            let parsed = attr.parse_nested_meta(|meta| {
                let path = &meta.path;
                let result = if path.is_ident("rename") {
                    attr::string(&meta, "rename = \"name\"").map(|name| rename.set(cx, path, name))
                } else if CONTAINER_OPTIONS.iter().any(|(name, _)| path.is_ident(name)) {
                    Err(meta.error(format!(
                        "`{}` is an option of the type: move it to the `#[field(…)]` above the enum",
                        path.to_token_stream(),
                    )))
                } else {
                    Err(unknown(&meta, "variant", &VARIANT_OPTIONS))
                };
                attr::recover(cx, &meta, result)
            });
            if let Err(error) = parsed {
                cx.push(error);
            }
        }
        Variant {
            variant,
            rename: rename.span().zip(rename.take()),
        }
    }
}
