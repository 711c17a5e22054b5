//! Configuration reload on a running gateway, with the real binary: a changed file (or
//! SIGHUP) adds, replaces and removes upstreams while a client keeps its session and a call
//! in flight on an unchanged upstream finishes; pipeline settings swap; a bad file is refused
//! and the old configuration keeps serving; a Kubernetes ConfigMap's symlink swap is seen.
//!
//! The unchanged upstream is the TypeScript reference server (server-everything, from
//! `.interop/`, installed by `scripts/interop --install-only`), the others the fixture.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::{
    Gateway, WAIT, children_of, cmdline, everything_upstream, is_running, stdio_fixture,
};
use support::{Mcp, wait_for};

/// Replaces the file's content in one step (write beside, rename over), as editors and
/// deployment tools do.
fn rewrite(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).expect("write config");
    std::fs::rename(&next, path).expect("rename config");
}

/// The gateway's child processes whose command line contains `needle`.
fn processes(gateway: u32, needle: &str) -> Vec<u32> {
    let mut found: Vec<u32> = children_of(gateway)
        .into_iter()
        .filter(|&p| cmdline(p).contains(needle))
        .collect();
    found.sort_unstable();
    found
}

async fn tool_names(mcp: &Mcp) -> Vec<String> {
    mcp.list_keys("tools/list", "tools", "name").await
}

fn start(yaml: &str, args: &[&str]) -> (Gateway, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let gw = Gateway::start_args(dir, &config, &[], args);
    (gw, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_adds_replaces_and_removes_upstreams_while_the_client_keeps_its_session() {
    let everything = everything_upstream();
    let before = format!(
        "upstreams:\n{everything}{}{}",
        stdio_fixture("alpha", &[]),
        stdio_fixture("beta", &[])
    );
    let (gw, config) = start(&before, &["--watch-interval", "0.2"]);
    gw.wait_ready().await;
    let pid = gw.pid().expect("gateway pid");
    let node = processes(pid, "server-everything");
    let alpha = processes(pid, "--name alpha");
    let beta = processes(pid, "--name beta");
    assert!(!node.is_empty() && !alpha.is_empty() && !beta.is_empty());

    let mcp = Mcp::connect(&gw.url).await;
    let mut stream = mcp.open_stream().await.expect("GET stream");
    let tools = tool_names(&mcp).await;
    assert!(tools.contains(&"beta__whoami".to_owned()), "{tools:?}");

    // A call in flight on the upstream the reload leaves alone.
    let slow = {
        let mcp = mcp.same_session();
        tokio::spawn(async move {
            mcp.call(
                "everything__trigger-long-running-operation",
                json!({"duration": 2, "steps": 2}),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // alpha changes (an argument), beta goes, gamma comes, everything stays.
    let after = format!(
        "upstreams:\n{everything}{}{}",
        stdio_fixture("alpha", &["--era-tools"]),
        stdio_fixture("gamma", &[])
    );
    rewrite(&config, &after);

    let changed = stream
        .next_matching(WAIT, |m| m["method"] == "notifications/tools/list_changed")
        .await;
    assert!(
        changed.is_some(),
        "no tools/list_changed; log:\n{}",
        gw.log()
    );
    let tools = wait_for(WAIT, "the reloaded catalog", || async {
        let tools = tool_names(&mcp).await;
        let done = tools.contains(&"gamma__whoami".to_owned())
            && tools.contains(&"alpha__era_handshake".to_owned())
            && !tools.iter().any(|t| t.starts_with("beta__"));
        done.then_some(tools)
    })
    .await;
    assert!(tools.contains(&"everything__echo".to_owned()), "{tools:?}");

    // The call in flight on the untouched upstream finished normally.
    let result = slow
        .await
        .expect("slow call task")
        .expect("slow call result");
    let text = support::first_text(&result);
    assert!(
        text.contains("Long running operation completed"),
        "{result}"
    );

    // The same session, with no new initialize, reaches old, new and changed upstreams.
    assert_eq!(mcp.call_text("gamma__whoami", json!({})).await, "gamma");
    assert_eq!(mcp.call_text("alpha__whoami", json!({})).await, "alpha");
    let echoed = mcp
        .call_text("everything__echo", json!({"message": "still here"}))
        .await;
    assert!(echoed.contains("still here"), "{echoed}");
    let gone = mcp
        .call("beta__whoami", json!({}))
        .await
        .expect_err("beta was removed");
    assert!(gone.to_string().contains("beta__whoami"), "{gone}");

    // Processes: everything's untouched, alpha's replaced, beta's stopped, gamma's started.
    assert_eq!(processes(pid, "server-everything"), node);
    wait_for(WAIT, "the old processes to stop", || async {
        let stopped = alpha.iter().chain(&beta).all(|&p| !is_running(p));
        stopped.then_some(())
    })
    .await;
    let new_alpha = processes(pid, "--name alpha");
    assert!(!new_alpha.is_empty() && new_alpha.iter().all(|p| !alpha.contains(p)));
    assert!(processes(pid, "--name beta").is_empty());
    assert!(!processes(pid, "--name gamma").is_empty());

    let (status, ready) = gw.readyz().await;
    assert_eq!(status, 200, "{ready}");
    let mut names: Vec<&String> = ready["upstreams"]
        .as_object()
        .expect("upstreams")
        .keys()
        .collect();
    names.sort();
    assert_eq!(names, ["alpha", "everything", "gamma"]);
    assert_eq!(
        gw.metric("manifold_config_reloads_total{result=\"applied\"}")
            .await,
        Some(1.0)
    );
    let log = gw.log();
    assert!(log.contains("Configuration reloaded"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_is_refused_with_every_problem_and_the_old_configuration_keeps_serving() {
    let yaml = format!("upstreams:\n{}", stdio_fixture("alpha", &[]));
    let (gw, config) = start(&yaml, &["--watch-interval", "0.2"]);
    gw.wait_ready().await;
    let mcp = Mcp::connect(&gw.url).await;

    let bad = format!(
        "upstreams:\n{}  broken:\n    url: \"not a url\"\nshutdown_grace: soon\n",
        stdio_fixture("alpha", &[])
    );
    rewrite(&config, &bad);
    wait_for(WAIT, "the refusal", || async {
        let refused = gw
            .metric("manifold_config_reloads_total{result=\"refused\"}")
            .await;
        (refused == Some(1.0)).then_some(())
    })
    .await;
    // Each problem is logged before the refusal, by the same task.
    let log = gw.log_with("Configuration reload refused").await;
    assert!(log.contains("shutdown_grace"), "{log}");
    assert!(log.contains("upstreams.broken.url"), "{log}");

    // Nothing changed: the session, the catalog and readiness are as before.
    assert_eq!(mcp.call_text("alpha__whoami", json!({})).await, "alpha");
    assert!(
        !tool_names(&mcp)
            .await
            .iter()
            .any(|t| t.starts_with("broken"))
    );
    assert_eq!(gw.readyz().await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_policy_and_names_settings_that_need_a_restart() {
    let yaml = format!("upstreams:\n{}", stdio_fixture("alpha", &[]));
    // No file watching: only the signal reloads.
    let (gw, config) = start(&yaml, &["--watch-interval", "0"]);
    gw.wait_ready().await;
    let mcp = Mcp::connect(&gw.url).await;
    assert_eq!(mcp.call_text("alpha__whoami", json!({})).await, "alpha");

    let denied = format!(
        "{yaml}separator: \"--\"\npolicy:\n  rules:\n    - effect: deny\n      tools: [whoami]\n"
    );
    std::fs::write(&config, denied).expect("write config");
    // Without the signal nothing happens.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mcp.call_text("alpha__whoami", json!({})).await, "alpha");

    support::signal(gw.pid().expect("pid"), "HUP");
    // A denied tool is neither listed nor callable.
    let error = wait_for(WAIT, "the new policy", || async {
        mcp.call("alpha__whoami", json!({})).await.err()
    })
    .await;
    assert_eq!(error["code"], -32602, "{error}");
    assert!(!tool_names(&mcp).await.contains(&"alpha__whoami".to_owned()));
    // The separator needs a restart: names keep their form, and the log says why.
    assert!(
        mcp.call("alpha__echo", json!({"message": "x"}))
            .await
            .is_ok()
    );
    // The policy takes effect inside the reload; what needs a restart is logged after it,
    // before the line that ends the reload.
    let log = gw.log_with("Configuration reloaded").await;
    assert!(
        log.contains("needs a restart") && log.contains("separator"),
        "{log}"
    );
    assert!(log.contains("cause=\"SIGHUP\""), "{log}");
}

/// The layout a Kubernetes ConfigMap volume has: `gateway.yaml -> ..data/gateway.yaml`, and
/// an update points `..data` at a new directory in one rename.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_swap_is_reloaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let write_version = |name: &str, yaml: &str| {
        std::fs::create_dir(root.join(name)).expect("version dir");
        std::fs::write(root.join(name).join("gateway.yaml"), yaml).expect("write");
    };
    let first = format!("upstreams:\n{}", stdio_fixture("alpha", &[]));
    write_version("..v1", &first);
    std::os::unix::fs::symlink("..v1", root.join("..data")).expect("..data");
    std::os::unix::fs::symlink("..data/gateway.yaml", root.join("gateway.yaml")).expect("link");
    let config = root.join("gateway.yaml");
    let gw = Gateway::start_args(dir, &config, &[], &["--watch-interval", "0.2"]);
    gw.wait_ready().await;
    let mcp = Mcp::connect(&gw.url).await;

    let root = gw.dir.path();
    let second = format!("{first}{}", stdio_fixture("beta", &[]));
    std::fs::create_dir(root.join("..v2")).expect("v2");
    std::fs::write(root.join("..v2/gateway.yaml"), second).expect("write v2");
    std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).expect("tmp link");
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap");
    std::fs::remove_dir_all(root.join("..v1")).expect("old version");

    let text = wait_for(WAIT, "beta after the swap", || async {
        mcp.call("beta__whoami", json!({}))
            .await
            .ok()
            .map(|r| support::first_text(&r))
    })
    .await;
    assert_eq!(text, "beta");
    let ready: Value = gw.wait_ready().await;
    assert_eq!(ready["upstreams"]["beta"]["status"], "ready");
}
