//! What sets off a configuration reload: SIGHUP, and a change of the file's content.
//!
//! The file is read again every `interval` and compared with what was last loaded, so an
//! edit in place, an editor's write-and-rename and the symlink swap a Kubernetes ConfigMap
//! update makes (`..data` pointing at a new directory) are all seen. A new configuration is
//! loaded and validated like the first one; an invalid one is refused whole, with every
//! problem logged, and the running one keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Overrides;
use crate::gateway::{Gateway, Reloaded};

/// Where a reload reads the configuration from, and how often the file is looked at.
pub struct Reload {
    pub path: PathBuf,
    pub overrides: Overrides,
    /// `None`: reload on SIGHUP only.
    pub watch: Option<Duration>,
}

/// Reloads on SIGHUP and on each change of the file, until the gateway shuts down.
pub async fn watch(gateway: Arc<Gateway>, reload: Reload) {
    let mut hangup = hangups();
    let mut seen = std::fs::read(&reload.path).ok();
    let mut tick = tokio::time::interval(reload.watch.unwrap_or(Duration::from_secs(3600)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let cause = tokio::select! {
            _ = hangup.recv() => "SIGHUP",
            _ = tick.tick(), if reload.watch.is_some() => {
                // Unreadable for a moment (a swap in progress): look again next time.
                let Ok(now) = std::fs::read(&reload.path) else { continue };
                if seen.as_deref() == Some(now.as_slice()) {
                    continue;
                }
                "the file changed"
            }
            _ = gateway.shutdown.cancelled() => return,
        };
        seen = std::fs::read(&reload.path).ok();
        let outcome = match crate::config::load(&reload.path, &reload.overrides) {
            Ok(config) => Reloaded::Applied(gateway.reload(config).await),
            Err(errors) => Reloaded::Refused(errors.to_string()),
        };
        report(&gateway, &reload, cause, outcome);
    }
}

fn report(gateway: &Gateway, reload: &Reload, cause: &str, outcome: Reloaded) {
    let file = reload.path.display();
    match outcome {
        Reloaded::Applied(applied) => {
            gateway.metrics.reloaded("applied");
            for setting in &applied.need_restart {
                tracing::warn!(%file, setting, "Changed setting needs a restart to take effect; keeping the running value");
            }
            tracing::info!(
                %file,
                cause,
                added = ?applied.added,
                removed = ?applied.removed,
                changed = ?applied.changed,
                unchanged = applied.unchanged.len(),
                settings_changed = applied.settings,
                "Configuration reloaded"
            );
        }
        Reloaded::Refused(errors) => {
            gateway.metrics.reloaded("refused");
            for problem in errors.lines().filter(|l| !l.trim().is_empty()) {
                tracing::error!(%file, problem = problem.trim(), "Invalid configuration");
            }
            tracing::error!(%file, cause, "Configuration reload refused; the running configuration keeps serving");
        }
    }
}

/// SIGHUP as a stream of wake-ups; never fires where there is no such signal.
#[cfg(unix)]
struct Hangups(Option<tokio::signal::unix::Signal>);
#[cfg(not(unix))]
struct Hangups;

#[cfg(unix)]
fn hangups() -> Hangups {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Hangups(Some(signal)),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot listen for SIGHUP; reloads follow the file only");
            Hangups(None)
        }
    }
}

#[cfg(not(unix))]
fn hangups() -> Hangups {
    Hangups
}

impl Hangups {
    #[cfg(unix)]
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) {
        std::future::pending().await
    }
}
