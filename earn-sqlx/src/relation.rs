//! Relations between models: `belongs_to` on a foreign-key field,
//! `has_many` / `has_one` on the parent, loaded without N+1 queries, and
//! what deleting a parent does to its children.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use earn_core::Error;

use crate::bulk::{self, Bulk, keys_per_statement};
use crate::column::{Col, Set};
use crate::db::Db;
use crate::filter::{Expr, Filter};
use crate::hook::Hooks;
use crate::model::{Entity, Model};
use crate::query::Query;
use crate::tx::Tx;
use crate::value::SqlValue;
use crate::write::Removal;

/// The type of a `belongs_to` field holding the key `K` of another model:
/// `K` itself, or `Option<K>` for a relation that may be absent.
#[diagnostic::on_unimplemented(
    message = "a foreign key to a model whose key is `{K}` must have type `{K}` or `Option<{K}>`, not `{Self}`",
    label = "this field refers to a key of type `{K}`",
    note = "change the field's type to `{K}`, or `Option<{K}>` if the relation is optional"
)]
pub trait ForeignKey<K> {
    /// The key referred to, or `None`.
    fn key_of(&self) -> Option<K>;
}

impl<K: Clone> ForeignKey<K> for K {
    fn key_of(&self) -> Option<K> {
        Some(self.clone())
    }
}

impl<K: Clone> ForeignKey<K> for Option<K> {
    fn key_of(&self) -> Option<K> {
        self.clone()
    }
}

/// The key a foreign-key field refers to. Called by `#[derive(Model)]`.
#[doc(hidden)]
pub fn foreign_key<K, F: ForeignKey<K>>(value: &F) -> Option<K> {
    value.key_of()
}

/// A field type that can be `NULL`: what `on_delete = "nullify"` needs.
#[diagnostic::on_unimplemented(
    message = "`on_delete = \"nullify\"` sets the foreign key to NULL, but its type `{Self}` cannot be NULL",
    label = "the child's foreign key is not an `Option`",
    note = "make the child's foreign-key field an `Option<…>`, or use `on_delete = \"cascade\"` or `\"restrict\"`"
)]
pub trait Nullable {
    /// `NULL`.
    fn null() -> Self;
}

impl<T> Nullable for Option<T> {
    fn null() -> Self {
        None
    }
}

/// `column = NULL`, the change of `on_delete = "nullify"`. Called by
/// `#[derive(Model)]`.
#[doc(hidden)]
pub fn set_null<C: Entity, V, F: Nullable + SqlValue + Clone>(column: Col<C, V, F>) -> Set<C> {
    column.set(F::null())
}

/// What deleting a parent does to the rows of a `has_many` / `has_one`
/// relation: `on_delete = "restrict" | "cascade" | "nullify"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// Refuse the delete with [`Error::Restricted`] while children exist
    /// (the default).
    Restrict,
    /// Delete the children first, through their own hooks and events, in
    /// the parent's transaction (Rails' `dependent: :destroy`).
    Cascade,
    /// Set the children's foreign key to `NULL` through their update hooks
    /// and events (the field must be an `Option`).
    Nullify,
}

/// The child side of a relation: the foreign-key column of `C` holding
/// keys of `P`.
struct Link<P: Entity, C> {
    column: usize,
    key_of: fn(&C) -> Option<P::Key>,
}

impl<P: Entity, C> Clone for Link<P, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Entity, C> Copy for Link<P, C> {}

impl<P: Model, C: Model> Link<P, C>
where
    P::Key: SqlValue,
{
    /// The children of the parents with `keys`.
    fn children(self, keys: &[P::Key]) -> Query<C> {
        Query::new().filter(Filter::new(Expr::In {
            column: self.column,
            values: keys
                .iter()
                .map(|key| Arc::new(key.clone()) as Arc<dyn SqlValue>)
                .collect(),
        }))
    }

    /// The children of `parents`, grouped by parent, in one query per ten
    /// thousand parents.
    async fn load(self, parents: &[P], mut conn: Source<'_>) -> Result<Vec<Vec<C>>, Error> {
        let keys = distinct(parents.iter().filter_map(Entity::key));
        let mut by_parent: HashMap<P::Key, Vec<C>> = HashMap::new();
        for chunk in keys.chunks(keys_per_statement(0)) {
            let query = self.children(chunk).order_by(crate::column::Order::new(
                C::INFO.key_index,
                crate::column::Direction::Asc,
            ));
            for child in conn.all(&query).await? {
                if let Some(key) = (self.key_of)(&child) {
                    by_parent.entry(key).or_default().push(child);
                }
            }
        }
        Ok(parents
            .iter()
            .map(|parent| {
                parent
                    .key()
                    .and_then(|key| by_parent.get(&key).cloned())
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn on_delete(
        self,
        tx: &mut Tx,
        keys: &[P::Key],
        action: OnDelete,
        nullify: Option<fn() -> Set<C>>,
        hooks: Hooks,
    ) -> Result<(), Error> {
        for chunk in keys.chunks(keys_per_statement(1)) {
            // Soft-deleted children still refer to the row: they count,
            // and go or are unlinked with the rest.
            let children = self.children(chunk).including_deleted();
            match (action, hooks) {
                (OnDelete::Restrict, _) => {
                    let count = children.count_in(tx).await?;
                    if count > 0 {
                        return Err(Error::Restricted {
                            model: P::INFO.name,
                            key: match chunk {
                                [key] => format!("{key:?}"),
                                keys => format!("{keys:?}"),
                            },
                            dependent: C::INFO.name,
                            count,
                        });
                    }
                }
                (OnDelete::Cascade, Hooks::Run) => {
                    bulk::write(tx, Bulk::Delete(&children, Removal::Force)).await?;
                }
                (OnDelete::Cascade, Hooks::Skip) => {
                    bulk::write(tx, Bulk::DeleteQuietly(&children, Removal::Force)).await?;
                }
                (OnDelete::Nullify, hooks) => {
                    let Some(null) = nullify else { continue };
                    let changes = [null()];
                    let bulk = match hooks {
                        Hooks::Run => Bulk::Update(&children, &changes),
                        Hooks::Skip => Bulk::UpdateQuietly(&children, &changes),
                    };
                    bulk::write(tx, bulk).await?;
                }
            }
        }
        Ok(())
    }
}

fn distinct<K: Eq + std::hash::Hash + Clone>(keys: impl Iterator<Item = K>) -> Vec<K> {
    let mut seen = std::collections::HashSet::new();
    keys.filter(|key| seen.insert(key.clone())).collect()
}

/// Where a relation reads: a pool or a transaction.
enum Source<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl Source<'_> {
    async fn all<M: Model>(&mut self, query: &Query<M>) -> Result<Vec<M>, Error> {
        match self {
            Source::Db(db) => query.all(db).await,
            Source::Tx(tx) => query.all_in(tx).await,
        }
    }
}

/// A `belongs_to` relation of child `C` to parent `P`, generated for a field
/// marked `#[model(belongs_to = P)]`: `OrderLine::ORDER` for `order_id`,
/// with the method `line.order(&db)`.
pub struct BelongsTo<C, P: Entity> {
    link: Link<P, C>,
}

/// A `has_many` relation of parent `P` to children `C`, generated for
/// `#[model(has_many(C, …))]`: `Order::LINES` with the method
/// `order.lines(&db)`.
pub struct HasMany<P: Entity, C> {
    link: Link<P, C>,
    on_delete: OnDelete,
    nullify: Option<fn() -> Set<C>>,
}

/// A `has_one` relation of parent `P` to child `C`, generated for
/// `#[model(has_one(C, …))]`.
pub struct HasOne<P: Entity, C> {
    link: Link<P, C>,
    on_delete: OnDelete,
    nullify: Option<fn() -> Set<C>>,
}

impl<C, P: Entity> Clone for BelongsTo<C, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, P: Entity> Copy for BelongsTo<C, P> {}

impl<C: Entity, P: Entity> fmt::Debug for BelongsTo<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let column = C::INFO.columns[self.link.column].field;
        write!(
            f,
            "BelongsTo({} -> {} by {column})",
            C::INFO.name,
            P::INFO.name
        )
    }
}

impl<C, P: Entity> BelongsTo<C, P> {
    /// The relation through the foreign-key column `column`. Called by
    /// `#[derive(Model)]`.
    #[doc(hidden)]
    pub const fn new<V, F>(column: Col<C, V, F>, key_of: fn(&C) -> Option<P::Key>) -> Self {
        BelongsTo {
            link: Link {
                column: column.index(),
                key_of,
            },
        }
    }
}

impl<C: Model, P: Model> BelongsTo<C, P>
where
    P::Key: SqlValue,
{
    /// The parent of `child`, or `None` if its key is `NULL` or refers to
    /// no row.
    pub async fn of(self, child: &C, db: &Db) -> Result<Option<P>, Error> {
        match (self.link.key_of)(child) {
            Some(key) => P::find(db, key).await,
            None => Ok(None),
        }
    }

    /// [`of`](BelongsTo::of) in a transaction.
    pub async fn of_in(self, child: &C, tx: &mut Tx) -> Result<Option<P>, Error> {
        match (self.link.key_of)(child) {
            Some(key) => P::find_in(tx, key).await,
            None => Ok(None),
        }
    }

    /// The parents of `children`, in their order, with one query per ten
    /// thousand distinct parents (no N+1).
    pub async fn load(self, db: &Db, children: &[C]) -> Result<Vec<Option<P>>, Error> {
        self.load_from(children, Source::Db(db)).await
    }

    /// [`load`](BelongsTo::load) in a transaction.
    pub async fn load_in(self, tx: &mut Tx, children: &[C]) -> Result<Vec<Option<P>>, Error> {
        self.load_from(children, Source::Tx(tx)).await
    }

    async fn load_from(
        self,
        children: &[C],
        mut source: Source<'_>,
    ) -> Result<Vec<Option<P>>, Error> {
        let keys = distinct(children.iter().filter_map(self.link.key_of));
        let mut parents: HashMap<P::Key, P> = HashMap::new();
        for chunk in keys.chunks(keys_per_statement(0)) {
            let query = Query::<P>::new().filter(Filter::new(Expr::In {
                column: P::INFO.key_index,
                values: chunk
                    .iter()
                    .map(|key| Arc::new(key.clone()) as Arc<dyn SqlValue>)
                    .collect(),
            }));
            for parent in source.all(&query).await? {
                if let Some(key) = parent.key() {
                    parents.insert(key, parent);
                }
            }
        }
        Ok(children
            .iter()
            .map(|child| (self.link.key_of)(child).and_then(|key| parents.get(&key).cloned()))
            .collect())
    }
}

macro_rules! parent_side {
    ($ty:ident) => {
        impl<P: Entity, C> Clone for $ty<P, C> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<P: Entity, C> Copy for $ty<P, C> {}

        impl<P: Entity, C: Entity> fmt::Debug for $ty<P, C> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let column = C::INFO.columns[self.link.column].field;
                write!(
                    f,
                    "{}({} -> {} by {column}, on_delete: {:?})",
                    stringify!($ty),
                    P::INFO.name,
                    C::INFO.name,
                    self.on_delete
                )
            }
        }

        impl<P: Entity, C> $ty<P, C> {
            /// The relation through the children's foreign-key column
            /// `column`. Called by `#[derive(Model)]`.
            #[doc(hidden)]
            pub const fn new<V, F>(
                column: Col<C, V, F>,
                key_of: fn(&C) -> Option<P::Key>,
                on_delete: OnDelete,
                nullify: Option<fn() -> Set<C>>,
            ) -> Self {
                $ty {
                    link: Link {
                        column: column.index(),
                        key_of,
                    },
                    on_delete,
                    nullify,
                }
            }

            /// What deleting a parent does to its children.
            pub fn on_delete_action(self) -> OnDelete {
                self.on_delete
            }
        }

        impl<P: Model, C: Model> $ty<P, C>
        where
            P::Key: SqlValue,
        {
            /// A query of the children of `parent`, to filter, order or
            /// page further (no rows for a parent not yet saved).
            pub fn query(self, parent: &P) -> Query<C> {
                let keys: Vec<P::Key> = parent.key().into_iter().collect();
                self.link.children(&keys)
            }

            /// Runs the relation's `on_delete` for the parents with `keys`.
            /// Called by the delete of a parent.
            #[doc(hidden)]
            pub async fn delete_dependents(
                self,
                tx: &mut Tx,
                keys: &[P::Key],
                hooks: Hooks,
            ) -> Result<(), Error> {
                self.link
                    .on_delete(tx, keys, self.on_delete, self.nullify, hooks)
                    .await
            }
        }
    };
}

parent_side!(HasMany);
parent_side!(HasOne);

impl<P: Model, C: Model> HasMany<P, C>
where
    P::Key: SqlValue,
{
    /// The children of `parent`, ordered by key.
    pub async fn of(self, parent: &P, db: &Db) -> Result<Vec<C>, Error> {
        Ok(self
            .link
            .load(std::slice::from_ref(parent), Source::Db(db))
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// [`of`](HasMany::of) in a transaction.
    pub async fn of_in(self, parent: &P, tx: &mut Tx) -> Result<Vec<C>, Error> {
        Ok(self
            .link
            .load(std::slice::from_ref(parent), Source::Tx(tx))
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// The children of every parent, in the parents' order, with one query
    /// per ten thousand parents (no N+1).
    pub async fn load(self, db: &Db, parents: &[P]) -> Result<Vec<Vec<C>>, Error> {
        self.link.load(parents, Source::Db(db)).await
    }

    /// [`load`](HasMany::load) in a transaction.
    pub async fn load_in(self, tx: &mut Tx, parents: &[P]) -> Result<Vec<Vec<C>>, Error> {
        self.link.load(parents, Source::Tx(tx)).await
    }
}

impl<P: Model, C: Model> HasOne<P, C>
where
    P::Key: SqlValue,
{
    /// The child of `parent`, or `None` (the first by key if there are
    /// several).
    pub async fn of(self, parent: &P, db: &Db) -> Result<Option<C>, Error> {
        Ok(self
            .load(db, std::slice::from_ref(parent))
            .await?
            .pop()
            .flatten())
    }

    /// [`of`](HasOne::of) in a transaction.
    pub async fn of_in(self, parent: &P, tx: &mut Tx) -> Result<Option<C>, Error> {
        Ok(self
            .load_in(tx, std::slice::from_ref(parent))
            .await?
            .pop()
            .flatten())
    }

    /// The child of every parent, in the parents' order, with one query per
    /// ten thousand parents (no N+1).
    pub async fn load(self, db: &Db, parents: &[P]) -> Result<Vec<Option<C>>, Error> {
        let children = self.link.load(parents, Source::Db(db)).await?;
        Ok(children.into_iter().map(|c| c.into_iter().next()).collect())
    }

    /// [`load`](HasOne::load) in a transaction.
    pub async fn load_in(self, tx: &mut Tx, parents: &[P]) -> Result<Vec<Option<C>>, Error> {
        let children = self.link.load(parents, Source::Tx(tx)).await?;
        Ok(children.into_iter().map(|c| c.into_iter().next()).collect())
    }
}

// What the methods `#[derive(Model)]` generates call: free functions, so
// that a relation to a type that is not a model is reported as such, on
// the type, rather than as a missing method. Written out rather than by a
// macro: their signatures appear in the errors users read.

/// `line.order(&db)`.
#[doc(hidden)]
pub fn parent<'a, C: Model, P: Model>(
    relation: BelongsTo<C, P>,
    child: &'a C,
    db: &'a Db,
) -> impl Future<Output = Result<Option<P>, Error>> + Send + 'a
where
    P::Key: SqlValue,
{
    relation.of(child, db)
}

/// `line.order_in(&mut tx)`.
#[doc(hidden)]
pub fn parent_in<'a, C: Model, P: Model>(
    relation: BelongsTo<C, P>,
    child: &'a C,
    tx: &'a mut Tx,
) -> impl Future<Output = Result<Option<P>, Error>> + Send + 'a
where
    P::Key: SqlValue,
{
    relation.of_in(child, tx)
}

/// `order.lines(&db)`.
#[doc(hidden)]
pub fn children<'a, P: Model, C: Model>(
    relation: HasMany<P, C>,
    parent: &'a P,
    db: &'a Db,
) -> impl Future<Output = Result<Vec<C>, Error>> + Send + 'a
where
    P::Key: SqlValue,
{
    relation.of(parent, db)
}

/// `order.lines_in(&mut tx)`.
#[doc(hidden)]
pub fn children_in<'a, P: Model, C: Model>(
    relation: HasMany<P, C>,
    parent: &'a P,
    tx: &'a mut Tx,
) -> impl Future<Output = Result<Vec<C>, Error>> + Send + 'a
where
    P::Key: SqlValue,
{
    relation.of_in(parent, tx)
}

/// `order.invoice(&db)`.
#[doc(hidden)]
pub fn child<'a, P: Model, C: Model>(
    relation: HasOne<P, C>,
    parent: &'a P,
    db: &'a Db,
) -> impl Future<Output = Result<Option<C>, Error>> + Send + 'a
where
    P::Key: SqlValue,
{
    relation.of(parent, db)
}

/// `order.invoice_in(&mut tx)`.
#[doc(hidden)]
pub fn child_in<'a, P: Model, C: Model>(
    relation: HasOne<P, C>,
    parent: &'a P,
    tx: &'a mut Tx,
) -> impl Future<Output = Result<Option<C>, Error>> + Send + 'a
where
    P::Key: SqlValue,
{
    relation.of_in(parent, tx)
}
