//! The command line: `serve`, `migrate`, and the admin commands, which act on the database directly (running servers follow through the change feed). Uses: tessera (the library), anyhow.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tessera::clock::SystemClock;
use tessera::config::{Config, MasterKeySource};
use tessera::crypto::MasterKey;
use tessera::domain::Issuer;
use tessera::domain::admin::{NewClient, NewSecret, UserChange};
use tessera::domain::keys::rotate_master_key;
use tessera::model::{Client, Role, User};
use tessera::server::{self, Server};
use tessera::store;

/// The actor the audit log names for changes made on the command line. The space keeps it
/// from ever equalling a client id, so no rule about a client acting on itself applies to it.
const CLI_ACTOR: &str = "tessera command";

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
    /// Signing keys: list, rotate, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Clients: create, show, rotate-secret.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Users: create, disable, enable, set roles.
    #[command(subcommand)]
    User(UserCommand),
    /// Roles (named scope sets): put, list, delete.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Revoke everything of a subject (or username), client or session, or a signing key (running servers
    /// follow within a second).
    Revoke(RevokeArgs),
    /// The master key: rotate.
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Re-encrypt every signing key and the master-key check under a new master key, in one
    /// transaction (docs/operations.md, "Runbook: master-key rotation").
    Rotate {
        /// A file holding the new key (base64 of 32 bytes, `openssl rand -base64 32`); never on
        /// the command line, where `ps` would show it.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// Offboarding: every session and access token of this exact subject (a user id).
    #[arg(long)]
    subject: Option<String>,
    /// Offboarding by username: as --subject with that user's id.
    #[arg(long)]
    username: Option<String>,
    /// Everything issued to this client.
    #[arg(long)]
    client: Option<String>,
    /// One session (a `sid`).
    #[arg(long)]
    session: Option<String>,
    /// Signing-key compromise: the key leaves the JWKS, its tokens turn inactive.
    #[arg(long)]
    kid: Option<String>,
    /// With --subject, --username or --client: also disable the user or client.
    #[arg(long)]
    disable: bool,
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

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; a confidential client's secret is printed once.
    Create {
        /// The client id (generated when omitted).
        #[arg(long = "id")]
        client_id: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// authorization_code, client_credentials, password or refresh_token (repeatable).
        #[arg(long = "grant", required = true)]
        grant_types: Vec<String>,
        /// An allowed scope (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// An allowed audience (repeatable; the first is the default).
        #[arg(long = "audience", required = true)]
        audiences: Vec<String>,
        /// A public client (no secret).
        #[arg(long)]
        public: bool,
        /// May use the admin API and revoke anything.
        #[arg(long)]
        admin: bool,
        /// May introspect tokens.
        #[arg(long)]
        introspect: bool,
        /// Seconds this client's secret lives (default: TESSERA_CLIENT_SECRET_MAX_AGE).
        #[arg(long)]
        secret_max_age: Option<i64>,
        /// Where /authorize may send the browser back (repeatable; at least one with the
        /// authorization_code grant).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Skips the consent page (a client of the operator's own).
        #[arg(long)]
        first_party: bool,
    },
    /// Show a client (never its secret), with its secret's age and its use.
    Show { client_id: String },
    /// Replace a client's secret; the new one is printed once. The old one stops working at
    /// once, or after --previous-valid-for seconds (at most 604800).
    RotateSecret {
        client_id: String,
        /// Seconds the old secret keeps working beside the new one (0 to 604800).
        #[arg(long, default_value_t = 0)]
        previous_valid_for: i64,
        /// Seconds this client's secrets live from now on (default: unchanged).
        #[arg(long)]
        secret_max_age: Option<i64>,
    },
    /// Disable a client: it can no longer authenticate.
    Disable { client_id: String },
    /// Enable a client again.
    Enable { client_id: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from the first line of standard input.
    Create {
        username: String,
        /// A role to give the user (repeatable); without one, the user holds no scope.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// Disable a user (by username) and revoke every session.
    Disable { username: String },
    /// Enable a user (by username) again.
    Enable { username: String },
    /// Replace the roles of a user (by id); scopes it loses are cut off from its tokens at once.
    Roles {
        /// The user's id (the token `sub`).
        id: String,
        /// The roles it holds from now on (none: no scope at all).
        roles: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create or replace a role; scopes it no longer grants are cut off at once.
    Put {
        name: String,
        /// A scope of the role (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List the roles.
    List,
    /// Delete a role: its holders lose it.
    Delete { name: String },
}

impl Command {
    pub async fn run(self, config: Config) -> anyhow::Result<()> {
        match self {
            Self::Serve => serve(config).await,
            Self::Migrate => migrate(config).await,
            Self::Keys(command) => with_issuer(config, |issuer| command.run(issuer)).await,
            Self::Client(command) => with_issuer(config, |issuer| command.run(issuer)).await,
            Self::User(command) => with_issuer(config, |issuer| command.run(issuer)).await,
            Self::Role(command) => with_issuer(config, |issuer| command.run(issuer)).await,
            Self::Revoke(args) => with_issuer(config, |issuer| args.run(issuer)).await,
            Self::MasterKey(command) => command.run(config).await,
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    config.require_master_key()?;
    let shutdown = server::shutdown_signal().context("cannot install signal handlers")?;
    let mut server = Server::build(config, Arc::new(SystemClock)).await?;
    let url = format!("http://{}", server.local_addr());
    tracing::info!(%url, "Tessera is listening");
    // A closed standard output (a supervisor that stopped reading) must not stop the server.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "Tessera is listening on {url}");
    if let Some((client_id, secret)) = server.take_generated_admin() {
        // The only time a secret is ever printed: standard output, never the log.
        let _ = writeln!(
            out,
            "Created the admin client (shown once; store the secret now):\n  client_id:     {client_id}\n  client_secret: {}",
            secret.expose()
        );
    }
    let _ = out.flush();
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

/// Opens the database and the key ring as the server does, runs one admin command, closes.
async fn with_issuer<F, Fut>(mut config: Config, command: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Issuer>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    config.require_master_key()?;
    let (issuer, store) = server::open(&mut config, Arc::new(SystemClock)).await?;
    let result = command(issuer).await;
    store.close().await;
    result
}

impl MasterKeyCommand {
    async fn run(self, mut config: Config) -> anyhow::Result<()> {
        let Self::Rotate { new_key_file } = self;
        config.require_master_key()?;
        let new = MasterKey::read_file(&new_key_file).context("the new master key")?;
        let source = std::mem::replace(&mut config.master_key, MasterKeySource::Required);
        let current =
            server::load_master_key(source)?.with_previous(config.master_key_previous.take());
        let store = store::connect(&config.database).await?;
        let result = rotate_master_key(&*store, &current, &new).await;
        store.close().await;
        let keys = result?;
        println!(
            "Re-encrypted {keys} signing keys and the master-key check under the new master key.\n\
             Every instance needs it as its master key from now on; remove\n\
             TESSERA_MASTER_KEY_PREVIOUS once all run with it (\"Runbook: master-key rotation\")."
        );
        Ok(())
    }
}

impl KeysCommand {
    async fn run(self, issuer: Arc<Issuer>) -> anyhow::Result<()> {
        let keys = issuer.keys();
        match self {
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
            }
            Self::Rotate { force } => {
                let kid = issuer.rotate_keys(CLI_ACTOR, force, None).await?;
                println!("Rotated: {kid} now signs; the previous key is retired.");
            }
            Self::Revoke { kid } => {
                // As `tessera revoke --kid`: audited, and a fresh key takes over if needed.
                let selector = tessera::domain::revoke::Selector::Kid(kid.clone());
                issuer
                    .revoke_selector(CLI_ACTOR, selector, false, None)
                    .await?;
                println!("Revoked {kid}; it has left the JWKS.");
            }
        }
        Ok(())
    }
}

impl ClientCommand {
    async fn run(self, issuer: Arc<Issuer>) -> anyhow::Result<()> {
        match self {
            Self::Create {
                client_id,
                name,
                grant_types,
                scopes,
                audiences,
                public,
                admin,
                introspect,
                secret_max_age,
                redirect_uris,
                first_party,
            } => {
                let (client, secret) = issuer
                    .create_client(
                        CLI_ACTOR,
                        NewClient {
                            client_id,
                            name,
                            grant_types,
                            scopes,
                            audiences,
                            public,
                            admin,
                            introspect,
                            secret_max_age,
                            redirect_uris,
                            first_party,
                        },
                        None,
                    )
                    .await?;
                print_client(&client);
                if let Some(secret) = secret {
                    println!("client_secret: {}  (shown once)", secret.expose());
                }
            }
            Self::Show { client_id } => {
                let details = issuer.client_details(&client_id).await?;
                print_client(&details.client);
                let time = |t: Option<time::OffsetDateTime>| t.map_or("-".into(), rfc3339);
                println!(
                    "secret_created_at: {}",
                    time(details.client.secret_created_at)
                );
                println!("secret_expires_at: {}", time(details.secret_expires_at));
                println!("last_used_at:  {}", time(details.usage.last_used_at));
                for scope in &details.client.scopes {
                    let last = details.usage.scope_last_issued(scope);
                    println!("scope_usage:   {scope} {}", time(last));
                }
            }
            Self::Disable { client_id } => print_client(
                &issuer
                    .set_client_disabled(CLI_ACTOR, &client_id, true, None)
                    .await?,
            ),
            Self::Enable { client_id } => print_client(
                &issuer
                    .set_client_disabled(CLI_ACTOR, &client_id, false, None)
                    .await?,
            ),
            Self::RotateSecret {
                client_id,
                previous_valid_for,
                secret_max_age,
            } => {
                let request = NewSecret {
                    previous_valid_for,
                    secret_max_age,
                };
                let secret = issuer
                    .rotate_client_secret(CLI_ACTOR, &client_id, request, None)
                    .await?;
                let old = match previous_valid_for {
                    0 => "the old secret no longer works".to_owned(),
                    s => format!("the old secret works for {s} more seconds at most"),
                };
                println!("client_id:     {client_id}");
                println!("client_secret: {}  (shown once; {old})", secret.expose());
            }
        }
        Ok(())
    }
}

impl UserCommand {
    async fn run(self, issuer: Arc<Issuer>) -> anyhow::Result<()> {
        match self {
            Self::Create { username, roles } => {
                let mut password = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut password)
                    .context("cannot read the password from standard input")?;
                let password = password.trim_end_matches(['\r', '\n']);
                print_user(
                    &issuer
                        .create_user(CLI_ACTOR, &username, password, &roles, None)
                        .await?,
                );
                println!("roles:    {}", roles.join(" "));
            }
            Self::Disable { username } => {
                let user = issuer.user_by_name(&username).await?;
                print_user(
                    &issuer
                        .update_user(
                            CLI_ACTOR,
                            &user.user_id.to_string(),
                            UserChange {
                                disabled: Some(true),
                                ..UserChange::default()
                            },
                            None,
                        )
                        .await?,
                );
            }
            Self::Enable { username } => {
                let user = issuer.user_by_name(&username).await?;
                print_user(
                    &issuer
                        .update_user(
                            CLI_ACTOR,
                            &user.user_id.to_string(),
                            UserChange {
                                disabled: Some(false),
                                ..UserChange::default()
                            },
                            None,
                        )
                        .await?,
                );
            }
            Self::Roles { id, roles } => {
                let user = issuer
                    .update_user(
                        CLI_ACTOR,
                        &id,
                        UserChange {
                            roles: Some(&roles),
                            ..UserChange::default()
                        },
                        None,
                    )
                    .await?;
                print_user(&user);
                let held = issuer.user_roles(user.user_id).await?;
                println!("roles:    {}", held.join(" "));
            }
        }
        Ok(())
    }
}

impl RoleCommand {
    async fn run(self, issuer: Arc<Issuer>) -> anyhow::Result<()> {
        match self {
            Self::Put {
                name,
                scopes,
                description,
            } => {
                let (role, created) = issuer
                    .put_role(CLI_ACTOR, &name, &scopes, description.as_deref(), None)
                    .await?;
                println!(
                    "{} {}",
                    if created { "created" } else { "replaced" },
                    role.name
                );
                print_role(&role);
            }
            Self::List => {
                for role in issuer.roles().await? {
                    print_role(&role);
                }
            }
            Self::Delete { name } => {
                issuer.delete_role(CLI_ACTOR, &name, None).await?;
                println!("deleted {name}");
            }
        }
        Ok(())
    }
}

fn print_role(role: &Role) {
    println!("{}\t{}", role.name, role.scopes.join(" "));
}

impl RevokeArgs {
    async fn run(self, issuer: Arc<Issuer>) -> anyhow::Result<()> {
        use tessera::domain::revoke::Selector;
        let mut chosen: Vec<Selector> = [
            self.subject.map(Selector::Subject),
            self.username.map(Selector::Username),
            self.client.map(Selector::ClientId),
            self.session.map(Selector::SessionId),
            self.kid.map(Selector::Kid),
        ]
        .into_iter()
        .flatten()
        .collect();
        let (Some(selector), true) = (chosen.pop(), chosen.is_empty()) else {
            anyhow::bail!("give exactly one of --subject, --username, --client, --session, --kid");
        };
        let summary = issuer
            .revoke_selector(CLI_ACTOR, selector, self.disable, None)
            .await?;
        println!("{}", serde_json::to_string(&summary)?);
        Ok(())
    }
}

fn print_client(client: &Client) {
    let grants: Vec<_> = client.grant_types.iter().map(|g| g.as_str()).collect();
    println!("client_id:     {}", client.client_id);
    println!("public:        {}", client.is_public());
    println!("grant_types:   {}", grants.join(" "));
    println!("scopes:        {}", client.scopes.join(" "));
    println!("audiences:     {}", client.audiences.join(" "));
    println!("admin:         {}", client.is_admin);
    println!("introspect:    {}", client.can_introspect);
    println!("redirect_uris: {}", client.redirect_uris.join(" "));
    println!("first_party:   {}", client.first_party);
    println!("disabled:      {}", client.disabled);
}

fn print_user(user: &User) {
    println!("id:       {}", user.user_id);
    println!("username: {}", user.username);
    println!("disabled: {}", user.disabled);
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
