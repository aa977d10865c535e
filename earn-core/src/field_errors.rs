//! Validation errors that collect: every field at fault with every message,
//! so an API can answer 422 with all of them at once.

use std::borrow::Cow;
use std::fmt;

/// Validation failures by field, in the order they were added: each field
/// with every message about it.
///
/// A hook builds one and returns it (`errors.into_result()`), or adds them
/// one by one with `ctx.invalid(field, message)` and lets the write fail
/// with all of them once the phase's hooks have run. The caller reads them
/// back with [`Error::field_errors`](crate::Error::field_errors), also from
/// a nested write that failed inside a hook. Serializes as a JSON object,
/// `{"email": ["must contain '@'"], "name": ["must not be empty"]}`.
///
/// ```
/// use earn::FieldErrors;
///
/// let mut errors = FieldErrors::new();
/// errors.add("email", "must contain '@'");
/// errors.add("email", "is too long");
/// errors.add("name", "must not be empty");
/// assert_eq!(errors.get("email"), ["must contain '@'", "is too long"]);
/// assert_eq!(errors.to_string(), "email: must contain '@', is too long; name: must not be empty");
/// assert!(errors.into_result().is_err());
/// assert!(FieldErrors::new().into_result().is_ok());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FieldErrors {
    // Few fields per model: a vector keeps their order and needs no hashing.
    fields: Vec<(Cow<'static, str>, Vec<Cow<'static, str>>)>,
}

impl FieldErrors {
    /// No errors.
    pub fn new() -> Self {
        FieldErrors::default()
    }

    /// Adds `message` about `field`.
    pub fn add(
        &mut self,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> &mut Self {
        let field = field.into();
        let message = message.into();
        match self.fields.iter_mut().find(|(name, _)| *name == field) {
            Some((_, messages)) => messages.push(message),
            None => self.fields.push((field, vec![message])),
        }
        self
    }

    /// Adds every error of `other`, after these.
    pub fn merge(&mut self, other: FieldErrors) {
        for (field, messages) in other.fields {
            for message in messages {
                self.add(field.clone(), message);
            }
        }
    }

    /// Whether there is no error.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// How many fields have errors.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// The messages about `field` (empty if it has none).
    pub fn get(&self, field: &str) -> &[Cow<'static, str>] {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map_or(&[], |(_, messages)| messages)
    }

    /// Each field with its messages, in the order they were first added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Cow<'static, str>])> {
        self.fields
            .iter()
            .map(|(field, messages)| (&**field, messages.as_slice()))
    }

    /// `Ok(())` without errors, else these as a
    /// [`HookError::Invalid`](crate::HookError::Invalid): what a hook returns.
    pub fn into_result(self) -> Result<(), crate::HookError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(crate::HookError::Invalid(self))
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (field, messages)) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: ")?;
            for (j, message) in messages.iter().enumerate() {
                if j > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(message)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for FieldErrors {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<F, M> FromIterator<(F, M)> for FieldErrors
where
    F: Into<Cow<'static, str>>,
    M: Into<Cow<'static, str>>,
{
    fn from_iter<I: IntoIterator<Item = (F, M)>>(iter: I) -> Self {
        let mut errors = FieldErrors::new();
        for (field, message) in iter {
            errors.add(field, message);
        }
        errors
    }
}
