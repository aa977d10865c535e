//! Filters of typed queries: comparisons of a column with bound values,
//! combined with and / or / not.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::model::Entity;
use crate::sql::SqlBuilder;
use crate::value::SqlValue;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compare {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Compare {
    fn sql(self) -> &'static str {
        match self {
            Compare::Eq => " = ",
            Compare::Ne => " <> ",
            Compare::Lt => " < ",
            Compare::Le => " <= ",
            Compare::Gt => " > ",
            Compare::Ge => " >= ",
        }
    }
}

/// A condition on the columns of one table, by column index.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Compare {
        column: usize,
        op: Compare,
        value: Arc<dyn SqlValue>,
    },
    Between {
        column: usize,
        low: Arc<dyn SqlValue>,
        high: Arc<dyn SqlValue>,
    },
    In {
        column: usize,
        values: Vec<Arc<dyn SqlValue>>,
    },
    Null {
        column: usize,
        negated: bool,
    },
    Like {
        column: usize,
        pattern: Arc<dyn SqlValue>,
    },
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    /// Writes the condition, its values as bound parameters.
    pub(crate) fn render(&self, sql: &mut SqlBuilder) {
        match self {
            Expr::Compare { column, op, value } => {
                sql.column(*column);
                sql.push(op.sql());
                sql.param(value.clone());
            }
            Expr::Between { column, low, high } => {
                sql.column(*column);
                sql.push(" BETWEEN ");
                sql.param(low.clone());
                sql.push(" AND ");
                sql.param(high.clone());
            }
            // `IN ()` is a syntax error: an empty list matches nothing.
            Expr::In { values, .. } if values.is_empty() => sql.push("1 = 0"),
            Expr::In { column, values } => {
                sql.column(*column);
                sql.push(" IN (");
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.param(value.clone());
                }
                sql.push(")");
            }
            Expr::Null { column, negated } => {
                sql.column(*column);
                sql.push(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            Expr::Like { column, pattern } => {
                sql.column(*column);
                sql.push(" LIKE ");
                sql.param(pattern.clone());
            }
            Expr::All(parts) | Expr::Any(parts) if parts.is_empty() => {
                sql.push(if matches!(self, Expr::All(_)) {
                    "1 = 1"
                } else {
                    "1 = 0"
                });
            }
            Expr::All(parts) | Expr::Any(parts) => {
                let joint = if matches!(self, Expr::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                sql.push("(");
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        sql.push(joint);
                    }
                    part.render(sql);
                }
                sql.push(")");
            }
            Expr::Not(inner) => {
                sql.push("NOT (");
                inner.render(sql);
                sql.push(")");
            }
        }
    }

    fn join(self, other: Expr, all: bool) -> Expr {
        match (self, all) {
            (Expr::All(mut parts), true) => {
                parts.push(other);
                Expr::All(parts)
            }
            (Expr::Any(mut parts), false) => {
                parts.push(other);
                Expr::Any(parts)
            }
            (first, true) => Expr::All(vec![first, other]),
            (first, false) => Expr::Any(vec![first, other]),
        }
    }
}

/// A condition on rows of model `M`, built from its columns
/// ([`Col::eq`](crate::Col::eq), …) and combined with [`and`](Filter::and),
/// [`or`](Filter::or) and [`not`](Filter::not) (or `&`, `|` and `!`).
///
/// A filter of one model cannot be used in a query of another: it is typed
/// by its model.
///
/// ```
/// # use earn::prelude::*;
/// # #[derive(Debug, Clone, Model)] #[model(table = "users")]
/// # struct User { #[model(primary_key, auto)] id: Option<i64>, name: String, age: i64 }
/// let teens = User::AGE.between(13, 19);
/// let named = User::NAME.like("A%").or(User::NAME.eq("Bob"));
/// let query = User::query().filter(teens & !named);
/// ```
pub struct Filter<M> {
    pub(crate) expr: Expr,
    model: PhantomData<fn() -> M>,
}

impl<M> Filter<M> {
    pub(crate) fn new(expr: Expr) -> Self {
        Filter {
            expr,
            model: PhantomData,
        }
    }

    /// Both conditions hold.
    #[must_use]
    pub fn and(self, other: Filter<M>) -> Filter<M> {
        Filter::new(self.expr.join(other.expr, true))
    }

    /// Either condition holds.
    #[must_use]
    pub fn or(self, other: Filter<M>) -> Filter<M> {
        Filter::new(self.expr.join(other.expr, false))
    }

    /// The condition does not hold (SQL `NOT`: a comparison with a `NULL`
    /// column is neither true nor false, so neither it nor its negation
    /// matches).
    #[must_use]
    #[allow(clippy::should_implement_trait)] // `!filter` works too
    pub fn not(self) -> Filter<M> {
        Filter::new(Expr::Not(Box::new(self.expr)))
    }

    /// Every filter holds (an empty list matches every row).
    pub fn all(filters: impl IntoIterator<Item = Filter<M>>) -> Filter<M> {
        Filter::new(Expr::All(filters.into_iter().map(|f| f.expr).collect()))
    }

    /// At least one filter holds (an empty list matches no row).
    pub fn any(filters: impl IntoIterator<Item = Filter<M>>) -> Filter<M> {
        Filter::new(Expr::Any(filters.into_iter().map(|f| f.expr).collect()))
    }
}

impl<M> Clone for Filter<M> {
    fn clone(&self) -> Self {
        Filter::new(self.expr.clone())
    }
}

impl<M: Entity> fmt::Debug for Filter<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&self.expr).finish()
    }
}

impl<M> std::ops::BitAnd for Filter<M> {
    type Output = Filter<M>;
    fn bitand(self, other: Filter<M>) -> Filter<M> {
        self.and(other)
    }
}

impl<M> std::ops::BitOr for Filter<M> {
    type Output = Filter<M>;
    fn bitor(self, other: Filter<M>) -> Filter<M> {
        self.or(other)
    }
}

impl<M> std::ops::Not for Filter<M> {
    type Output = Filter<M>;
    fn not(self) -> Filter<M> {
        Filter::not(self)
    }
}
