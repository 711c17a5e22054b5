//! The `manifold` binary: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use manifold::cli::{self, Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command();
    // The demo server speaks MCP on stdout; its logs must stay on stderr and quiet.
    init_logging(cli.log_format, matches!(command, Command::Demo));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("manifold: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match command {
            Command::Serve(args) => cli::serve(args).await.map(|_| true),
            Command::Check(args) => cli::check(&args).map(|_| true),
            Command::Tools(args) => cli::tools(args).await,
            Command::Stdio(args) => cli::stdio(args).await.map(|_| true),
            Command::Demo => manifold::demo::run_stdio()
                .await
                .map(|_| true)
                .map_err(Into::into),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("manifold: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `MANIFOLD_LOG` (or `RUST_LOG`) sets the filter, default `info`.
fn init_logging(format: LogFormat, quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = std::env::var("MANIFOLD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // Colours only for a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
