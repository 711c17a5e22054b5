//! The `manifold` binary: parse the command line, load the configuration, set up logging
//! and trace export, run the command, flush the last spans.

use std::process::ExitCode;

use clap::Parser;
use manifold::cli::{self, Cli, Command};
use manifold::telemetry;

// mimalloc instead of glibc's malloc: a proxied call allocates and frees many small, short-lived
// buffers on several threads, where glibc spent about a quarter of the gateway's instructions
// (docs/performance.md). `manifold::alloc` says why not through the `mimalloc` crate.
#[global_allocator]
static ALLOCATOR: manifold::alloc::Mimalloc = manifold::alloc::Mimalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command();
    // The upstream guard needs no configuration, runtime or logging.
    if let Command::GuardUpstreams { spawn } = command {
        return manifold::upstream::guard::run(spawn);
    }
    // The demo server speaks MCP on stdout; its logs must stay on stderr and quiet.
    let quiet = matches!(command, Command::Demo);
    // `serve` and `stdio` read their configuration first: its `telemetry` section decides
    // whether spans are exported. What loading logs goes through a log-only subscriber.
    let loaded =
        tracing::subscriber::with_default(telemetry::log_only(cli.log_format, quiet), || {
            match &command {
                Command::Serve(args) => cli::load(&args.config, args.listen.clone()).map(Some),
                Command::Stdio(args) => cli::load(args, None).map(Some),
                _ => Ok(None),
            }
        });
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            eprintln!("manifold: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Log lines leave in one write per wake of a worker (see telemetry::stderr).
        .on_thread_park(telemetry::stderr::on_park)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("manifold: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The exporter's batch task runs on the runtime.
    let telemetry = {
        let _runtime = runtime.enter();
        telemetry::init(cli.log_format, quiet, config.as_ref().map(|c| &c.telemetry))
    };
    let outcome = runtime.block_on(async move {
        match (command, config) {
            (Command::Serve(args), Some(config)) => {
                cli::serve_loaded(config, &args).await.map(|_| true)
            }
            (Command::Stdio(_), Some(config)) => cli::stdio_loaded(config).await.map(|_| true),
            (Command::Serve(args), None) => cli::serve(args).await.map(|_| true),
            (Command::Stdio(args), None) => cli::stdio(args).await.map(|_| true),
            (Command::Check(args), _) => cli::check(&args).map(|_| true),
            (Command::Tools(args), _) => cli::tools(args).await,
            (Command::Demo, _) => manifold::demo::run_stdio()
                .await
                .map(|_| true)
                .map_err(Into::into),
            (Command::GuardUpstreams { .. }, _) => Ok(true),
        }
    });
    // After the command, from the main thread, while the runtime still runs the exporter.
    telemetry.shutdown();
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("manifold: {e:#}");
            ExitCode::FAILURE
        }
    }
}
