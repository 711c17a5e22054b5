//! Process groups of stdio upstreams, and the guard that kills them if the gateway dies.
//!
//! Every stdio upstream runs in a process group of its own (`process_group(0)`: its pid is
//! the group's id), so the gateway can signal the server *and everything it started*: the
//! `python` under `sh -c "python server.py; true"`, the `node` under `npx`, a helper left in
//! the background. The transport kills the group once the server's own process has exited
//! (a crash, a restart, a stop), and kills it outright when the server outlives its stop
//! grace. See `stdio.rs`.
//!
//! That covers every way the gateway stops *itself*. When it is killed (SIGKILL, the OOM
//! killer), nothing of it runs any more, so a second process does the cleanup: the *guard*,
//! `manifold guard-upstreams`, started once by the `serve`, `stdio` and `tools` commands. It
//! reads the gateway's process groups from a pipe (`+PGID` when one starts, `-PGID` when it
//! is gone) and, when the pipe ends, which happens exactly when the gateway's process is
//! gone however it ended, sends SIGKILL to every group still listed and exits.
//!
//! Why not a parent-death signal (`prctl(PR_SET_PDEATHSIG)`) on each upstream: it must be
//! set in the child between `fork` and `exec` (unsafe `pre_exec`, and the crate forbids
//! `unsafe`), or by a launcher that sets it on itself and then execs the server. Either way
//! it reaches only the server's own process, not its children, it fires when the *thread*
//! that spawned the child exits (so it ties upstreams to whichever runtime thread happened to
//! start them), and a launcher re-execed per upstream costs a process image per spawn. The
//! guard reaches whole groups, needs no `unsafe`, and is one process per gateway.
//!
//! The guard is detached: the gateway starts `guard-upstreams --spawn`, which starts the real
//! guard in a process group of its own (so a terminal's Ctrl-C, meant for the gateway, which
//! stops its upstreams gracefully, does not kill it first) and exits at once. The guard is
//! then nobody's child but init's (or a subreaper's), and the gateway's children remain its
//! upstreams alone.
//!
//! Limits, written down: a group created and lost in the instant between `spawn` and the `+`
//! line (the gateway killed in between) is not covered; a process that leaves its group
//! (`setsid`, `setpgid`), as daemons do, leaves the gateway's reach; so does one killed
//! guard, of which the gateway is told only at its next write (then it logs a warning).

use std::io::{BufRead, Write};
use std::process::{ChildStdin, Command, ExitCode, Stdio};
use std::sync::{Mutex, MutexGuard};

/// The hidden subcommand that runs the guard.
pub const SUBCOMMAND: &str = "guard-upstreams";

/// The pipe to the guard; `None` before [`start`] and after the guard went away.
static GUARD: Mutex<Option<ChildStdin>> = Mutex::new(None);

fn guard() -> MutexGuard<'static, Option<ChildStdin>> {
    GUARD.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the guard for this process's stdio upstreams. Called by the commands that run
/// upstreams, before the first one starts; without it (the gateway run in-process, as the
/// tests do) upstream groups are still killed on every stop, only not after a SIGKILL.
pub fn start() {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot find the manifold executable; upstream processes may outlive a killed gateway");
            return;
        }
    };
    let spawned = Command::new(exe)
        .args([SUBCOMMAND, "--spawn"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn();
    let mut launcher = match spawned {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot start the upstream guard; upstream processes may outlive a killed gateway");
            return;
        }
    };
    // The launcher only starts the guard, handing it the pipe, and exits.
    let stdin = launcher.stdin.take();
    match launcher.wait() {
        Ok(status) if status.success() => *guard() = stdin,
        Ok(status) => {
            tracing::warn!(%status, "The upstream guard did not start; upstream processes may outlive a killed gateway")
        }
        Err(e) => tracing::warn!(error = %e, "Cannot wait for the upstream guard's launcher"),
    }
}

/// Tells the guard that process group `pgid` is the gateway's.
pub fn watch(pgid: u32) {
    send(&format!("+{pgid}\n"));
}

/// Tells the guard that process group `pgid` is gone.
pub fn forget(pgid: u32) {
    send(&format!("-{pgid}\n"));
}

fn send(line: &str) {
    let mut guard = guard();
    let Some(pipe) = guard.as_mut() else { return };
    if let Err(e) = pipe.write_all(line.as_bytes()) {
        tracing::warn!(error = %e, "The upstream guard is gone; upstream processes may outlive a killed gateway");
        *guard = None;
    }
}

/// How many times the guard signals each group once the gateway is gone.
const KILL_ROUNDS: usize = 3;

/// Sends SIGKILL to process group `pgid`; a group already gone is not an error.
pub fn kill_group(pgid: u32) {
    // 0 would be our own group, 1 init's: never a stdio upstream's.
    if pgid <= 1 {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The `guard-upstreams` subcommand: with `--spawn`, start the detached guard and exit;
/// without, be the guard (stdin: the gateway's pipe).
pub fn run(spawn: bool) -> ExitCode {
    if spawn {
        let Ok(exe) = std::env::current_exe() else {
            return ExitCode::FAILURE;
        };
        // stdin (the gateway's pipe) is inherited; stdout and stderr too.
        #[cfg(unix)]
        let detached = {
            use std::os::unix::process::CommandExt;
            Command::new(exe).arg(SUBCOMMAND).process_group(0).spawn()
        };
        #[cfg(not(unix))]
        let detached = Command::new(exe).arg(SUBCOMMAND).spawn();
        return match detached {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("manifold: cannot start the upstream guard: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut groups = std::collections::BTreeSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match (
            line.get(..1),
            line.get(1..).and_then(|n| n.parse::<u32>().ok()),
        ) {
            (Some("+"), Some(pgid)) if pgid > 1 => {
                groups.insert(pgid);
            }
            (Some("-"), Some(pgid)) => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    // The gateway is gone. A process its group forked while the first signal went round (a
    // shell starting its next command as its server ends) is caught by a later one.
    for _ in 0..KILL_ROUNDS {
        for pgid in &groups {
            kill_group(*pgid);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ExitCode::SUCCESS
}
