//! The command line: `serve`, `migrate` (admin commands follow). Uses: tessera (the library), anyhow.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tessera::clock::SystemClock;
use tessera::config::Config;
use tessera::server::Server;
use tessera::{http, store};

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: a standalone token issuer and authorization server"
)]
pub struct Cli {
    /// A TOML settings file, read after config/default.toml; TESSERA_* variables override both.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (migrating the database first unless TESSERA_MIGRATE=false).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

impl Command {
    pub async fn run(self, config: Config) -> anyhow::Result<()> {
        match self {
            Self::Serve => serve(config).await,
            Self::Migrate => migrate(config).await,
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = http::shutdown_signal().context("cannot install signal handlers")?;
    let server = Server::build(config, Arc::new(SystemClock)).await?;
    let url = format!("http://{}", server.local_addr());
    tracing::info!(%url, "Tessera is listening");
    println!("Tessera is listening on {url}");
    server.run(shutdown).await.context("server error")?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = store::connect(&config.database).await?;
    let result = store.migrate().await;
    store.close().await;
    result?;
    println!("Migrations applied ({}).", store.backend().as_str());
    Ok(())
}
