//! A throwaway `redis-server` for tests: its own loopback port and directory, nothing
//! persisted, stopped when dropped. Shared by the store's unit tests and the integration
//! tests (`tests/tasks_redis.rs` includes this file), so it uses only std and tempfile.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program started; `redis-server` on the PATH unless `REDIS_SERVER` names another.
fn program() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

pub struct RedisServer {
    child: Child,
    pub port: u16,
    password: Option<String>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free port.
    pub fn start() -> RedisServer {
        // Another process may take the port between our probe and the server's bind: try
        // a few.
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(free_port(), None) {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("{last}");
    }

    /// Starts a server on `port`, requiring `password` if one is given.
    pub fn start_on(port: u16, password: Option<&str>) -> RedisServer {
        Self::try_start(port, password).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(port: u16, password: Option<&str>) -> Result<RedisServer, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("redis.log");
        let mut cmd = Command::new(program());
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = password {
            cmd.args(["--requirepass", password]);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): these tests need a real Redis server; `scripts/deps` \
                 installs it (`apt-get install -y redis-server`), or set REDIS_SERVER to its path",
                program()
            )
        });
        let mut server = RedisServer {
            child,
            port,
            password: password.map(str::to_owned),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "redis-server exited ({status}) on port {port}:\n{log}"
                ));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = server.child.kill();
        Err(format!(
            "redis-server did not listen on port {port} within 20 s"
        ))
    }

    /// `redis://[:password@]127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
