//! Reaping orphaned processes when the gateway is a container's init (PID 1).
//!
//! A process whose parent exits is re-parented to PID 1 of its PID namespace (or to the
//! nearest ancestor that made itself a "child subreaper"). When it exits in turn, it stays a
//! zombie until that process waits for it. In a container the gateway is PID 1, and stdio
//! upstreams leave such orphans behind: `npx` starts `node`, a shell wrapper backgrounds a
//! helper, and so on. Without a reaper their zombies pile up until the PID limit is reached.
//!
//! The gateway's own children, the stdio upstream processes, are awaited by tokio's `Child`,
//! which needs their exit status: a blanket `waitpid(-1)` would steal it. So the stdio
//! transport spawns them through [`spawn`], which records their pids while they live, and the
//! reaper only waits for zombies that are children of this process and not recorded. It finds
//! them in `/proc/<pid>/stat` (state `Z`, parent our pid) on every SIGCHLD, and once at start.
//!
//! The reaper runs only where orphans can reach the gateway: when it is PID 1, or when it was
//! made a child subreaper before it started (the attribute survives `execve`). Anywhere else
//! every child of the gateway is its own stdio upstream, and nothing is done.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::{LazyLock, Mutex, MutexGuard};

use tokio::process::{Child, Command};

/// Pids of the children the stdio transport spawned and tokio will wait for.
static SPAWNED: LazyLock<Mutex<HashSet<u32>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

fn spawned() -> MutexGuard<'static, HashSet<u32>> {
    SPAWNED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps a spawned child's pid out of the reaper's reach until dropped; drop it once the
/// child has been waited for.
#[derive(Debug)]
pub struct Registration {
    pid: Option<u32>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            spawned().remove(&pid);
        }
    }
}

/// Spawns `command` and records its pid until the returned [`Registration`] is dropped.
///
/// The record is made under the same lock the reaper holds while it scans, so a child that
/// exits at once is never mistaken for an orphan.
pub fn spawn(command: &mut Command) -> io::Result<(Child, Registration)> {
    let mut registry = spawned();
    let child = command.spawn()?;
    let pid = child.id();
    if let Some(pid) = pid {
        registry.insert(pid);
    }
    Ok((child, Registration { pid }))
}

/// Starts the reaper on the current tokio runtime if orphans can be re-parented to this
/// process (see the module documentation); otherwise does nothing.
pub fn start() {
    #[cfg(target_os = "linux")]
    linux::start();
}

/// What `/proc/<pid>/stat` says about a process: its state letter and its parent's pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: u32,
}

/// Parses the start of `/proc/<pid>/stat`: `pid (comm) state ppid …`. The command name may
/// hold spaces and parentheses, so the fields after it are found from its last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let mut state = fields.next()?.chars();
    let letter = state.next()?;
    if state.next().is_some() {
        return None;
    }
    let ppid = fields.next()?.parse().ok()?;
    Some(Stat {
        state: letter,
        ppid,
    })
}

/// Pids of the zombies under `proc` (a procfs mount) whose parent is `parent`.
pub fn zombie_children(proc: &Path, parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut zombies: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // A process may vanish between the listing and the read: skip it.
            std::fs::read_to_string(proc.join(pid.to_string()).join("stat"))
                .ok()
                .and_then(|line| parse_stat(&line))
                .is_some_and(|s| s.state == 'Z' && s.ppid == parent)
        })
        .collect();
    zombies.sort_unstable();
    zombies
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::Path;

    use rustix::process::{Pid, WaitOptions, getpid, waitpid};
    use tokio::signal::unix::{SignalKind, signal};

    pub fn start() {
        let me = getpid();
        let subreaper = rustix::process::child_subreaper()
            .map(|p| p.is_some())
            .unwrap_or(false);
        if !me.is_init() && !subreaper {
            return;
        }
        let mut sigchld = match signal(SignalKind::child()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot watch SIGCHLD: orphaned processes will not be reaped");
                return;
            }
        };
        let me = me.as_raw_nonzero().get().unsigned_abs();
        tracing::info!(
            pid = me,
            "Reaping orphaned processes (the gateway is their init)"
        );
        tokio::spawn(async move {
            loop {
                reap(me);
                if sigchld.recv().await.is_none() {
                    return;
                }
            }
        });
    }

    /// Waits for every zombie child of `me` that the stdio transport did not spawn.
    fn reap(me: u32) {
        let registry = super::spawned();
        for pid in super::zombie_children(Path::new("/proc"), me) {
            if registry.contains(&pid) {
                continue;
            }
            let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
                continue;
            };
            match waitpid(Some(raw), WaitOptions::NOHANG) {
                Ok(Some((_, status))) => {
                    tracing::debug!(pid, ?status, "Reaped an orphaned process")
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(pid, error = %e, "Could not reap a zombie"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_state_and_parent() {
        let line = "4242 (node) Z 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'Z',
                ppid: 1
            })
        );
        let line = "7 (sleep) S 3 7 7 0 -1 4194304";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                ppid: 3
            })
        );
    }

    #[test]
    fn command_names_with_spaces_and_parentheses_do_not_shift_the_fields() {
        let line = "99 (a) Z 5 (b)) R 12 99 99 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'R',
                ppid: 12
            })
        );
    }

    #[test]
    fn malformed_lines_are_refused() {
        for line in [
            "",
            "12 sleep S 1",
            "12 (sleep)",
            "12 (sleep) S",
            "12 (x) SZ 1",
            "1 (x) Z -",
        ] {
            assert_eq!(parse_stat(line), None, "{line:?}");
        }
    }

    #[test]
    fn finds_only_zombies_of_the_given_parent() {
        let proc = tempfile::tempdir().expect("tempdir");
        let write = |pid: &str, stat: &str| {
            let dir = proc.path().join(pid);
            std::fs::create_dir(&dir).expect("mkdir");
            std::fs::write(dir.join("stat"), stat).expect("write stat");
        };
        write("1", "1 (manifold) S 0 1 1 0");
        write("20", "20 (node) Z 1 20 20 0");
        write("21", "21 (node) Z 7 21 21 0");
        write("22", "22 (sh) S 1 22 22 0");
        write("3", "3 (my (odd) name) Z 1 3 3 0");
        write("self", "1 (manifold) S 0 1 1 0");
        std::fs::create_dir(proc.path().join("30")).expect("mkdir without stat");
        write("31", "garbage");
        assert_eq!(zombie_children(proc.path(), 1), vec![3, 20]);
        assert_eq!(zombie_children(proc.path(), 7), vec![21]);
        assert!(zombie_children(&proc.path().join("missing"), 1).is_empty());
    }

    #[tokio::test]
    async fn spawned_children_are_recorded_until_the_registration_drops() {
        let (mut child, registration) =
            spawn(Command::new("true").kill_on_drop(true)).expect("spawn true");
        let pid = child.id().expect("pid");
        assert!(spawned().contains(&pid));
        let status = child.wait().await.expect("wait");
        assert!(status.success(), "tokio kept the exit status: {status}");
        drop(registration);
        assert!(!spawned().contains(&pid));
    }
}
