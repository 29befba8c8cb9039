//! The `tessera` binary: parse the command line, load and validate settings, run one command.

use std::process::ExitCode;

use clap::Parser;
use tessera::config::{Config, ConfigError};
use tessera::telemetry;

mod cli;

/// mimalloc: a request allocates and frees many small buffers (headers, forms, JSON, SQL
/// rows); glibc's malloc spent about 8% of the server's CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            // One line naming the setting; logging is not set up yet.
            eprintln!("tessera: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log);
    match cli.command.run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        // A setting found wanting only once the command is known: the same one line as above.
        Err(error) if error.downcast_ref::<ConfigError>().is_some() => {
            eprintln!("tessera: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "tessera stopped with an error"
            );
            ExitCode::FAILURE
        }
    }
}
