//! Mail tokens at rest: AES-256-GCM under a key named by its id, stored
//! beside each ciphertext so keys can rotate. `MAIL_TOKEN_ENCRYPTION_KEY`
//! is the key new rows are sealed with (32 bytes, base64);
//! `MAIL_TOKEN_PREVIOUS_KEYS` (comma-separated, same form) still open rows
//! sealed before a rotation.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Bytes of AES-GCM's nonce, stored before the ciphertext.
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("not a 32-byte key in base64")]
    BadKey,
    #[error("sealed under key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("the ciphertext does not open under its key (altered, or another key)")]
    Open,
}

/// The associated data a token is sealed with: its account (user and
/// address) and which token (`access` or `refresh`), so a ciphertext moved
/// to another account won't open.
pub fn token_context(user_id: uuid::Uuid, email_address: &str, which: &str) -> Vec<u8> {
    format!("{user_id}:{email_address}:{which}").into_bytes()
}

/// The keys that open stored tokens, and the one that seals new ones.
#[derive(Clone)]
pub struct KeyRing {
    current: String,
    keys: HashMap<String, Aes256Gcm>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// A sealed value and the id of the key that opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

impl KeyRing {
    /// `current` seals; `previous` only open.
    pub fn new(current: &str, previous: &[&str]) -> Result<Self, CryptoError> {
        let (current_id, current_key) = parse_key(current)?;
        let mut keys = HashMap::from([(current_id.clone(), current_key)]);
        for key in previous {
            let (id, key) = parse_key(key)?;
            keys.entry(id).or_insert(key);
        }
        Ok(Self {
            current: current_id,
            keys,
        })
    }

    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Seals `plain`, bound to `context` (the row it belongs to), so a
    /// ciphertext copied into another row does not open there.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Sealed {
        let cipher = &self.keys[&self.current];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut bytes = nonce.to_vec();
        // Encryption with a valid key and nonce cannot fail for these sizes.
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .unwrap_or_default();
        bytes.extend_from_slice(&sealed);
        Sealed {
            key_id: self.current.clone(),
            bytes,
        }
    }

    pub fn open(&self, key_id: &str, bytes: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = self
            .keys
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        if bytes.len() < NONCE_BYTES {
            return Err(CryptoError::Open);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Open)
    }

    /// Opens a sealed UTF-8 string.
    pub fn open_string(
        &self,
        key_id: &str,
        bytes: &[u8],
        context: &[u8],
    ) -> Result<String, CryptoError> {
        String::from_utf8(self.open(key_id, bytes, context)?).map_err(|_| CryptoError::Open)
    }
}

/// A key and its id: the first 8 hex digits of the SHA-256 of the key, so
/// the id names the key without revealing it.
fn parse_key(text: &str) -> Result<(String, Aes256Gcm), CryptoError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| CryptoError::BadKey)?;
    if bytes.len() != 32 {
        return Err(CryptoError::BadKey);
    }
    let id = hex::encode(&Sha256::digest(&bytes)[..4]);
    Ok((id, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn sealed_tokens_open_only_under_their_key_and_row() {
        let ring = KeyRing::new(&key(1), &[]).unwrap();
        let sealed = ring.seal(b"1//refresh-token", b"account-a");
        assert_eq!(sealed.key_id, ring.current_key_id());
        assert!(!sealed.bytes.windows(7).any(|w| w == b"refresh"));
        assert_eq!(
            ring.open(&sealed.key_id, &sealed.bytes, b"account-a")
                .unwrap(),
            b"1//refresh-token"
        );
        assert_eq!(
            ring.open(&sealed.key_id, &sealed.bytes, b"account-b"),
            Err(CryptoError::Open)
        );
        let mut altered = sealed.bytes.clone();
        altered[NONCE_BYTES] ^= 1;
        assert_eq!(
            ring.open(&sealed.key_id, &altered, b"account-a"),
            Err(CryptoError::Open)
        );
        let other = KeyRing::new(&key(2), &[]).unwrap();
        assert!(matches!(
            other.open(&sealed.key_id, &sealed.bytes, b"account-a"),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_rotated_ring_opens_old_rows_and_seals_with_the_new_key() {
        let old = KeyRing::new(&key(1), &[]).unwrap();
        let sealed = old.seal(b"token", b"row");
        let rotated = KeyRing::new(&key(2), &[&key(1)]).unwrap();
        assert_eq!(
            rotated.open(&sealed.key_id, &sealed.bytes, b"row").unwrap(),
            b"token"
        );
        assert_ne!(rotated.seal(b"token", b"row").key_id, sealed.key_id);
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            KeyRing::new("not base64!", &[]).unwrap_err(),
            CryptoError::BadKey
        );
        assert_eq!(
            KeyRing::new(&STANDARD.encode([0u8; 16]), &[]).unwrap_err(),
            CryptoError::BadKey
        );
    }
}
