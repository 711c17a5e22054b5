//! The command line: `serve` (the default), `check`, `tools`, `demo`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::aggregate::catalog::Kind;
use crate::config::{self, Config, Overrides};
use crate::protocol::Era;
use crate::telemetry::LogFormat;
use crate::upstream::Upstreams;

#[derive(Debug, Parser)]
#[command(
    name = "manifold",
    version,
    about = "An MCP gateway: one Model Context Protocol endpoint in front of many MCP servers",
    long_about = "Manifold is an MCP gateway. Clients connect to it as to one MCP server; it \
                  connects to the upstream MCP servers named in gateway.yaml (stdio processes \
                  and remote HTTP servers), merges and namespaces their tools, prompts and \
                  resources, and routes every call to the server that owns it.\n\n\
                  Configuration: gateway.yaml, overridden by MANIFOLD_* environment variables \
                  (MANIFOLD_LISTEN, MANIFOLD_PAGE_SIZE, nested keys with __), overridden by flags. \
                  A desktop-client mcpServers JSON file is accepted as well."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "MANIFOLD_LOG_FORMAT")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default when no command is given).
    Serve(ServeArgs),
    /// Validate a configuration file and list every problem; exit status 1 if there are any.
    Check(ConfigArgs),
    /// Start the upstreams, print the merged catalog, and exit.
    Tools(ToolsArgs),
    /// Serve one MCP client on stdin/stdout (for desktop clients that launch servers).
    Stdio(ConfigArgs),
    /// Run the built-in demo MCP server on stdin/stdout (the default gateway.yaml uses it).
    Demo,
    /// Internal: the process that kills stdio upstreams' process groups when the gateway
    /// dies (see `upstream/guard.rs`). Started by the gateway itself.
    #[command(name = "guard-upstreams", hide = true)]
    GuardUpstreams {
        #[arg(long)]
        spawn: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file: gateway.yaml, or a desktop client's mcpServers JSON file.
    #[arg(short, long, default_value = "gateway.yaml", env = "MANIFOLD_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on, HOST:PORT (overrides `listen` in the file). Port 0 picks a free port.
    #[arg(short, long)]
    pub listen: Option<String>,
    /// How often, in seconds, the configuration file is checked for changes, which are
    /// applied without a restart (as on SIGHUP, which always reloads). 0: SIGHUP only.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub watch_interval: f64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ToolsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for upstreams to connect.
    #[arg(long, default_value = "30", value_name = "SECONDS")]
    pub wait: u64,
}

impl Cli {
    /// The command to run, `serve` with defaults when none was given.
    pub fn command(&self) -> Command {
        match &self.command {
            Some(Command::Serve(a)) => Command::Serve(a.clone()),
            Some(Command::Check(a)) => Command::Check(a.clone()),
            Some(Command::Tools(a)) => Command::Tools(a.clone()),
            Some(Command::Stdio(a)) => Command::Stdio(a.clone()),
            Some(Command::Demo) => Command::Demo,
            Some(Command::GuardUpstreams { spawn }) => Command::GuardUpstreams { spawn: *spawn },
            None => Command::Serve(ServeArgs {
                config: ConfigArgs {
                    config: "gateway.yaml".into(),
                },
                listen: None,
                watch_interval: 2.0,
            }),
        }
    }
}

/// Loads the configuration, printing every problem on failure.
pub fn load(args: &ConfigArgs, listen: Option<String>) -> anyhow::Result<Config> {
    config::load(&args.config, &Overrides { listen }).map_err(|errors| {
        anyhow::anyhow!(
            "invalid configuration in {}:\n{errors}",
            args.config.display()
        )
    })
}

/// `manifold serve`: bind, announce the address on stdout (one machine-readable line that
/// scripts and tests wait for), serve until SIGINT or SIGTERM; reload the configuration on
/// SIGHUP and when the file changes.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load(&args.config, args.listen.clone())?;
    serve_loaded(config, &args).await
}

/// [`serve`] with the configuration already loaded (`main` reads it before setting up
/// logging and trace export, which it configures).
pub async fn serve_loaded(config: Config, args: &ServeArgs) -> anyhow::Result<()> {
    // The guard first: its launcher is waited for here, and the reaper would take its exit.
    crate::upstream::guard::start();
    crate::upstream::reaper::start(); // as a container's PID 1, reap orphaned grandchildren
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "Listening beyond loopback: make sure clients are authenticated by something in front of Manifold");
    }
    println!("manifold listening on http://{addr}{}", config.path);
    tracing::info!(%addr, path = %config.path, upstreams = config.upstreams.len(), "Listening");
    let watch = (args.watch_interval > 0.0)
        .then(|| Duration::try_from_secs_f64(args.watch_interval).ok())
        .flatten();
    let reload = crate::serve::Reload {
        path: args.config.config.clone(),
        // A reload keeps `--listen` (which needs a restart anyway), so it is not reported as
        // a change.
        overrides: Overrides {
            listen: args.listen.clone(),
        },
        watch,
    };
    crate::serve::serve_reloading(config, listener, shutdown_signal(), reload).await?;
    Ok(())
}

/// How long `manifold stdio` waits for upstreams before answering its client, so the first
/// `tools/list` is complete (later changes arrive as list_changed).
const STDIO_SETTLE: Duration = Duration::from_secs(10);

/// `manifold stdio`: the gateway as a stdio server, until stdin closes or a signal arrives.
pub async fn stdio(args: ConfigArgs) -> anyhow::Result<()> {
    stdio_loaded(load(&args, None)?).await
}

/// [`stdio`] with the configuration already loaded.
pub async fn stdio_loaded(config: Config) -> anyhow::Result<()> {
    crate::upstream::guard::start();
    let gateway = crate::serve::start_gateway(config);
    gateway.upstreams.settle(STDIO_SETTLE).await;
    let served =
        crate::downstream::stdio::serve(gateway.clone(), tokio::io::stdin(), tokio::io::stdout());
    tokio::select! {
        result = served => result?,
        _ = shutdown_signal() => {}
    }
    gateway.stop_upstreams().await;
    Ok(())
}

/// `manifold check`: exit 0 with a summary, or 1 with every problem.
pub fn check(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = load(args, None)?;
    println!(
        "{}: ok ({} upstreams, listening on {})",
        args.config.display(),
        config.upstreams.len(),
        config.listen
    );
    for u in &config.upstreams {
        let prefix = if u.prefix.is_empty() {
            "(no prefix)".to_owned()
        } else {
            format!("{}{}", u.prefix, config.separator)
        };
        println!("  {:<20} {:<16} {prefix}", u.name, u.transport.kind());
    }
    Ok(())
}

/// `manifold tools`: connect, wait for the upstreams, print the merged catalog. Exits 1 if
/// an upstream could not be reached or names collide, so scripts can use it as a check.
pub async fn tools(args: ToolsArgs) -> anyhow::Result<bool> {
    let config = load(&args.config, None)?;
    crate::upstream::guard::start();
    let gateway = crate::serve::start_gateway(config);
    gateway
        .upstreams
        .settle(Duration::from_secs(args.wait))
        .await;
    // The catalog task rebuilds asynchronously; rebuild here so what is printed is exactly
    // the state the upstreams settled in.
    gateway.upstreams.rebuild();
    let (ready, health) = gateway.readiness();
    let catalog = gateway.upstreams.catalog(Era::Handshake);
    let upstream_name = |i: usize| {
        gateway
            .upstreams
            .get(i)
            .map(|u| u.name().to_owned())
            .unwrap_or_default()
    };
    if args.json {
        let mut out =
            json!({ "upstreams": health["upstreams"], "collisions": health["collisions"] });
        for kind in Kind::ALL {
            let items: Vec<Value> = catalog
                .all(kind)
                .map(|(u, item)| json!({ "upstream": upstream_name(u), "item": item }))
                .collect();
            out[kind.field()] = Value::Array(items);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&gateway.upstreams, &health);
    }
    gateway.stop_upstreams().await;
    Ok(ready)
}

fn print_table(upstreams: &Upstreams, health: &Value) {
    let catalog = upstreams.catalog(Era::Handshake);
    for kind in Kind::ALL {
        let rows: Vec<(usize, &Value)> = catalog.all(kind).collect();
        println!("{} ({})", kind.field(), rows.len());
        for (u, item) in rows {
            let key = item.get(kind.key()).and_then(Value::as_str).unwrap_or("?");
            let desc = item
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            let desc: String = desc.lines().next().unwrap_or("").chars().take(70).collect();
            let upstream = upstreams.get(u);
            let upstream = upstream.as_ref().map_or("?", |u| u.name());
            println!("  {key:<40} {upstream:<16} {desc}");
        }
        println!();
    }
    if let Some(map) = health["upstreams"].as_object() {
        println!("upstreams");
        for (name, state) in map {
            let status = state["status"].as_str().unwrap_or("?");
            let error = state
                .get("error")
                .and_then(Value::as_str)
                .map(|e| format!("  {e}"))
                .unwrap_or_default();
            println!("  {name:<20} {status}{error}");
        }
    }
    if let Some(list) = health["collisions"].as_array().filter(|l| !l.is_empty()) {
        println!("\ncollisions");
        for c in list {
            println!(
                "  {} offered by {} (served by: {})",
                c["name"].as_str().unwrap_or("?"),
                c["upstreams"],
                c["servedBy"].as_str().unwrap_or("nobody")
            );
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
