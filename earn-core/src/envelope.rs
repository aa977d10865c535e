//! Sealed events: payloads encrypted with AES-256-GCM and events signed
//! with HMAC-SHA256, chosen by event pattern, with key rings that rotate.
//!
//! An [`Envelope`] is given to whatever sends events out of the process
//! (the bus's `publish`, the outbox, Redis Streams, NATS), which seals
//! them, and to the bus whose handlers receive them, which opens them just
//! before the handlers run. Sealing is idempotent: an event already sealed
//! passes through unchanged, so the outbox can seal an event that Redis
//! later publishes.
//!
//! On the wire an encrypted event keeps its name, ids, source and
//! metadata; its payload becomes a base64 string of the nonce and the
//! ciphertext, and its metadata says which key sealed it
//! (`earn-enc-key`). A signed event carries `earn-sig-key` and `earn-sig`
//! (base64 of the HMAC). The signature covers the id, name, source, time,
//! correlation and causation ids, the payload as sent (the ciphertext when
//! encrypted) and the metadata, except the signature itself and the W3C
//! trace context (`traceparent`, `tracestate`), which hops may rewrite.

use std::borrow::Cow;
use std::sync::Arc;

use crate::event::Event;

/// The metadata key naming the key that encrypted the payload.
pub const ENCRYPTION_KEY: &str = "earn-enc-key";
/// The metadata key naming the key that signed the event.
pub const SIGNATURE_KEY: &str = "earn-sig-key";
/// The metadata key holding the signature (base64 of the HMAC-SHA256).
pub const SIGNATURE: &str = "earn-sig";
/// The metadata key an opened event carries instead of
/// [`ENCRYPTION_KEY`]: its payload is plain text again, in this process
/// only. Earn's own messages about such an event (a payload that is not
/// the handler's type) leave its content out.
pub const DECRYPTED: &str = "earn-decrypted";

/// Why an event could not be sealed or opened. Opening failures are
/// permanent: the bus hands the event to no handler, and each one that
/// would have run gives up on it with this reason (a dead letter, or the
/// transport's dead-letter stream, holding the event as it arrived).
///
/// The message never contains the payload or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event `{event}` ({id}) {problem}")]
pub struct EnvelopeError {
    /// The event's name.
    pub event: String,
    /// The event's id.
    pub id: uuid::Uuid,
    /// What was wrong.
    pub problem: EnvelopeProblem,
}

/// What was wrong with a sealed event, or why one could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeProblem {
    /// It was sealed with a key this process's key ring does not hold.
    #[error("was sealed with key `{0}`, which is not in this process's key ring")]
    UnknownKey(String),
    /// The key is the one named but the ciphertext does not authenticate.
    #[error(
        "cannot be decrypted with key `{0}`: the key is not the one that encrypted it, or the payload was altered"
    )]
    Undecryptable(String),
    /// It matches an encrypted pattern but came unencrypted.
    #[error("must arrive encrypted (pattern `{0}`) but came in plain text")]
    NotEncrypted(String),
    /// It matches a signed pattern but carries no signature.
    #[error("must arrive signed (pattern `{0}`) but carries no signature")]
    Unsigned(String),
    /// The signature does not match the event.
    #[error(
        "has a bad signature (key `{0}`): the event was altered, or not signed by a holder of the key"
    )]
    BadSignature(String),
    /// It is encrypted but nothing here decrypts events of its name.
    #[error(
        "is encrypted, but no key ring here decrypts events of this name (give the bus an `Envelope` that encrypts it)"
    )]
    NoKeyRing,
    /// The envelope's fields are not what a sealed event carries.
    #[error("has a malformed envelope: {0}")]
    Malformed(String),
    /// Encrypting failed.
    #[error("cannot be sealed: {0}")]
    Seal(String),
}

/// Which events are encrypted and signed, and with which keys. Cheap to
/// clone; the default seals and requires nothing.
///
/// Built with feature `encryption`:
///
/// ```
/// # #[cfg(feature = "encryption")] {
/// use earn::{Envelope, Event, KeyRing};
///
/// let keys = KeyRing::new("2026-11", &[7u8; 32])?;
/// let envelope = Envelope::new().encrypt("payment.*", &keys)?.sign("**", &keys)?;
///
/// let event = Event::new("payment.captured", &serde_json::json!({"card": "4111 1111"}))?;
/// let sealed = envelope.seal(event)?;
/// assert!(!sealed.payload_json().to_string().contains("4111"));
/// assert_eq!(sealed.meta("earn-enc-key"), Some("2026-11"));
///
/// let opened = envelope.open(&sealed)?;
/// assert_eq!(opened.payload_json()["card"], "4111 1111");
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Envelope {
    #[cfg(feature = "encryption")]
    rules: Option<Arc<crypto::Rules>>,
    #[cfg(not(feature = "encryption"))]
    rules: Option<Arc<()>>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("Envelope");
        #[cfg(feature = "encryption")]
        if let Some(rules) = &self.rules {
            out.field("encrypt", &rules.encrypt_patterns())
                .field("sign", &rules.sign_patterns());
        }
        out.finish()
    }
}

impl Envelope {
    /// An envelope that seals nothing (add rules with `encrypt` and
    /// `sign`, feature `encryption`).
    pub fn new() -> Envelope {
        Envelope::default()
    }

    /// Whether it seals and requires nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_none()
    }

    /// The event as it leaves the process: its payload encrypted if its
    /// name matches an `encrypt` pattern, and signed if it matches a
    /// `sign` pattern. What is already sealed stays as it is.
    pub fn seal(&self, event: Event) -> Result<Event, EnvelopeError> {
        #[cfg(feature = "encryption")]
        if let Some(rules) = &self.rules {
            return rules.seal(event);
        }
        Ok(event)
    }

    /// The event as its handlers see it: its signature verified if its
    /// name matches a `sign` pattern (an unsigned one is refused), its
    /// payload decrypted if it was encrypted (a plain-text one matching an
    /// `encrypt` pattern is refused).
    pub fn open(&self, event: &Event) -> Result<Event, EnvelopeError> {
        self.opened(event, true).map(Cow::into_owned)
    }

    /// [`open`](Self::open), borrowing `event` when there is nothing to
    /// open. `strict: false` is for an event emitted in this process: what
    /// is sealed is opened, but nothing is required to be.
    #[cfg_attr(
        not(feature = "encryption"),
        allow(clippy::unused_self, reason = "the rules exist with `encryption` only")
    )]
    pub(crate) fn opened<'e>(
        &self,
        event: &'e Event,
        strict: bool,
    ) -> Result<Cow<'e, Event>, EnvelopeError> {
        #[cfg(feature = "encryption")]
        if let Some(rules) = &self.rules {
            return rules.open(event, strict).map(Cow::Owned);
        }
        let _ = strict;
        if !event.metadata().is_empty() && event.meta(ENCRYPTION_KEY).is_some() {
            return Err(problem(event, EnvelopeProblem::NoKeyRing));
        }
        Ok(Cow::Borrowed(event))
    }
}

fn problem(event: &Event, problem: EnvelopeProblem) -> EnvelopeError {
    EnvelopeError {
        event: event.name().to_string(),
        id: event.id(),
        problem,
    }
}

#[cfg(feature = "encryption")]
pub use crypto::KeyRing;

#[cfg(feature = "encryption")]
mod crypto {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use hmac::Mac;

    use super::{
        DECRYPTED, ENCRYPTION_KEY, Envelope, EnvelopeError, EnvelopeProblem, SIGNATURE,
        SIGNATURE_KEY, problem,
    };
    use crate::event::{Event, EventData};
    use crate::pattern::{Pattern, PatternError};

    type HmacSha256 = hmac::Hmac<sha2::Sha256>;

    /// Keys by id: the current one seals, every one opens. Rotating is
    /// adding the new key as current and keeping the old ones until
    /// nothing sealed with them is left in flight.
    ///
    /// Keys are 32 bytes (AES-256; the same bytes key HMAC-SHA256 when the
    /// ring signs). `Debug` shows the ids only.
    ///
    /// ```
    /// use earn::KeyRing;
    ///
    /// // 2026-12's key seals from now on; 2026-11's still opens what it sealed.
    /// let keys = KeyRing::new("2026-12", &[2u8; 32])?.with_old("2026-11", &[1u8; 32])?;
    /// assert_eq!(keys.current(), "2026-12");
    /// assert!(!format!("{keys:?}").contains("[2"));
    /// # Ok::<(), earn::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct KeyRing {
        current: Arc<str>,
        keys: Arc<BTreeMap<Arc<str>, Key>>,
    }

    struct Key {
        cipher: Aes256Gcm,
        mac: HmacSha256,
    }

    impl std::fmt::Debug for KeyRing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("KeyRing")
                .field("current", &self.current)
                .field("keys", &self.keys.keys().collect::<Vec<_>>())
                .finish()
        }
    }

    fn key(id: &str, bytes: &[u8]) -> Result<Key, crate::Error> {
        let invalid = |reason: String| crate::Error::InvalidKey {
            id: id.to_owned(),
            reason,
        };
        if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control()) {
            return Err(invalid(
                "a key id must be 1 to 64 characters, none of them a control character".into(),
            ));
        }
        if bytes.len() != 32 {
            return Err(invalid(format!(
                "a key must be 32 bytes (AES-256), not {}",
                bytes.len()
            )));
        }
        let cipher = Aes256Gcm::new_from_slice(bytes)
            .map_err(|_| invalid("not an AES-256 key".to_owned()))?;
        let mac =
            HmacSha256::new_from_slice(bytes).map_err(|_| invalid("not an HMAC key".to_owned()))?;
        Ok(Key { cipher, mac })
    }

    impl KeyRing {
        /// A ring whose current key, `id`, is `bytes` (32 bytes). The id
        /// travels with every event the key seals; the key never does.
        pub fn new(id: &str, bytes: &[u8]) -> Result<KeyRing, crate::Error> {
            let key = key(id, bytes)?;
            let current: Arc<str> = id.into();
            Ok(KeyRing {
                keys: Arc::new(BTreeMap::from([(current.clone(), key)])),
                current,
            })
        }

        /// Adds an older key: it opens what it sealed, and seals nothing.
        pub fn with_old(self, id: &str, bytes: &[u8]) -> Result<KeyRing, crate::Error> {
            let key = key(id, bytes)?;
            if *self.current == *id || self.keys.contains_key(id) {
                return Err(crate::Error::InvalidKey {
                    id: id.to_owned(),
                    reason: "the ring already holds a key with this id".into(),
                });
            }
            let mut keys = BTreeMap::new();
            for (existing, key) in self.keys.iter() {
                keys.insert(existing.clone(), key.clone());
            }
            keys.insert(id.into(), key);
            Ok(KeyRing {
                current: self.current,
                keys: Arc::new(keys),
            })
        }

        /// A ring from `EARN_KEYS`-style text: `id=base64key` entries
        /// separated by commas, the first being the current key.
        ///
        /// ```
        /// let keys = earn::KeyRing::parse("new=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,old=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")?;
        /// assert_eq!(keys.current(), "new");
        /// # Ok::<(), earn::Error>(())
        /// ```
        pub fn parse(text: &str) -> Result<KeyRing, crate::Error> {
            let mut ring: Option<KeyRing> = None;
            for (index, entry) in text.split(',').map(str::trim).enumerate() {
                let Some((id, encoded)) = entry.split_once('=') else {
                    return Err(crate::Error::InvalidKey {
                        id: format!("entry {}", index + 1),
                        reason: "expected `id=base64key`".into(),
                    });
                };
                let id = id.trim();
                let bytes =
                    BASE64
                        .decode(encoded.trim())
                        .map_err(|error| crate::Error::InvalidKey {
                            id: id.to_owned(),
                            reason: format!("the key is not base64: {error}"),
                        })?;
                ring = Some(match ring {
                    None => KeyRing::new(id, &bytes)?,
                    Some(ring) => ring.with_old(id, &bytes)?,
                });
            }
            ring.ok_or_else(|| crate::Error::InvalidKey {
                id: String::new(),
                reason: "no key given".into(),
            })
        }

        /// The id of the key that seals.
        pub fn current(&self) -> &str {
            &self.current
        }

        fn current_key(&self) -> &Key {
            // `new` puts the current key in; `with_old` never removes it.
            &self.keys[&*self.current]
        }
    }

    impl Clone for Key {
        fn clone(&self) -> Self {
            Key {
                cipher: self.cipher.clone(),
                mac: self.mac.clone(),
            }
        }
    }

    pub(super) struct Rules {
        encrypt: Vec<(Pattern, KeyRing)>,
        sign: Vec<(Pattern, KeyRing)>,
    }

    fn first<'a>(rules: &'a [(Pattern, KeyRing)], event: &Event) -> Option<&'a (Pattern, KeyRing)> {
        rules
            .iter()
            .find(|(pattern, _)| pattern.matches(event.name()))
    }

    impl Envelope {
        /// Encrypts the payload of events matching `pattern` with `keys`'
        /// current key (the first matching rule wins), and decrypts with
        /// whichever key of the ring sealed them. A plain-text event
        /// matching it that arrives from a transport is refused.
        pub fn encrypt(self, pattern: &str, keys: &KeyRing) -> Result<Envelope, PatternError> {
            let pattern = Pattern::new(pattern)?;
            Ok(self.with(|rules| rules.encrypt.push((pattern, keys.clone()))))
        }

        /// Signs events matching `pattern` with `keys`' current key, and
        /// verifies them with whichever key of the ring signed them. An
        /// unsigned event matching it that arrives from a transport is
        /// refused.
        pub fn sign(self, pattern: &str, keys: &KeyRing) -> Result<Envelope, PatternError> {
            let pattern = Pattern::new(pattern)?;
            Ok(self.with(|rules| rules.sign.push((pattern, keys.clone()))))
        }

        fn with(self, change: impl FnOnce(&mut Rules)) -> Envelope {
            let mut rules = match self.rules {
                Some(rules) => Rules {
                    encrypt: rules.encrypt.clone(),
                    sign: rules.sign.clone(),
                },
                None => Rules {
                    encrypt: Vec::new(),
                    sign: Vec::new(),
                },
            };
            change(&mut rules);
            Envelope {
                rules: Some(Arc::new(rules)),
            }
        }
    }

    impl Rules {
        pub(super) fn encrypt_patterns(&self) -> Vec<&str> {
            self.encrypt.iter().map(|(p, _)| p.as_str()).collect()
        }

        pub(super) fn sign_patterns(&self) -> Vec<&str> {
            self.sign.iter().map(|(p, _)| p.as_str()).collect()
        }

        pub(super) fn seal(&self, mut event: Event) -> Result<Event, EnvelopeError> {
            if event.meta(DECRYPTED).is_some() {
                event.data_mut().metadata.remove(DECRYPTED);
            }
            if let Some((_, keys)) = first(&self.encrypt, &event)
                && event.meta(ENCRYPTION_KEY).is_none()
            {
                event = encrypt(event, keys)?;
            }
            if let Some((_, keys)) = first(&self.sign, &event)
                && event.meta(SIGNATURE).is_none()
            {
                let id = keys.current.to_string();
                event
                    .data_mut()
                    .metadata
                    .insert(SIGNATURE_KEY.to_owned(), id);
                let signature = mac(&keys.current_key().mac, &event).finalize().into_bytes();
                event
                    .data_mut()
                    .metadata
                    .insert(SIGNATURE.to_owned(), BASE64.encode(signature));
            }
            Ok(event)
        }

        pub(super) fn open(&self, event: &Event, strict: bool) -> Result<Event, EnvelopeError> {
            let signed = event.meta(SIGNATURE).is_some();
            match first(&self.sign, event) {
                Some((_, keys)) if signed => verify(event, keys)?,
                Some((pattern, _)) if strict => {
                    return Err(problem(
                        event,
                        EnvelopeProblem::Unsigned(pattern.as_str().to_owned()),
                    ));
                }
                _ => {}
            }
            let unsigned = || {
                let mut metadata = event.metadata().clone();
                metadata.remove(SIGNATURE);
                metadata.remove(SIGNATURE_KEY);
                metadata
            };
            match (event.meta(ENCRYPTION_KEY), first(&self.encrypt, event)) {
                (Some(_), None) => Err(problem(event, EnvelopeProblem::NoKeyRing)),
                (Some(id), Some((_, keys))) => decrypt(event, unsigned(), id, keys),
                (None, Some((pattern, _))) if strict => Err(problem(
                    event,
                    EnvelopeProblem::NotEncrypted(pattern.as_str().to_owned()),
                )),
                (None, _) if signed => Ok(with_payload(
                    event,
                    event.payload_json().clone(),
                    unsigned(),
                )),
                (None, _) => Ok(event.clone()),
            }
        }
    }

    /// What encryption binds the ciphertext to: this event's id and name,
    /// so it cannot be moved into another event.
    fn associated(event: &Event) -> Vec<u8> {
        let mut aad = event.id().as_bytes().to_vec();
        aad.extend_from_slice(event.name().as_str().as_bytes());
        aad
    }

    /// `event` with `payload` instead of its own: built afresh, so the old
    /// payload (possibly shared with the caller) is never deep-copied.
    fn with_payload(
        event: &Event,
        payload: serde_json::Value,
        metadata: BTreeMap<String, String>,
    ) -> Event {
        let data = event.data();
        Event::from_data(EventData {
            id: data.id,
            name: data.name.clone(),
            payload,
            timestamp_ms: data.timestamp_ms,
            source: data.source.clone(),
            correlation_id: data.correlation_id,
            causation_id: data.causation_id,
            metadata,
            attempt: data.attempt,
        })
    }

    /// Base64 of the nonce: 12 bytes are 16 characters, no padding, so
    /// the ciphertext's base64 can follow it directly.
    const NONCE_TEXT: usize = 16;

    fn encrypt(event: Event, keys: &KeyRing) -> Result<Event, EnvelopeError> {
        let sealing = |reason: String| problem(&event, EnvelopeProblem::Seal(reason));
        // Serialized, encrypted and tagged in one buffer.
        let mut buffer = Vec::with_capacity(1024);
        serde_json::to_writer(&mut buffer, event.payload_json())
            .map_err(|error| sealing(error.to_string()))?;
        // A fresh random nonce per event, from the thread's CSPRNG
        // (reseeded from the OS): no system call per event.
        let mut nonce = Nonce::default();
        rand::fill(nonce.as_mut_slice());
        keys.current_key()
            .cipher
            .encrypt_in_place(&nonce, &associated(&event), &mut buffer)
            .map_err(|_| sealing("AES-GCM refused the payload".into()))?;
        let mut text = String::with_capacity(NONCE_TEXT + buffer.len().div_ceil(3) * 4);
        BASE64.encode_string(nonce, &mut text);
        BASE64.encode_string(&buffer, &mut text);
        let mut metadata = event.metadata().clone();
        metadata.insert(ENCRYPTION_KEY.to_owned(), keys.current.to_string());
        Ok(with_payload(
            &event,
            serde_json::Value::String(text),
            metadata,
        ))
    }

    /// `event` with its payload decrypted and `metadata` (its own, less
    /// the signature).
    fn decrypt(
        opened: &Event,
        mut metadata: BTreeMap<String, String>,
        id: &str,
        keys: &KeyRing,
    ) -> Result<Event, EnvelopeError> {
        let malformed = |what: &str| problem(opened, EnvelopeProblem::Malformed(what.to_owned()));
        let Some(key) = keys.keys.get(id) else {
            return Err(problem(opened, EnvelopeProblem::UnknownKey(id.to_owned())));
        };
        let Some(text) = opened.payload_json().as_str() else {
            return Err(malformed("the encrypted payload is not a string"));
        };
        let (Some(nonce_text), Some(body)) = (text.get(..NONCE_TEXT), text.get(NONCE_TEXT..))
        else {
            return Err(malformed("the encrypted payload is too short"));
        };
        let mut nonce = Nonce::default();
        BASE64
            .decode_slice(nonce_text, nonce.as_mut_slice())
            .map_err(|_| malformed("the encrypted payload is not base64"))?;
        let mut buffer = BASE64
            .decode(body)
            .map_err(|_| malformed("the encrypted payload is not base64"))?;
        key.cipher
            .decrypt_in_place(&nonce, &associated(opened), &mut buffer)
            .map_err(|_| problem(opened, EnvelopeProblem::Undecryptable(id.to_owned())))?;
        let payload = serde_json::from_slice(&buffer)
            .map_err(|_| malformed("the decrypted payload is not JSON"))?;
        metadata.remove(ENCRYPTION_KEY);
        metadata.insert(DECRYPTED.to_owned(), id.to_owned());
        Ok(with_payload(opened, payload, metadata))
    }

    /// The HMAC of what a signature covers, as canonical JSON.
    fn mac(key: &HmacSha256, event: &Event) -> HmacSha256 {
        #[derive(serde::Serialize)]
        struct Signed<'a> {
            v: u8,
            id: uuid::Uuid,
            name: &'a str,
            source: Option<&'a str>,
            time: u64,
            correlation: uuid::Uuid,
            causation: Option<uuid::Uuid>,
            payload: &'a serde_json::Value,
            metadata: BTreeMap<&'a str, &'a str>,
        }
        let data = event.data();
        let signed = Signed {
            v: 1,
            id: data.id,
            name: data.name.as_str(),
            source: data.source.as_deref(),
            time: data.timestamp_ms,
            correlation: data.correlation_id,
            causation: data.causation_id,
            payload: &data.payload,
            metadata: data
                .metadata
                .iter()
                .filter(|(key, _)| {
                    !matches!(key.as_str(), SIGNATURE | "traceparent" | "tracestate")
                })
                .map(|(key, value)| (key.as_str(), value.as_str()))
                .collect(),
        };
        let mut mac = key.clone();
        // Writing JSON into a MAC cannot fail: `Signed` has string keys.
        let _ = serde_json::to_writer(MacWriter(&mut mac), &signed);
        mac
    }

    struct MacWriter<'a>(&'a mut HmacSha256);

    impl std::io::Write for MacWriter<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn verify(event: &Event, keys: &KeyRing) -> Result<(), EnvelopeError> {
        let id = event.meta(SIGNATURE_KEY).unwrap_or("");
        let Some(key) = keys.keys.get(id) else {
            return Err(problem(event, EnvelopeProblem::UnknownKey(id.to_owned())));
        };
        let signature = BASE64
            .decode(event.meta(SIGNATURE).unwrap_or(""))
            .map_err(|_| problem(event, EnvelopeProblem::BadSignature(id.to_owned())))?;
        mac(&key.mac, event)
            .verify_slice(&signature)
            .map_err(|_| problem(event, EnvelopeProblem::BadSignature(id.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_envelope_passes_events_through_and_refuses_encrypted_ones() {
        let envelope = Envelope::new();
        let plain = Event::new("order.paid", &7).unwrap();
        assert_eq!(envelope.seal(plain.clone()).unwrap(), plain);
        assert_eq!(envelope.open(&plain).unwrap(), plain);
        let encrypted = plain.with_meta(ENCRYPTION_KEY, "k1");
        let error = envelope.open(&encrypted).unwrap_err();
        assert_eq!(error.problem, EnvelopeProblem::NoKeyRing);
        assert!(
            error.to_string().starts_with("event `order.paid` ("),
            "{error}"
        );
    }
}
