//! A typed model of what the user wrote on `#[derive(Model)]`.

use quote::ToTokens;
use syn::meta::ParseNestedMeta;

use crate::attr::{self, Opt};
use crate::ctxt::Ctxt;

pub(crate) struct Container<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) vis: &'a syn::Visibility,
    pub(crate) table: Option<syn::LitStr>,
    /// `events = "user"`: the prefix of `user.created` / `updated` / `deleted`.
    pub(crate) events: Option<syn::LitStr>,
    pub(crate) krate: Option<syn::Path>,
    pub(crate) fields: Vec<Field<'a>>,
    /// `has_many(…)` / `has_one(…)`, in declaration order.
    pub(crate) relations: Vec<Relation>,
    /// `behaviours(Audited, …)`, in the order listed.
    pub(crate) behaviours: Vec<syn::Path>,
}

/// `has_many(Child, foreign_key = "…", name = "…", on_delete = "…")` or
/// `has_one(…)` on the parent.
pub(crate) struct Relation {
    pub(crate) kind: RelationKind,
    /// The `has_many` / `has_one` token.
    pub(crate) at: syn::Path,
    pub(crate) child: syn::Path,
    /// The child's field holding this model's key.
    pub(crate) foreign_key: Option<syn::LitStr>,
    pub(crate) name: Option<syn::LitStr>,
    pub(crate) on_delete: Option<(syn::LitStr, OnDelete)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelationKind {
    HasMany,
    HasOne,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnDelete {
    Restrict,
    Cascade,
    Nullify,
}

impl OnDelete {
    pub(crate) fn variant(self) -> &'static str {
        match self {
            OnDelete::Restrict => "Restrict",
            OnDelete::Cascade => "Cascade",
            OnDelete::Nullify => "Nullify",
        }
    }
}

pub(crate) struct Field<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) ty: &'a syn::Type,
    pub(crate) primary_key: Option<proc_macro2::Span>,
    pub(crate) auto: Option<proc_macro2::Span>,
    pub(crate) column: Option<syn::LitStr>,
    pub(crate) skip: Option<proc_macro2::Span>,
    pub(crate) json: Option<proc_macro2::Span>,
    /// `version`: the optimistic-locking counter.
    pub(crate) version: Option<proc_macro2::Span>,
    /// `belongs_to = Parent`: the field holds a key of `Parent`.
    pub(crate) belongs_to: Option<syn::Path>,
    /// `created_at`: set when the row is inserted.
    pub(crate) created_at: Option<proc_macro2::Span>,
    /// `updated_at`: set by every write that changes the row.
    pub(crate) updated_at: Option<proc_macro2::Span>,
    /// `soft_delete`: `delete` sets it instead of removing the row.
    pub(crate) soft_delete: Option<proc_macro2::Span>,
    /// `unique`: a UNIQUE constraint in the DDL.
    pub(crate) unique: Option<proc_macro2::Span>,
    /// `index`: an index in the DDL.
    pub(crate) index: Option<proc_macro2::Span>,
    /// `default = literal`: the column's DEFAULT in the DDL, as SQL.
    pub(crate) default: Option<String>,
}

impl Field<'_> {
    /// The column name: `column = "…"` or the field name.
    pub(crate) fn column_name(&self) -> String {
        match &self.column {
            Some(column) => column.value(),
            None => self.ident.to_string().trim_start_matches("r#").to_owned(),
        }
    }

    pub(crate) fn is_key(&self) -> bool {
        self.primary_key.is_some()
    }
}

const CONTAINER_OPTIONS: &str = "`table = \"…\"`, `events = \"…\"`, `crate = \"…\"`, \
     `has_many(Child, …)`, `has_one(Child, …)`, `behaviours(Behaviour, …)`";
const FIELD_OPTIONS: &str = "`primary_key`, `auto`, `column = \"…\"`, `skip`, `json`, `version`, \
     `belongs_to = Parent`, `created_at`, `updated_at`, `soft_delete`, `unique`, `index`, \
     `default = …`";
const FIELD_ONLY: [&str; 13] = [
    "unique",
    "index",
    "default",
    "primary_key",
    "auto",
    "column",
    "skip",
    "json",
    "version",
    "belongs_to",
    "created_at",
    "updated_at",
    "soft_delete",
];
const CONTAINER_ONLY: [&str; 6] = [
    "table",
    "events",
    "crate",
    "has_many",
    "has_one",
    "behaviours",
];
const RELATION_OPTIONS: &str = "`foreign_key = \"field\"`, `name = \"method\"`, \
     `on_delete = \"restrict\" | \"cascade\" | \"nullify\"`";

impl<'a> Container<'a> {
    pub(crate) fn parse(cx: &mut Ctxt, input: &'a syn::DeriveInput) -> Option<Self> {
        let mut options = ContainerOptions {
            table: Opt::none("table"),
            events: Opt::none("events"),
            krate: Opt::none("crate"),
            relations: Vec::new(),
            behaviours: Vec::new(),
        };
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("model")) {
            let parsed = attr.parse_nested_meta(|meta| {
                let result = options.parse(cx, &meta);
                attr::recover(cx, &meta, result)
            });
            if let Err(error) = parsed {
                cx.push(error);
            }
        }

        if !input.generics.params.is_empty() {
            cx.error(
                &input.generics,
                "a Model cannot be generic: its table, columns and hooks are fixed at compile time; \
                 remove the type parameters and declare one model per concrete type",
            );
        }
        let fields = match &input.data {
            syn::Data::Struct(syn::DataStruct {
                fields: syn::Fields::Named(named),
                ..
            }) => &named.named,
            syn::Data::Struct(syn::DataStruct { fields, .. }) => {
                let at = match fields {
                    syn::Fields::Unnamed(unnamed) => unnamed.to_token_stream(),
                    _ => input.ident.to_token_stream(),
                };
                cx.error(
                    at,
                    format!(
                        "derive(Model) needs named fields, one per column: \
                         `struct {} {{ #[model(primary_key)] id: i64, … }}`",
                        input.ident
                    ),
                );
                return None;
            }
            syn::Data::Enum(e) => {
                cx.error(
                    e.enum_token,
                    "derive(Model) needs a struct with named fields, not an enum; \
                     to store an enum in a column, derive `earn::Field` for it and make it \
                     a field of a model",
                );
                return None;
            }
            syn::Data::Union(u) => {
                cx.error(
                    u.union_token,
                    "derive(Model) needs a struct with named fields, not a union",
                );
                return None;
            }
        };
        let fields = fields.iter().filter_map(|f| Field::parse(cx, f)).collect();
        Some(Container {
            ident: &input.ident,
            vis: &input.vis,
            relations: options.relations,
            behaviours: options.behaviours,
            table: options.table.take(),
            events: options.events.take(),
            krate: options.krate.take(),
            fields,
        })
    }
}

/// The options of `#[model(…)]` on the struct.
struct ContainerOptions {
    table: Opt<syn::LitStr>,
    events: Opt<syn::LitStr>,
    krate: Opt<syn::Path>,
    relations: Vec<Relation>,
    behaviours: Vec<syn::Path>,
}

impl ContainerOptions {
    fn parse(&mut self, cx: &mut Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let path = &meta.path;
        if path.is_ident("table") {
            self.table
                .set(cx, path, attr::string(meta, "table = \"users\"")?);
        } else if path.is_ident("events") {
            let value = attr::string(meta, "events = \"user\"")?;
            if let Err(message) = crate::handler::check_name(&value.value()) {
                return Err(syn::Error::new(value.span(), message));
            }
            self.events.set(cx, path, value);
        } else if path.is_ident("crate") {
            let value = attr::string(meta, "crate = \"earn\"")?;
            self.krate.set(cx, path, value.parse::<syn::Path>()?);
        } else if path.is_ident("has_many") || path.is_ident("has_one") {
            let kind = if path.is_ident("has_many") {
                RelationKind::HasMany
            } else {
                RelationKind::HasOne
            };
            self.relations.push(Relation::parse(cx, meta, kind)?);
        } else if path.is_ident("behaviours") || path.is_ident("behaviors") {
            let usage = "behaviours(Audited, TenantScoped)";
            if !meta.input.peek(syn::token::Paren) {
                return Err(meta.error(format!(
                    "expected the behaviour traits in parentheses: `{usage}`"
                )));
            }
            meta.parse_nested_meta(|behaviour| {
                if !behaviour.input.is_empty() && !behaviour.input.peek(syn::Token![,]) {
                    return Err(behaviour.error(format!(
                        "expected the path of a `#[behaviour]` trait: `{usage}`"
                    )));
                }
                let name = behaviour
                    .path
                    .to_token_stream()
                    .to_string()
                    .replace(' ', "");
                if self
                    .behaviours
                    .iter()
                    .any(|seen| seen.to_token_stream().to_string().replace(' ', "") == name)
                {
                    return Err(syn::Error::new_spanned(
                        &behaviour.path,
                        format!("`{name}` is listed twice: a behaviour applies once"),
                    ));
                }
                self.behaviours.push(behaviour.path.clone());
                Ok(())
            })?;
        } else if FIELD_ONLY.iter().any(|name| path.is_ident(name)) {
            return Err(meta.error(format!(
                "`{}` is a field option: move it to the `#[model(…)]` of a field",
                path.to_token_stream(),
            )));
        } else {
            return Err(attr::unknown(meta, "model", CONTAINER_OPTIONS));
        }
        Ok(())
    }
}

/// The options of `#[model(…)]` on a field.
struct FieldOptions {
    unique: Opt<()>,
    index: Opt<()>,
    default: Opt<String>,
    belongs_to: Opt<syn::Path>,
    created_at: Opt<()>,
    updated_at: Opt<()>,
    soft_delete: Opt<()>,
    primary_key: Opt<()>,
    auto: Opt<()>,
    column: Opt<syn::LitStr>,
    skip: Opt<()>,
    json: Opt<()>,
    version: Opt<()>,
}

impl FieldOptions {
    fn parse(&mut self, cx: &mut Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let path = &meta.path;
        if path.is_ident("primary_key") {
            self.primary_key.set(cx, path, ());
        } else if path.is_ident("auto") {
            self.auto.set(cx, path, ());
        } else if path.is_ident("skip") {
            self.skip.set(cx, path, ());
        } else if path.is_ident("json") {
            self.json.set(cx, path, ());
        } else if path.is_ident("version") {
            self.version.set(cx, path, ());
        } else if path.is_ident("unique") {
            self.unique.set(cx, path, ());
        } else if path.is_ident("index") {
            self.index.set(cx, path, ());
        } else if path.is_ident("default") {
            let usage = "default = 0, default = \"pending\", default = true";
            if !meta.input.peek(syn::Token![=]) {
                return Err(meta.error(format!("expected a literal: `{usage}`")));
            }
            let sql = match meta.value()?.parse::<syn::Expr>()? {
                syn::Expr::Lit(syn::ExprLit { lit, .. }) => default_sql(&lit),
                syn::Expr::Unary(syn::ExprUnary {
                    op: syn::UnOp::Neg(_),
                    expr,
                    ..
                }) => match *expr {
                    syn::Expr::Lit(syn::ExprLit { lit, .. }) => {
                        default_sql(&lit).map(|v| format!("-{v}"))
                    }
                    other => Err(syn::Error::new_spanned(
                        other,
                        format!("expected a literal: `{usage}`"),
                    )),
                },
                other => Err(syn::Error::new_spanned(
                    other,
                    format!("expected a literal: `{usage}`"),
                )),
            }?;
            self.default.set(cx, path, sql);
        } else if path.is_ident("created_at") {
            self.created_at.set(cx, path, ());
        } else if path.is_ident("updated_at") {
            self.updated_at.set(cx, path, ());
        } else if path.is_ident("soft_delete") {
            self.soft_delete.set(cx, path, ());
        } else if path.is_ident("belongs_to") {
            if !meta.input.peek(syn::Token![=]) {
                return Err(meta.error("expected the parent model: `belongs_to = Order`"));
            }
            let parent: syn::Path = meta.value()?.parse().map_err(|error| {
                syn::Error::new(
                    error.span(),
                    "expected the parent model's type: `belongs_to = Order`",
                )
            })?;
            self.belongs_to.set(cx, path, parent);
        } else if path.is_ident("column") {
            let name = attr::string(meta, "column = \"name\"")?;
            if name.value().is_empty() {
                return Err(syn::Error::new(
                    name.span(),
                    "a column name cannot be empty: write `column = \"name\"`, \
                     or remove `column` to use the field name",
                ));
            }
            self.column.set(cx, path, name);
        } else if CONTAINER_ONLY.iter().any(|name| path.is_ident(name)) {
            return Err(meta.error(format!(
                "`{}` is a struct option: move it to the `#[model(…)]` above the struct",
                path.to_token_stream(),
            )));
        } else {
            return Err(attr::unknown(meta, "field", FIELD_OPTIONS));
        }
        Ok(())
    }
}

impl<'a> Field<'a> {
    fn parse(cx: &mut Ctxt, field: &'a syn::Field) -> Option<Self> {
        let mut options = FieldOptions {
            unique: Opt::none("unique"),
            index: Opt::none("index"),
            default: Opt::none("default"),
            belongs_to: Opt::none("belongs_to"),
            created_at: Opt::none("created_at"),
            updated_at: Opt::none("updated_at"),
            soft_delete: Opt::none("soft_delete"),
            primary_key: Opt::none("primary_key"),
            auto: Opt::none("auto"),
            column: Opt::none("column"),
            skip: Opt::none("skip"),
            json: Opt::none("json"),
            version: Opt::none("version"),
        };
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("model")) {
            let parsed = attr.parse_nested_meta(|meta| {
                let result = options.parse(cx, &meta);
                attr::recover(cx, &meta, result)
            });
            if let Err(error) = parsed {
                cx.push(error);
            }
        }
        Some(Field {
            ident: field.ident.as_ref()?,
            ty: &field.ty,
            primary_key: options.primary_key.span(),
            auto: options.auto.span(),
            column: options.column.take(),
            skip: options.skip.span(),
            json: options.json.span(),
            version: options.version.span(),
            belongs_to: options.belongs_to.take(),
            created_at: options.created_at.span(),
            updated_at: options.updated_at.span(),
            soft_delete: options.soft_delete.span(),
            unique: options.unique.span(),
            index: options.index.span(),
            default: options.default.take(),
        })
    }
}

/// A literal as SQL: numbers as written, strings quoted, booleans as
/// `TRUE` / `FALSE`.
fn default_sql(lit: &syn::Lit) -> syn::Result<String> {
    match lit {
        syn::Lit::Int(int) => Ok(int.base10_digits().to_owned()),
        syn::Lit::Float(float) => Ok(float.base10_digits().to_owned()),
        syn::Lit::Bool(b) => Ok(if b.value { "TRUE" } else { "FALSE" }.to_owned()),
        syn::Lit::Str(text) => Ok(format!("'{}'", text.value().replace('\'', "''"))),
        other => Err(syn::Error::new_spanned(
            other,
            "`default` takes an integer, float, bool or string literal",
        )),
    }
}

impl Relation {
    /// `has_many(Child, foreign_key = "…", name = "…", on_delete = "…")`.
    fn parse(
        cx: &mut Ctxt,
        meta: &ParseNestedMeta<'_>,
        kind: RelationKind,
    ) -> syn::Result<Relation> {
        let usage = match kind {
            RelationKind::HasMany => "has_many(OrderLine, on_delete = \"cascade\")",
            RelationKind::HasOne => "has_one(Invoice, on_delete = \"cascade\")",
        };
        if !meta.input.peek(syn::token::Paren) {
            return Err(meta.error(format!(
                "expected the child model in parentheses: `{usage}`"
            )));
        }
        let mut child = None;
        let mut foreign_key = Opt::none("foreign_key");
        let mut name = Opt::none("name");
        let mut on_delete = Opt::none("on_delete");
        meta.parse_nested_meta(|inner| {
            let path = &inner.path;
            let has_value = inner.input.peek(syn::Token![=]);
            let result = if child.is_none() && !has_value {
                child = Some(path.clone());
                Ok(())
            } else if path.is_ident("foreign_key") {
                attr::string(&inner, "foreign_key = \"order_id\"")
                    .map(|value| foreign_key.set(cx, path, value))
            } else if path.is_ident("name") {
                attr::string(&inner, "name = \"lines\"").and_then(|value| {
                    syn::parse_str::<syn::Ident>(&value.value()).map_err(|_| {
                        syn::Error::new(
                            value.span(),
                            "`name` must be a method name: `name = \"lines\"`",
                        )
                    })?;
                    name.set(cx, path, value);
                    Ok(())
                })
            } else if path.is_ident("on_delete") {
                attr::string(&inner, "on_delete = \"cascade\"").and_then(|value| {
                    let action = match value.value().as_str() {
                        "restrict" => OnDelete::Restrict,
                        "cascade" => OnDelete::Cascade,
                        "nullify" => OnDelete::Nullify,
                        other => {
                            let hint = attr::closest(other, ["restrict", "cascade", "nullify"])
                                .map(|c| format!(" (did you mean `\"{c}\"`?)"))
                                .unwrap_or_default();
                            return Err(syn::Error::new(
                                value.span(),
                                format!(
                                    "unknown `on_delete` value `\"{other}\"`{hint}; expected \
                                     `\"restrict\"` (refuse while children exist, the default), \
                                     `\"cascade\"` (delete them through their hooks) or \
                                     `\"nullify\"` (set their key to NULL)"
                                ),
                            ));
                        }
                    };
                    on_delete.set(cx, path, (value, action));
                    Ok(())
                })
            } else {
                Err(attr::unknown(&inner, "relation", RELATION_OPTIONS))
            };
            attr::recover(cx, &inner, result)
        })?;
        let Some(child) = child else {
            return Err(meta.error(format!("name the child model first: `{usage}`")));
        };
        Ok(Relation {
            kind,
            at: meta.path.clone(),
            child,
            foreign_key: foreign_key.take(),
            name: name.take(),
            on_delete: on_delete.take(),
        })
    }
}

/// The Rust types a column can have without `json`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Integer,
    Float,
    Bool,
    Text,
    Bytes,
    Other,
}

/// Classifies a field type, looking through one `Option`.
pub(crate) fn classify(ty: &syn::Type) -> Option<(Scalar, bool)> {
    if let Some(inner) = option_inner(ty) {
        return classify_plain(inner).map(|s| (s, true));
    }
    classify_plain(ty).map(|s| (s, false))
}

fn classify_plain(ty: &syn::Type) -> Option<Scalar> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    let name = last.ident.to_string();
    let scalar = match name.as_str() {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" => Scalar::Integer,
        "f32" | "f64" => Scalar::Float,
        "bool" => Scalar::Bool,
        "String" => Scalar::Text,
        "Uuid" | "NaiveDateTime" | "NaiveDate" => Scalar::Other,
        "DateTime" => Scalar::Other,
        "Vec" => {
            let inner = single_generic(last)?;
            match classify_plain(inner)? {
                Scalar::Integer if matches!(inner, syn::Type::Path(p) if p.path.is_ident("u8")) => {
                    Scalar::Bytes
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(scalar)
}

/// `T` of `Option<T>`.
pub(crate) fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    single_generic(last)
}

fn single_generic(segment: &syn::PathSegment) -> Option<&syn::Type> {
    let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(ty) if args.args.len() == 1 => Some(ty),
        _ => None,
    }
}
