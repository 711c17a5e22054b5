//! A benchmark's child process (an upstream, a gateway, HAProxy), stopped when dropped:
//! SIGTERM, up to 5 s to exit, then SIGKILL. Shared by the bench targets (`#[path]`-included
//! beside `stdout.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::stdout;

/// How long a child may take to print its ready line.
const READY_WITHIN: Duration = Duration::from_secs(30);

pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout discarded and stderr to `log`.
    #[allow(dead_code)] // not every bench starts a child it does not wait for
    pub fn start(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        Self::launch(name, cmd.stdout(Stdio::null()), log)
    }

    /// Starts `cmd` (stderr to `log`) and waits for the stdout line starting with `prefix`;
    /// returns the guard and the rest of that line.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path, prefix: &str) -> (Proc, String) {
        let mut proc = Self::launch(name, cmd.stdout(Stdio::piped()), log);
        let out = proc.child.stdout.take().expect("piped stdout");
        match stdout::line_after(out, prefix, READY_WITHIN) {
            Some(rest) => (proc, rest),
            None => panic!(
                "{name} printed no `{prefix}` line within {READY_WITHIN:?}; its log:\n{}",
                std::fs::read_to_string(&proc.log).unwrap_or_default()
            ),
        }
    }

    fn launch(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        // A new file in append mode, so the bench can empty it while the child writes.
        let stderr = std::fs::File::create(log)
            .and_then(|_| std::fs::OpenOptions::new().append(true).open(log))
            .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
        let child = cmd
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, up to 5 s to exit, then SIGKILL; nothing if it has exited already.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("{} ignored SIGTERM for 5 s; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
