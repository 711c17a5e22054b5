//! Applying a new configuration to a running gateway.
//!
//! Upstreams are compared by name: one added is started, one removed is taken out of the
//! catalog at once, drains its requests in flight (at most `shutdown_grace`) and is stopped,
//! one whose settings changed is replaced by a new incarnation (started beside the old one,
//! which drains like a removed one), and one unchanged is not touched, nor are its sessions
//! or calls. The pipeline settings (`auth`, `policy`, `rate_limits`, `audit`, timeouts) are
//! swapped in one step with a pipeline built anew. Clients are told of catalog changes with
//! `list_changed`, as for any upstream's change.
//!
//! Settings that the running process cannot change (the listen address, the endpoint path,
//! names, sessions and their limits, the connection limits, the byte budgets, the seal key,
//! the Host guard, telemetry, metrics, tasks) keep their running values; each one that
//! differs is named in the log.

use std::sync::Arc;
use std::time::Duration;

use super::{Gateway, build_pipeline, lock};
use crate::config::{Config, UpstreamConfig};
use crate::upstream::supervisor::UpstreamEvent;
use crate::upstream::{Status, Upstream};

/// The least a changed upstream's new incarnation is given to become ready before the old
/// one is retired anyway.
const REPLACE_WAIT: Duration = Duration::from_secs(10);

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Whether anything else that is applied live changed (pipeline settings, limits).
    pub settings: bool,
    /// Settings that differ from the running ones but need a restart: kept as they are.
    pub need_restart: Vec<&'static str>,
}

impl Applied {
    /// Whether the new configuration changed nothing the gateway applies.
    pub fn is_noop(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && !self.settings
    }
}

/// The outcome of a reload, for the counter and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    Applied(Applied),
    /// The new configuration was invalid: every problem, one per line.
    Refused(String),
}

impl Gateway {
    /// Applies `new` as described in the module documentation. Reloads run one at a time.
    pub async fn reload(self: &Arc<Self>, new: Config) -> Applied {
        let _one = self.reloading.lock().await;
        let old = self.config();
        let (new, need_restart) = keep_running(&old, new);
        let mut applied = Applied {
            need_restart,
            settings: !same_settings(&old, &new),
            ..Applied::default()
        };
        let running = self.upstreams.indexed();
        let mut retiring: Vec<(usize, Arc<Upstream>)> = Vec::new();
        for (index, upstream) in &running {
            match new.upstreams.iter().find(|u| u.name == upstream.name()) {
                None => {
                    applied.removed.push(upstream.name().to_owned());
                    retiring.push((*index, upstream.clone()));
                }
                Some(config) if *config != upstream.config => {
                    applied.changed.push(upstream.name().to_owned());
                    retiring.push((*index, upstream.clone()));
                }
                Some(_) => applied.unchanged.push(upstream.name().to_owned()),
            }
        }
        let starting: Vec<UpstreamConfig> = new
            .upstreams
            .iter()
            .filter(|u| !applied.unchanged.contains(&u.name))
            .cloned()
            .collect();
        for config in &starting {
            if !applied.changed.contains(&config.name) {
                applied.added.push(config.name.clone());
            }
        }

        // The settings first: a request that starts from here on sees the new pipeline, and
        // its owner is looked up in the table as it is when it gets there.
        let new = Arc::new(new);
        let (pipeline, auth) = build_pipeline(
            &new,
            &self.parts,
            &self.upstreams,
            &self.relay,
            &self.metrics,
            &self.shutdown,
        );
        self.pipeline.store(Arc::new(pipeline));
        self.auth.store(auth);
        self.config.store(new.clone());

        let grace = new.shutdown_grace;
        let mut removed = Vec::new();
        for (index, upstream) in retiring {
            let replacement = starting.iter().find(|c| c.name == upstream.name()).cloned();
            match replacement {
                Some(config) => {
                    // Started beside the old one, which serves until the new one is ready.
                    let (new_index, new_upstream) = self.upstreams.add(config);
                    self.supervise(new_index, new_upstream.clone());
                    let gateway = self.clone();
                    tokio::spawn(async move {
                        gateway
                            .replace(index, upstream, new_index, new_upstream, grace)
                            .await
                    });
                }
                None => {
                    upstream.retire();
                    removed.push((index, upstream));
                }
            }
        }
        for config in starting.iter().filter(|c| applied.added.contains(&c.name)) {
            let (index, upstream) = self.upstreams.add(config.clone());
            self.supervise(index, upstream);
        }
        if let Some((index, _)) = removed.first() {
            // Removed upstreams leave the catalog now; clients are told.
            self.rebuild_catalog(*index).await;
        }
        for (index, upstream) in removed {
            let gateway = self.clone();
            tokio::spawn(async move { gateway.drain_and_stop(index, upstream, grace).await });
        }
        applied
    }

    /// Hands a changed upstream's clients over to its new incarnation once that is ready
    /// (or has failed, or its `timeout` passed: the old settings are gone either way), then
    /// drains and stops the old one.
    async fn replace(
        &self,
        old_index: usize,
        old: Arc<Upstream>,
        new_index: usize,
        new: Arc<Upstream>,
        grace: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + new.config.timeout.max(REPLACE_WAIT);
        while matches!(new.status(), Status::Starting) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        old.retire();
        // The clients' subscriptions move to the new incarnation, which subscribes again.
        crate::relay::subscriptions::moved(&self.relay, old_index, new_index);
        self.rebuild_catalog(old_index).await;
        crate::relay::subscriptions::replay(&self.relay, new_index).await;
        self.drain_and_stop(old_index, old, grace).await;
    }

    /// Has the relay merge the catalog again and tell clients what changed, in turn with
    /// the upstreams' own changes.
    async fn rebuild_catalog(&self, upstream: usize) {
        let event = UpstreamEvent::CatalogChanged {
            upstream,
            kinds: Vec::new(),
            announced: false,
        };
        let _ = self.parts.events.send(event).await;
    }

    /// Lets a retired upstream finish the requests it has (at most `grace`), then stops it.
    async fn drain_and_stop(&self, index: usize, upstream: Arc<Upstream>, grace: Duration) {
        if !upstream.drained(grace).await {
            tracing::warn!(upstream = %upstream.name(), in_flight = upstream.in_flight(), grace = ?grace, "Removed upstream still busy after the grace period; stopping it");
        }
        upstream.links.close_all().await;
        let running = lock(&self.supervisors).remove(&index);
        if let Some(running) = running {
            running.stop.cancel();
            let limit = crate::upstream::stdio::STOP_GRACE + Duration::from_secs(2);
            if tokio::time::timeout(limit, running.handle).await.is_err() {
                tracing::warn!(upstream = %upstream.name(), "Removed upstream did not stop in time");
            }
        }
        tracing::info!(upstream = %upstream.name(), "Stopped the upstream removed from the configuration");
    }
}

/// `new` with every setting the running process cannot change set back to its running
/// value, and the names of those that differed.
fn keep_running(old: &Config, mut new: Config) -> (Config, Vec<&'static str>) {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($($field:ident),*) => {$(
            if new.$field != old.$field {
                kept.push(stringify!($field));
                new.$field = old.$field.clone();
            }
        )*};
    }
    keep!(
        listen,
        path,
        separator,
        max_name_length,
        collisions,
        page_size,
        session_idle_timeout,
        seal_key,
        security,
        telemetry,
        metrics,
        tasks,
        connections,
        sessions,
        buffers
    );
    (new, kept)
}

/// Whether the settings applied live, other than the upstreams, are the same.
fn same_settings(old: &Config, new: &Config) -> bool {
    old.auth == new.auth
        && old.policy == new.policy
        && old.rate_limits == new.rate_limits
        && old.audit == new.audit
        && old.shutdown_grace == new.shutdown_grace
        && old.max_body_bytes == new.max_body_bytes
        && old.response_mode == new.response_mode
        && old.resume_window == new.resume_window
        && old.first_event_wait == new.first_event_wait
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Config {
        crate::config::from_yaml_str(yaml, &|_| None).expect("valid config")
    }

    #[test]
    fn settings_that_need_a_restart_keep_their_running_values_and_are_named() {
        let old = parse("listen: 127.0.0.1:8080\npath: /mcp\nupstreams: {}\n");
        let new = parse(
            "listen: 0.0.0.0:9090\npath: /other\npage_size: 7\nshutdown_grace: 3s\nupstreams: {}\n",
        );
        let (kept, names) = keep_running(&old, new);
        // The Host guard's `auto` follows the listen address, so it changed with it.
        assert_eq!(names, ["listen", "path", "page_size", "security"]);
        assert_eq!(kept.listen, old.listen);
        assert_eq!(kept.path, "/mcp");
        assert_eq!(kept.page_size, old.page_size);
        // Applied live, so taken from the new configuration.
        assert_eq!(kept.shutdown_grace, Duration::from_secs(3));
        assert!(!same_settings(&old, &kept));
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        let yaml = "upstreams:\n  a: {command: x}\nrate_limits:\n  global: {rate: 5/s}\n";
        let (kept, names) = keep_running(&parse(yaml), parse(yaml));
        assert!(names.is_empty());
        assert!(same_settings(&parse(yaml), &kept));
    }
}
