//! The issuer's signing keys (a JWK set from a URL or a file), cached in memory.
//!
//! Keys are fetched on first use, again once they are older than `jwks_cache`, and again
//! when a token names a key id the cache does not hold: that is how a rotated key is picked
//! up without a restart. Fetches never run concurrently and at most one starts per
//! `jwks_cooldown`, so tokens with made-up key ids cannot turn the gateway into a flood of
//! requests to the issuer. A failed fetch keeps the keys already known.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jsonwebtoken::Algorithm;

use crate::config::auth::JwksSource;
pub use crate::config::jwks::{Key, MAX_JWKS_BYTES, parse, read_file};

/// Bound on one fetch of the key set.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no key could be found for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key set holds no key with this id (even after a fresh fetch, when one was allowed).
    UnknownKid,
    /// No key in the set fits the token's algorithm.
    NoSuitableKey,
    /// The key set has never been fetched successfully.
    Unavailable,
}

#[derive(Default)]
struct Cache {
    keys: Arc<Vec<Key>>,
    /// When the keys were last fetched successfully.
    fetched: Option<Instant>,
    /// When a fetch last started, successful or not.
    attempted: Option<Instant>,
}

/// The cached key set of one issuer.
pub struct Jwks {
    source: JwksSource,
    http: reqwest::Client,
    max_age: Duration,
    cooldown: Duration,
    cache: RwLock<Cache>,
    /// Held while fetching: concurrent misses wait for one fetch instead of starting many.
    fetching: tokio::sync::Mutex<()>,
    /// Whether a background refresh of stale keys is under way (at most one).
    renewing: AtomicBool,
}

impl Jwks {
    pub fn new(
        source: JwksSource,
        http: reqwest::Client,
        max_age: Duration,
        cooldown: Duration,
    ) -> Self {
        Jwks {
            source,
            http,
            max_age,
            cooldown,
            cache: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
            renewing: AtomicBool::new(false),
        }
    }

    /// The keys that may have signed a token with key id `kid` and algorithm `alg`.
    ///
    /// Keys past `jwks_cache` are still used while fresh ones are fetched in the background,
    /// so a slow or unreachable issuer does not stall every request; only the very first
    /// token, and one naming an unknown key, wait for a fetch.
    pub async fn keys_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<Key>, KeyError> {
        let now = Instant::now();
        // Read first: a guard in the match scrutinee would live across the await.
        let fetched = self.read().fetched;
        match fetched {
            None => self.refresh(now).await,
            Some(at) if now.duration_since(at) >= self.max_age => self.renew(now),
            Some(_) => {}
        }
        match self.select(kid, alg) {
            Err(KeyError::UnknownKid) => {
                // Perhaps the issuer rotated its keys: look again, if a fetch is allowed.
                self.refresh(now).await;
                self.select(kid, alg)
            }
            other => other,
        }
    }

    /// Starts a background refresh unless one is running.
    fn renew(self: &Arc<Self>, asked: Instant) {
        if self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.refresh(asked).await;
            this.renewing.store(false, Ordering::Release);
        });
    }

    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<Key>, KeyError> {
        let cache = self.read();
        if cache.fetched.is_none() {
            return Err(KeyError::Unavailable);
        }
        select(&cache.keys, kid, alg)
    }

    /// Fetches the key set unless another fetch started since `asked` or the cooldown since
    /// the last attempt has not passed.
    async fn refresh(&self, asked: Instant) {
        let _one_at_a_time = self.fetching.lock().await;
        let attempted = self.read().attempted;
        if !may_fetch(attempted, asked, Instant::now(), self.cooldown) {
            return;
        }
        self.write().attempted = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(source = %self.describe(), keys = keys.len(), "Fetched the JWT signing keys");
                let mut cache = self.write();
                cache.keys = Arc::new(keys);
                cache.fetched = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!(source = %self.describe(), error = %e, "Could not fetch the JWT signing keys; keeping the ones known")
            }
        }
    }

    fn describe(&self) -> String {
        match &self.source {
            JwksSource::Url(u) => u.to_string(),
            JwksSource::File(p) => p.display().to_string(),
        }
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let bytes = match &self.source {
            JwksSource::File(path) => read_file(path)?,
            JwksSource::Url(url) => self.download(url).await?,
        };
        parse(&bytes)
    }

    async fn download(&self, url: &url::Url) -> Result<Vec<u8>, String> {
        crate::net::check_url(url.as_str())?;
        let resp = self
            .http
            .get(url.as_str())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| crate::upstream::http::error_chain(&e))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("key set larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        let mut chunks = resp.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| crate::upstream::http::error_chain(&e))?;
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("key set larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether a fetch may start now: none started since the caller looked (`asked`; one that
/// did already brought whatever there is), and the cooldown since the last one has passed.
fn may_fetch(attempted: Option<Instant>, asked: Instant, now: Instant, cooldown: Duration) -> bool {
    match attempted {
        None => true,
        Some(at) => at < asked && now.duration_since(at) >= cooldown,
    }
}

/// The keys for `kid` (any fitting key when the token names none) that fit `alg`.
fn select(keys: &[Key], kid: Option<&str>, alg: Algorithm) -> Result<Vec<Key>, KeyError> {
    let named: Vec<&Key> = match kid {
        Some(kid) => keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .collect(),
        None => keys.iter().collect(),
    };
    if kid.is_some() && named.is_empty() {
        return Err(KeyError::UnknownKid);
    }
    let fitting: Vec<Key> = named.into_iter().filter(|k| k.fits(alg)).cloned().collect();
    if fitting.is_empty() {
        return Err(KeyError::NoSuitableKey);
    }
    Ok(fitting)
}

#[cfg(test)]
mod tests;
