//! No process outlives the gateway: what a stdio upstream starts (a shell's background job,
//! the server under `sh -c "...; true"`) is stopped with it on SIGTERM, killed with it when
//! the gateway itself is killed, and killed when the upstream is restarted.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    Gateway, Mcp, WAIT, children_of, cmdline, fixture_bin, is_running, signal, wait_for,
};

/// A `sleep` duration no other test (of this run, or of another build on the machine) uses,
/// so the process can be found by its command line.
fn marker(k: u64) -> u64 {
    1_000_000 + u64::from(std::process::id()) * 10 + k
}

/// Live processes whose command line is exactly `line`.
fn processes(line: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| is_running(p) && cmdline(p) == line)
        .collect()
}

/// YAML for a stdio upstream run by `sh -c SCRIPT`; `FIXTURE` in the script is the fixture.
fn shell_upstream(name: &str, script: &str) -> String {
    // Handshake era only: one process per upstream (a dual-era one gets two sessions).
    let fixture = format!("{} --protocol handshake", fixture_bin().display());
    let script = script.replace("FIXTURE", &fixture);
    format!("  {name}:\n    command: \"sh\"\n    args: [\"-c\", {script:?}]\n")
}

fn wait_until_gone(pids: &[u32], what: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while pids.iter().any(|&p| is_running(p)) {
        if Instant::now() > deadline {
            let alive: Vec<String> = pids
                .iter()
                .filter(|&&p| is_running(p))
                .map(|&p| format!("{p} ({})", cmdline(p)))
                .collect();
            panic!("{what} still running: {alive:?}; log:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) for exactly one live process with command line `line`.
fn the_process(line: &str, log: impl Fn() -> String) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let [pid] = processes(line)[..] {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no single '{line}' process: {:?}; log:\n{}",
            processes(line),
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_what_an_upstream_started() {
    let helper = format!("sleep {}", marker(1));
    let yaml = format!(
        "upstreams:\n{}",
        // The npx/uvx shape: the server runs under a shell that outlives it.
        shell_upstream(
            "wrapped",
            &format!("{helper} & FIXTURE --name wrapped; true")
        )
    );
    let mut gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let sleeper = the_process(&helper, || gw.log());
    let shell = children_of(gw.pid().expect("pid"));
    assert_eq!(shell.len(), 1, "one upstream process: {shell:?}");

    let status = gw.stop().expect("exit status");
    assert!(status.success(), "{status}; log:\n{}", gw.log());
    wait_until_gone(&[sleeper], "the upstream's background job", || gw.log());
    wait_until_gone(&shell, "the upstream's shell", || gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_takes_its_upstreams_and_their_children_along() {
    let helper = format!("sleep {}", marker(2));
    let after = format!("sleep {}", marker(3));
    let yaml = format!(
        "upstreams:\n{}",
        // Ignores SIGTERM, keeps a background job, and outlives its server's end of input.
        shell_upstream(
            "stubborn",
            &format!("trap '' TERM; {helper} & FIXTURE --name stubborn; {after}")
        )
    );
    let mut gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let gateway = gw.pid().expect("pid");
    let shell = children_of(gateway);
    assert_eq!(shell.len(), 1, "one upstream process: {shell:?}");
    let sleeper = the_process(&helper, || gw.log());

    signal(gateway, "KILL");
    let _ = gw.stop(); // reaps the gateway
    wait_until_gone(&shell, "the upstream's shell", || gw.log());
    wait_until_gone(&[sleeper], "the upstream's background job", || gw.log());
    // What the shell would run once the server ends must not be running either.
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        assert!(processes(&after).is_empty(), "'{after}' runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_kills_the_old_process_group() {
    let helper = format!("sleep {}", marker(4));
    let yaml = format!(
        "upstreams:\n{}",
        shell_upstream("alpha", &format!("{helper} & exec FIXTURE --name alpha"))
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let old = the_process(&helper, || gw.log());
    let client = Mcp::connect(&gw.url).await;
    let crash = client
        .call("alpha__crash", json!({}))
        .await
        .expect_err("the crash call gets no answer");
    assert_eq!(crash["code"], json!(-32010), "{crash}");

    wait_until_gone(&[old], "the crashed upstream's background job", || gw.log());
    // The upstream is back, with a background job of its own.
    wait_for(WAIT, "alpha to be restarted", || async {
        match client.call("alpha__whoami", json!({})).await {
            Ok(r) if r["isError"] != json!(true) => Some(()),
            _ => None,
        }
    })
    .await;
    let new = the_process(&helper, || gw.log());
    assert_ne!(new, old);
}
