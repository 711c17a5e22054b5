//! Sealed tokens: authenticated encryption of opaque values handed to clients.
//!
//! Cursors (and later request state and session ids) leave the gateway as
//! opaque strings and come back in later requests. Sealing them with
//! XChaCha20-Poly1305 means a client can neither read nor alter them
//! undetected, and every gateway replica configured with the same key accepts
//! tokens minted by the others.
//!
//! Token text: URL-safe base64 without padding of
//! `version (1 byte) || nonce (24 bytes) || ciphertext+tag`.
//! The associated data is `version || purpose`, so a token minted for one
//! purpose (e.g. `b"cursor/v1"`) cannot be replayed as another, and the
//! version byte cannot be swapped without detection.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use rand::{RngCore, TryRngCore};

/// Format version written as the first byte of every token.
const VERSION: u8 = 1;
/// XChaCha20 nonce length: 192 bits, large enough to pick at random per token.
const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
const TAG_LEN: usize = 16;
/// Shortest well-formed token body (empty plaintext).
const MIN_LEN: usize = 1 + NONCE_LEN + TAG_LEN;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not base64, too short, or of an unknown format version.
    #[error("malformed sealed token")]
    Malformed,
    /// Authentication failed: tampered with, sealed under another key, or
    /// sealed for another purpose.
    #[error("sealed token failed authentication")]
    Forged,
}

/// Seals and opens tokens under one 32-byte key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Sealer {
    // Never print key material, not even in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for `key`; replicas sharing the key accept each other's tokens.
    pub fn new(key: [u8; 32]) -> Self {
        let key: Key = key.into();
        Self {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }

    /// A sealer with a fresh key from the operating system's RNG, for a single
    /// process whose tokens need not survive a restart.
    ///
    /// # Panics
    /// If the operating system cannot provide randomness; there is no safe way
    /// to continue without a secret key.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.unwrap_err().fill_bytes(&mut key);
        Self::new(key)
    }

    /// Seals `plaintext` for `purpose`; every call uses a fresh random nonce,
    /// so sealing the same value twice gives different tokens.
    ///
    /// # Panics
    /// If `plaintext` exceeds 256 GiB (XChaCha20's keystream limit), the only
    /// way encryption can fail.
    pub fn seal(&self, purpose: &[u8], plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        // ThreadRng is a CSPRNG seeded from the OS; 192-bit random nonces
        // make reuse under one key negligible.
        rand::rng().fill_bytes(&mut nonce);
        let mut body = Vec::with_capacity(MIN_LEN + plaintext.len());
        body.push(VERSION);
        body.extend_from_slice(&nonce);
        body.extend_from_slice(plaintext);
        let aad = associated_data(VERSION, purpose);
        let tag = match self.cipher.encrypt_in_place_detached(
            XNonce::from_slice(&nonce),
            &aad,
            &mut body[1 + NONCE_LEN..],
        ) {
            Ok(tag) => tag,
            Err(_) => panic!("plaintext too large to seal"),
        };
        body.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(body)
    }

    /// Opens a token sealed (by any replica sharing the key) for `purpose`.
    pub fn open(&self, purpose: &[u8], token: &str) -> Result<Vec<u8>, SealError> {
        // The engine rejects padding and non-canonical trailing bits, so each
        // token text has exactly one decoding: any altered character either
        // fails here or changes the bytes, which authentication then catches.
        let body = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| SealError::Malformed)?;
        if body.len() < MIN_LEN {
            return Err(SealError::Malformed);
        }
        let (version, rest) = body.split_at(1);
        if version[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let mut plaintext = ciphertext.to_vec();
        let aad = associated_data(VERSION, purpose);
        self.cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                &aad,
                &mut plaintext,
                Tag::from_slice(tag),
            )
            .map_err(|_| SealError::Forged)?;
        Ok(plaintext)
    }
}

/// `version || purpose`: binds both the format and the use of a token.
fn associated_data(version: u8, purpose: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + purpose.len());
    aad.push(version);
    aad.extend_from_slice(purpose);
    aad
}

#[cfg(test)]
mod tests;
