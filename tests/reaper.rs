//! Orphan reaping as a container's init: `manifold serve` runs as PID 1 of a fresh PID
//! namespace (`unshare --pid --fork --mount-proc`, as in a container), with a stdio upstream
//! that leaves a process behind (a shell that backgrounds a helper, as `npx` leaves `node`).
//! The helper is re-parented to manifold; when it exits, manifold must wait for it, or it
//! stays a zombie. Meanwhile the upstream itself keeps working, and SIGTERM still stops
//! manifold cleanly with status 0.
//!
//! Needs Linux, root and util-linux's `unshare`; elsewhere the test says so and passes.

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{WAIT, manifold_bin};

/// `(pid, state, comm)` of every process whose parent is `parent`, zombies included.
fn children_with_state(parent: u32) -> Vec<(u32, char, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let mut fields = stat[close + 1..].split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|s| s.parse::<u32>().ok());
        if let (Some(state), Some(ppid)) = (state, ppid)
            && ppid == parent
        {
            found.push((pid, state, comm));
        }
    }
    found
}

/// Polls `check` every 20 ms until it returns `Some`, for at most [`WAIT`].
fn wait_for<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `unshare` and the manifold it runs as PID 1; killed when dropped, so a failing test leaves
/// nothing behind (killing a namespace's init ends every process in it).
struct Namespace {
    unshare: std::process::Child,
}

impl Namespace {
    fn start(config: &std::path::Path, log: &std::path::Path) -> Namespace {
        let unshare = support::hermetic("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(manifold_bin())
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .env("MANIFOLD_LOG", "info,manifold=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("spawn unshare");
        Namespace { unshare }
    }

    /// The host pid of the namespace's PID 1 (the only child of `unshare --fork`).
    fn init(&self) -> Option<u32> {
        children_with_state(self.unshare.id())
            .into_iter()
            .map(|(pid, _, _)| pid)
            .next()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Ok(None) = self.unshare.try_wait() {
            if let Some(init) = self.init() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &init.to_string()])
                    .status();
            }
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}

fn can_run() -> bool {
    if !cfg!(target_os = "linux") {
        eprintln!("skipped: orphan reaping is Linux-only");
        return false;
    }
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if uid != "0" {
        eprintln!("skipped: unshare --pid needs root (uid {uid:?})");
        return false;
    }
    true
}

#[test]
fn an_orphaned_grandchild_is_reaped_when_manifold_is_pid_1() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("go");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    // The upstream shell backgrounds a helper from a subshell that exits at once, so the
    // helper is orphaned; the helper waits for a line on the fifo, then exits. The shell then
    // becomes the demo server, which must stay a working upstream throughout.
    let script = format!(
        "(sh -c 'read line < {fifo}' &); exec {manifold} demo",
        fifo = fifo.display(),
        manifold = manifold_bin().display()
    );
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "upstreams:\n  orphans:\n    command: sh\n    args: [\"-c\", {script:?}]\n",
            script = script
        ),
    )
    .expect("write config");
    let log = dir.path().join("gateway.log");
    let mut ns = Namespace::start(&config, &log);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let stdout = ns.unshare.stdout.take().expect("stdout");
    if support::read_line_with_timeout(stdout, "manifold listening on ").is_none() {
        panic!("manifold did not start under unshare; log:\n{}", read_log());
    }

    // manifold is the only child of `unshare --fork`, and PID 1 in the new namespace.
    let init = wait_for(|| ns.init()).expect("manifold runs under unshare");
    assert!(
        support::cmdline(init).contains("serve"),
        "unexpected child of unshare: {}",
        support::cmdline(init)
    );
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap_or_default();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.trim_end().ends_with("\t1")),
        "manifold is not PID 1 of its namespace:\n{status}"
    );

    // The helper, re-parented to manifold, waits on the fifo. It is told by its whole command
    // line: until it execs the demo server, the upstream itself is an `sh` child of manifold
    // too, and its script names the helper's.
    let helper_cmdline = format!("sh -c read line < {}", fifo.display());
    let is_helper = |pid: u32| support::cmdline(pid) == helper_cmdline;
    let orphan = wait_for(|| {
        children_with_state(init)
            .into_iter()
            .find(|(pid, state, comm)| comm == "sh" && *state != 'Z' && is_helper(*pid))
    })
    .unwrap_or_else(|| {
        panic!(
            "the helper was never re-parented to manifold; its children: {:?}\nlog:\n{}",
            children_with_state(init),
            read_log()
        )
    });
    // Let them exit. A dual-era upstream runs twice, so there are two helpers, and the second
    // may open the fifo only after a first line went: a line goes whenever some helper has it
    // open (a non-blocking open finds no reader otherwise), until none is left.
    use std::os::unix::fs::OpenOptionsExt;
    let helpers_left = || {
        children_with_state(init)
            .iter()
            .any(|(pid, state, comm)| comm == "sh" && *state != 'Z' && is_helper(*pid))
    };
    let mut released = false;
    let reaped = wait_for(|| {
        if helpers_left()
            && let Ok(mut f) = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
        {
            released |= f.write_all(b"go\n").is_ok();
        }
        let children = children_with_state(init);
        (released
            && !children.iter().any(|(pid, _, _)| *pid == orphan.0)
            && !children.iter().any(|(_, state, _)| *state == 'Z'))
        .then_some(())
    });
    assert!(
        reaped.is_some(),
        "zombies left under manifold (pid 1): {:?}\nlog:\n{}",
        children_with_state(init),
        read_log()
    );
    // The upstream itself (the demo server, a registered child) was left to tokio.
    let demo = children_with_state(init);
    assert!(
        demo.iter()
            .any(|(_, state, comm)| comm == "manifold" && *state != 'Z'),
        "the demo upstream is gone: {demo:?}\nlog:\n{}",
        read_log()
    );

    // SIGTERM to PID 1 still drains and exits 0 (PID 1 gets only the signals it handles).
    support::signal(init, "TERM");
    let exit = wait_for(|| ns.unshare.try_wait().ok().flatten());
    let Some(exit) = exit else {
        panic!("manifold did not stop on SIGTERM; log:\n{}", read_log());
    };
    assert!(
        exit.success(),
        "manifold exited with {exit}; log:\n{}",
        read_log()
    );
}

#[test]
fn a_stdio_upstream_keeps_its_exit_status_when_manifold_is_pid_1() {
    if !can_run() {
        return;
    }
    // The reaper must not wait for the gateway's own children: tokio does, and reports how
    // the upstream ended. An upstream that exits with status 3 must be reported as such.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        "upstreams:\n  quits:\n    command: sh\n    args: [\"-c\", \"exit 3\"]\n",
    )
    .expect("write config");
    let log = dir.path().join("gateway.log");
    let mut ns = Namespace::start(&config, &log);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let stdout = ns.unshare.stdout.take().expect("stdout");
    let started = support::read_line_with_timeout(stdout, "manifold listening on ").is_some();
    // The reason the upstream closed is logged after the exit itself: "process exited (…)"
    // with the status tokio waited for, or "process closed its stdout" had the reaper taken it.
    let exited = started
        && wait_for(|| {
            let text = read_log();
            (text.contains("process exited (") || text.contains("process closed its stdout"))
                .then_some(())
        })
        .is_some();
    let text = read_log();
    drop(ns);
    assert!(
        started,
        "manifold did not start under unshare; log:\n{text}"
    );
    assert!(
        exited,
        "why the upstream closed was never logged; log:\n{text}"
    );
    assert!(
        text.contains("process exited (exit status: 3)"),
        "the upstream's exit status was lost; log:\n{text}"
    );
}
