//! `zoo serve` and `zoo admin`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use zoo_hub::meta::MetaStore;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory: SQLite metadata and the blob store (created if missing).
    #[arg(long, env = "ZOO_DATA")]
    data: PathBuf,
    /// Address to listen on [default: 127.0.0.1:8080, or `addr` in the config file]
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// TOML configuration file [default: DATA/zoo.toml when present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// The URL clients reach the server at (for absolute links); default: each request's Host.
    #[arg(long)]
    public_url: Option<String>,
    /// Accept pickles whose scan verdict is `dangerous` (they are still never unpickled here).
    #[arg(long)]
    allow_dangerous_pickles: bool,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Access tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (its name is also its namespace).
    Add {
        name: String,
        #[arg(long, env = "ZOO_DATA")]
        data: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, value_parser = ["read", "write"])]
        scope: String,
        /// A name to recognise the token by.
        #[arg(long, default_value = "zoo")]
        name: String,
        #[arg(long, env = "ZOO_DATA")]
        data: PathBuf,
    },
}

pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let mut config = zoo_hub::HubConfig::new(args.data.clone());
    let file = match &args.config {
        Some(path) => Some(path.clone()),
        None => Some(args.data.join("zoo.toml")).filter(|p| p.exists()),
    };
    let file_config = match file {
        Some(path) => zoo_hub::config::FileConfig::load(&path)?,
        None => zoo_hub::config::FileConfig::default(),
    };
    file_config.apply(&mut config)?;
    if let Some(addr) = args.addr {
        config.addr = addr;
    }
    if let Some(url) = args.public_url {
        config.public_url = Some(url.trim_end_matches('/').to_string());
    }
    if args.allow_dangerous_pickles {
        config.allow_dangerous_pickles = true;
    }
    let hub = zoo_hub::open(config)
        .with_context(|| format!("opening the hub in {}", args.data.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(zoo_hub::serve(hub))?;
    Ok(ExitCode::SUCCESS)
}

pub fn admin(command: AdminCommand) -> Result<ExitCode> {
    match command {
        AdminCommand::User {
            command: UserCommand::Add { name, data },
        } => {
            if !zoo_hub::paths::valid_repo_part(&name) {
                anyhow::bail!("`{name}` is not a valid user name: letters, digits, `-`, `_`, `.`");
            }
            let meta = zoo_hub::open_meta(&data)?;
            meta.add_user(&name)
                .with_context(|| format!("adding user `{name}` in {}", data.display()))?;
            outln!("added user {name}");
        }
        AdminCommand::Token {
            command:
                TokenCommand::Create {
                    user,
                    scope,
                    name,
                    data,
                },
        } => {
            let meta = zoo_hub::open_meta(&data)?;
            let token = zoo_hub::auth::new_token();
            meta.add_token(&user, &scope, &zoo_hub::auth::hash_token(&token), &name)
                .with_context(|| format!("creating a token for `{user}` in {}", data.display()))?;
            outln!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
