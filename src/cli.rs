//! The command line: `serve`, `migrate` (admin commands follow). Uses: tessera (the library), anyhow.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tessera::clock::SystemClock;
use tessera::config::Config;
use tessera::domain::KeyRing;
use tessera::server::{Server, key_policy, load_master_key};
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
    /// Signing keys: list, rotate, revoke (acts on the database; running servers follow within a second).
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List every key with its state.
    List,
    /// Promote the next key to signing, retire the active one, publish a new next key.
    Rotate {
        /// Rotate even if the next key was published less than TESSERA_JWKS_MAX_AGE ago
        /// (verifiers with a cached JWKS may then meet an unknown kid).
        #[arg(long)]
        force: bool,
    },
    /// Revoke a compromised key: out of the JWKS at once, its tokens inactive.
    Revoke {
        /// The key's kid.
        kid: String,
    },
}

impl Command {
    pub async fn run(self, config: Config) -> anyhow::Result<()> {
        match self {
            Self::Serve => serve(config).await,
            Self::Migrate => migrate(config).await,
            Self::Keys(command) => command.run(config).await,
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    config.require_master_key()?;
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

impl KeysCommand {
    async fn run(self, config: Config) -> anyhow::Result<()> {
        config.require_master_key()?;
        let policy = key_policy(&config);
        let master_key = Arc::new(load_master_key(config.master_key)?);
        let store = store::connect(&config.database).await?;
        if config.migrate {
            store.migrate().await?;
        }
        let issuer = config
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        let keys = KeyRing::start(
            Arc::clone(&store),
            Arc::new(SystemClock),
            master_key,
            policy,
            issuer,
        )
        .await?;
        let result = match self {
            Self::List => {
                println!(
                    "{:<44} {:<6} {:<8} {:<26} ACTIVATED / RETIRED / REVOKED",
                    "KID", "ALG", "STATE", "CREATED"
                );
                for key in &keys.snapshot().keys {
                    let when = |t: Option<time::OffsetDateTime>| t.map_or("-".to_owned(), rfc3339);
                    println!(
                        "{:<44} {:<6} {:<8} {:<26} {} / {} / {}",
                        key.kid,
                        key.alg,
                        key.state,
                        rfc3339(key.created_at),
                        when(key.activated_at),
                        when(key.retired_at),
                        when(key.revoked_at)
                    );
                }
                Ok(())
            }
            Self::Rotate { force } => keys.rotate(force).await.map(|kid| {
                println!("Rotated: {kid} now signs; the previous key is retired.");
            }),
            Self::Revoke { kid } => keys.revoke(&kid).await.map(|previous| {
                println!(
                    "Revoked {kid} (was {}); it has left the JWKS.",
                    previous.as_str()
                );
            }),
        };
        store.close().await;
        Ok(result?)
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
