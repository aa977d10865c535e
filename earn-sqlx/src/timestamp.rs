//! `#[model(created_at)]` and `#[model(updated_at)]`: fields earn sets from
//! one instant per write.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A field type `#[model(created_at)]` / `#[model(updated_at)]` can hold:
/// `chrono::DateTime<Utc>` and `chrono::NaiveDateTime` (UTC) with the
/// `chrono` feature, `time::OffsetDateTime` (UTC) and
/// `time::PrimitiveDateTime` (UTC) with the `time` feature, and an
/// `Option` of any of them. Values are to the microsecond.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold a timestamp",
    label = "`created_at` / `updated_at` need a date-time field",
    note = "use `chrono::DateTime<chrono::Utc>` or `chrono::NaiveDateTime` (feature `chrono`), `time::OffsetDateTime` or `time::PrimitiveDateTime` (feature `time`), or an `Option` of one"
)]
pub trait Timestamp: Sized {
    /// The field's value at `now`.
    fn at(now: SystemTime) -> Self;
}

impl<T: Timestamp> Timestamp for Option<T> {
    fn at(now: SystemTime) -> Self {
        Some(T::at(now))
    }
}

#[cfg(feature = "chrono")]
impl Timestamp for chrono::DateTime<chrono::Utc> {
    fn at(now: SystemTime) -> Self {
        chrono::DateTime::<chrono::Utc>::from(now)
    }
}

#[cfg(feature = "chrono")]
impl Timestamp for chrono::NaiveDateTime {
    fn at(now: SystemTime) -> Self {
        chrono::DateTime::<chrono::Utc>::from(now).naive_utc()
    }
}

#[cfg(feature = "time")]
impl Timestamp for time::OffsetDateTime {
    fn at(now: SystemTime) -> Self {
        time::OffsetDateTime::from(now)
    }
}

#[cfg(feature = "time")]
impl Timestamp for time::PrimitiveDateTime {
    fn at(now: SystemTime) -> Self {
        let utc = time::OffsetDateTime::from(now);
        time::PrimitiveDateTime::new(utc.date(), utc.time())
    }
}

/// A field type `#[model(soft_delete)]` can have: an `Option` of a
/// [`Timestamp`] type, `None` while the row is live and the instant of its
/// deletion after.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot mark a soft-deleted row",
    label = "`soft_delete` needs an `Option` of a date-time",
    note = "use `Option<chrono::DateTime<chrono::Utc>>` (or another `Option` of a date-time): `None` while the row is live"
)]
pub trait SoftDelete: Sized {
    /// The value for a row deleted `at`, or live (`None`).
    fn at(at: Option<SystemTime>) -> Self;
    /// Whether the value marks a live row.
    fn is_live(&self) -> bool;
}

impl<T: Timestamp> SoftDelete for Option<T> {
    fn at(at: Option<SystemTime>) -> Self {
        at.map(T::at)
    }

    fn is_live(&self) -> bool {
        self.is_none()
    }
}

/// The instant of a write, to the microsecond: what PostgreSQL's and
/// MySQL's `DATETIME(6)` columns keep, so a model holds what a read of its
/// row returns.
pub(crate) fn now() -> SystemTime {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UNIX_EPOCH + Duration::from_micros(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
}

/// Stamps `model` for `operation` if it has timestamps: models without
/// any pay no clock read on their writes.
pub(crate) fn stamp<M: crate::model::Entity>(model: &mut M, operation: earn_core::Operation) {
    if M::INFO.created_at.is_some() || M::INFO.updated_at.is_some() {
        model.stamp(now(), operation);
    }
}
