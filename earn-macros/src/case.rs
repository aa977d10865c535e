//! Case conversions of names: a model's default table name and the
//! `rename_all` rules of `#[derive(Field)]`, named and applied as serde's.

/// A `rename_all = "…"` rule.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenameRule {
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

/// serde's spellings, in serde's order.
pub(crate) const RULES: [(&str, RenameRule); 8] = [
    ("lowercase", RenameRule::Lower),
    ("UPPERCASE", RenameRule::Upper),
    ("PascalCase", RenameRule::Pascal),
    ("camelCase", RenameRule::Camel),
    ("snake_case", RenameRule::Snake),
    ("SCREAMING_SNAKE_CASE", RenameRule::ScreamingSnake),
    ("kebab-case", RenameRule::Kebab),
    ("SCREAMING-KEBAB-CASE", RenameRule::ScreamingKebab),
];

impl RenameRule {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        RULES
            .iter()
            .find(|(spelling, _)| *spelling == name)
            .map(|(_, rule)| *rule)
    }

    /// A variant name (`PascalCase` in Rust) under this rule.
    pub(crate) fn apply(self, variant: &str) -> String {
        match self {
            RenameRule::Pascal => variant.to_owned(),
            RenameRule::Lower => variant.to_lowercase(),
            RenameRule::Upper => variant.to_uppercase(),
            RenameRule::Camel => {
                let mut chars = variant.chars();
                match chars.next() {
                    Some(first) => first.to_lowercase().chain(chars).collect(),
                    None => String::new(),
                }
            }
            RenameRule::Snake => snake_case(variant),
            RenameRule::ScreamingSnake => snake_case(variant).to_uppercase(),
            RenameRule::Kebab => snake_case(variant).replace('_', "-"),
            RenameRule::ScreamingKebab => snake_case(variant).to_uppercase().replace('_', "-"),
        }
    }
}

/// `OrderLine` → `order_line`: an underscore before each upper-case
/// letter but the first.
pub(crate) fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_rename_as_serde_does() {
        let cases = [
            ("lowercase", "outfordelivery"),
            ("UPPERCASE", "OUTFORDELIVERY"),
            ("PascalCase", "OutForDelivery"),
            ("camelCase", "outForDelivery"),
            ("snake_case", "out_for_delivery"),
            ("SCREAMING_SNAKE_CASE", "OUT_FOR_DELIVERY"),
            ("kebab-case", "out-for-delivery"),
            ("SCREAMING-KEBAB-CASE", "OUT-FOR-DELIVERY"),
        ];
        for (name, expected) in cases {
            let rule = RenameRule::from_name(name).unwrap();
            assert_eq!(rule.apply("OutForDelivery"), expected, "{name}");
        }
    }
}
