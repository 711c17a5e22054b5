//! A cluster of real processes on loopback, for tests of what replicas share: one throwaway
//! `redis-server`, N `manifold` processes (the real binary, each on its own free port, the
//! same configuration naming that Redis and the same `seal_key`) and HAProxy in front of
//! them (`mode http`, `balance roundrobin`, no stickiness: every request, even on one
//! keep-alive client connection, goes to the next replica).
//!
//! HAProxy names the replica that answered in the `X-Manifold-Replica` response header
//! (`r0`, `r1`, ...) and the client's source port in `X-Client-Port`, so a test can see both
//! the spreading and that one connection carried it. Its timeouts are long (an hour) so SSE
//! streams and long polls are never cut by the balancer; a replica that stops answering
//! health checks (`GET /readyz`, every 300 ms) is taken out at once, and a request whose
//! connection is refused is sent to another replica (`option redispatch`).
//!
//! Everything stops when the cluster is dropped. Every wait is a bounded loop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::test_redis::{RedisServer, free_port};
use super::{Gateway, WAIT, http_client};

/// The `seal_key` every replica of a cluster shares.
pub const CLUSTER_SEAL_KEY: &str =
    "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// The response header HAProxy adds: which replica answered (`r0`, `r1`, ...).
pub const REPLICA_HEADER: &str = "x-manifold-replica";
/// The response header HAProxy adds: the client connection's source port.
pub const CLIENT_PORT_HEADER: &str = "x-client-port";

/// HAProxy from Debian (`scripts/deps` installs it); `HAPROXY` names another.
fn haproxy_program() -> String {
    std::env::var("HAPROXY").unwrap_or_else(|_| "/usr/sbin/haproxy".into())
}

/// Fields drop in order: the balancer first, then the replicas, then Redis.
pub struct Cluster {
    balancer: Balancer,
    /// The replicas, in HAProxy's order (`r0` is `replicas[0]`). A killed replica stays in
    /// the list (its log can still be read).
    pub replicas: Vec<Gateway>,
    /// `None` while stopped by [`Cluster::stop_redis`].
    redis: Option<RedisServer>,
    redis_port: u16,
    /// The balancer's MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// `http://127.0.0.1:PORT` of the balancer.
    pub base: String,
}

impl Cluster {
    /// Starts Redis, `replicas` gateways serving `yaml` (a gateway configuration without
    /// `redis` and `seal_key`: the cluster adds both) and the balancer; returns once every
    /// replica is ready and the balancer was seen to send consecutive requests of one
    /// connection to different replicas.
    pub async fn start(replicas: usize, yaml: &str) -> Cluster {
        Self::start_with(replicas, |redis_url| {
            format!("redis: {redis_url:?}\nseal_key: {CLUSTER_SEAL_KEY:?}\n{yaml}")
        })
        .await
    }

    /// Like [`Cluster::start`], with the whole configuration written by `config` from the
    /// Redis URL (for a test that sets `redis.timeout` or `prefix`, say). It must name that
    /// Redis and [`CLUSTER_SEAL_KEY`] itself.
    pub async fn start_with(replicas: usize, config: impl Fn(&str) -> String) -> Cluster {
        assert!(replicas > 0, "a cluster needs a replica");
        let redis = RedisServer::start();
        let yaml = config(&redis.url());
        let gateways: Vec<Gateway> = (0..replicas).map(|_| Gateway::start(&yaml)).collect();
        for gw in &gateways {
            gw.wait_ready().await;
        }
        let ports: Vec<u16> = gateways.iter().map(|gw| port_of(&gw.base)).collect();
        let balancer = Balancer::start(&ports);
        let base = format!("http://127.0.0.1:{}", balancer.port);
        let path = &gateways[0].url[gateways[0].base.len()..];
        let cluster = Cluster {
            redis_port: redis.port,
            redis: Some(redis),
            url: format!("{base}{path}"),
            base,
            replicas: gateways,
            balancer,
        };
        cluster.wait_balanced().await;
        cluster
    }

    /// The replica MCP endpoints, in order (straight to one replica, past the balancer).
    pub fn replica_urls(&self) -> Vec<String> {
        self.replicas.iter().map(|gw| gw.url.clone()).collect()
    }

    /// The shared Redis URL.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }

    /// Stops Redis (the replicas keep running and see it gone).
    pub fn stop_redis(&mut self) {
        self.redis = None;
        // Bounded: the port is free again once the old server is gone.
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.redis_port)).is_ok() {
            assert!(Instant::now() < deadline, "redis-server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts Redis again on the same port (empty: nothing was persisted).
    pub fn start_redis(&mut self) {
        assert!(self.redis.is_none(), "redis is running");
        self.redis = Some(RedisServer::start_on(self.redis_port, None));
    }

    /// Kills replica `i` with SIGKILL (no drain, no goodbye) and waits until it is gone;
    /// HAProxy stops sending to it within a health-check interval, and a request whose
    /// connection it refuses meanwhile goes to another replica.
    pub fn kill_replica(&mut self, i: usize) {
        self.replicas[i].kill();
    }

    /// The HAProxy log (its own warnings: servers going down and up).
    pub fn balancer_log(&self) -> String {
        std::fs::read_to_string(&self.balancer.log).unwrap_or_default()
    }

    /// Sends `GET /readyz` through the balancer on one client (one keep-alive connection)
    /// until every replica has answered twice in the rotation; panics (bounded) if the
    /// balancer sticks to one, or if the requests did not share one connection.
    async fn wait_balanced(&self) {
        let http = http_client();
        let n = self.replicas.len();
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let resp = http.get(format!("{}/readyz", self.base)).send().await;
            if let Ok(resp) = resp
                && resp.status() == 200
            {
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                seen.push((
                    header(REPLICA_HEADER).expect("the balancer names the replica"),
                    header(CLIENT_PORT_HEADER).expect("the balancer names the client port"),
                ));
                // A full rotation, twice, on one connection.
                if seen.len() >= 2 * n {
                    let last = &seen[seen.len() - 2 * n..];
                    let one_connection = last.iter().all(|(_, port)| *port == last[0].1);
                    let rotating = (0..n).all(|i| {
                        let name = format!("r{i}");
                        last.iter().filter(|(r, _)| *r == name).count() == 2
                    });
                    if one_connection && rotating {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "the balancer did not spread one connection's requests over all {n} replicas: \
                 {seen:?}\nhaproxy log:\n{}",
                self.balancer_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The replica (`r0` is 0, ...) the balancer sent a request to, from its response headers.
pub fn replica_of(headers: &reqwest::header::HeaderMap) -> Option<usize> {
    headers
        .get(REPLICA_HEADER)?
        .to_str()
        .ok()?
        .strip_prefix('r')?
        .parse()
        .ok()
}

fn port_of(base: &str) -> u16 {
    base.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {base}"))
}

/// The HAProxy process.
struct Balancer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(ports: &[u16]) -> Balancer {
        // Another process may take the probed port before HAProxy binds it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(free_port(), ports) {
                Ok(balancer) => return balancer,
                Err(e) => last = e,
            }
        }
        panic!("{last}");
    }

    fn config(port: u16, ports: &[u16]) -> String {
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!("    server r{i} 127.0.0.1:{p} check inter 300ms fall 1 rise 1\n")
            })
            .collect();
        format!(
            "global\n\
             \x20   maxconn 4096\n\
             defaults\n\
             \x20   mode http\n\
             \x20   timeout connect 2s\n\
             \x20   timeout client 1h\n\
             \x20   timeout server 1h\n\
             \x20   timeout tunnel 1h\n\
             \x20   timeout http-keep-alive 1h\n\
             \x20   retries 2\n\
             \x20   option redispatch 1\n\
             frontend clients\n\
             \x20   bind 127.0.0.1:{port}\n\
             \x20   default_backend replicas\n\
             backend replicas\n\
             \x20   balance roundrobin\n\
             \x20   option httpchk GET /readyz\n\
             \x20   http-response set-header X-Manifold-Replica %s\n\
             \x20   http-response set-header X-Client-Port %[src_port]\n\
             {servers}"
        )
    }

    fn try_start(port: u16, ports: &[u16]) -> Result<Balancer, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, Self::config(port, ports)).expect("write haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let log_file = std::fs::File::create(&log).expect("haproxy log");
        let mut child = Command::new(haproxy_program())
            .arg("-f")
            .arg(&config)
            // Foreground, logs to stderr.
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): cluster tests need HAProxy; `scripts/deps` installs it \
                     (`apt-get install -y haproxy`), or set HAPROXY to its path",
                    haproxy_program()
                )
            });
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "haproxy exited ({status}) on port {port}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Balancer {
                    child,
                    port,
                    log,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "haproxy did not listen on port {port} within {WAIT:?}"
        ))
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
