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
    #[command(flatten)]
    stores: StoreArgs,
    /// Mirror this hub (e.g. https://huggingface.co): a repository not here is fetched from it
    /// on first request, hash-verified, and then served from here, also while it is down
    /// [also ZOO_UPSTREAM].
    #[arg(long)]
    upstream: Option<String>,
    /// Token for the upstream: its private repositories are mirrored only with one (and stay
    /// private here) [also ZOO_UPSTREAM_TOKEN].
    #[arg(long)]
    upstream_token: Option<String>,
    /// Seconds a mirrored branch or tag is served before the upstream is asked again where it
    /// points [default: 300; also ZOO_UPSTREAM_REFRESH]. Commit ids are never asked again.
    #[arg(long)]
    upstream_refresh: Option<u64>,
    /// Answer downloads of LFS files with a redirect to a presigned URL of the S3 store (valid
    /// 15 minutes) instead of streaming them through this server — for clients that can reach
    /// the store [also ZOO_BLOBS_REDIRECT=true].
    #[arg(long)]
    blobs_redirect: bool,
}

/// Where the hub's metadata and blobs live (the data directory by default).
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// Metadata: sqlite:PATH or postgres://USER@HOST:PORT/DB [default: sqlite:DATA/meta.sqlite;
    /// also ZOO_DATABASE]. Replicas of one hub share a PostgreSQL database.
    #[arg(long)]
    database: Option<String>,
    /// Blobs: file:PATH [default: file:DATA; also ZOO_BLOBS]. Replicas share the folder.
    #[arg(long)]
    blobs: Option<String>,
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
    /// Delete blobs no commit names any more (deleted repositories, replaced files, abandoned
    /// uploads) once older than the grace period; safe while the hub runs.
    Gc {
        #[arg(long, env = "ZOO_DATA")]
        data: PathBuf,
        #[command(flatten)]
        stores: StoreArgs,
        /// Keep unreferenced blobs younger than this: `90s`, `30m`, `1h`, `2d` [default: 1h].
        #[arg(long, default_value = "1h")]
        grace: String,
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Copy a consistent snapshot of the hub — metadata and every blob it names — into DIR
    /// (an earlier backup there is brought up to date: only new blobs are copied); safe while
    /// the hub runs.
    Backup {
        /// The backup folder.
        dir: PathBuf,
        #[arg(long, env = "ZOO_DATA")]
        data: PathBuf,
        #[command(flatten)]
        stores: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Load a backup into a fresh hub (no users, no repositories yet), with any store pair:
    /// blobs first, each hash-verified, then the metadata in one transaction.
    Restore {
        /// The backup folder.
        dir: PathBuf,
        #[arg(long, env = "ZOO_DATA")]
        data: PathBuf,
        #[command(flatten)]
        stores: StoreArgs,
        #[arg(long)]
        json: bool,
    },
}

/// `zoo admin backup|restore`: the stores the flags name, a progress bar, the copy.
fn copy_hub(
    stores: &StoreArgs,
    data: &std::path::Path,
    dir: &std::path::Path,
    what: &str,
    copy: zoo_hub::backup::Copy,
) -> Result<zoo_hub::backup::Summary> {
    let config = stores.config(data);
    let meta = zoo_hub::open_meta(&config)?;
    let blobs = zoo_hub::open_blobs(&config)?;
    let bar = bytes_bar(what);
    let s = copy(meta.as_ref(), blobs.as_ref(), dir, &bar)?;
    bar.finish_and_clear();
    Ok(s)
}

/// A byte-counting progress bar on a terminal (unless HF_HUB_DISABLE_PROGRESS_BARS).
fn bytes_bar(what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() || zoo_client::settings::progress_bars_disabled() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

/// `90s`, `30m`, `1h`, `2d`, or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("`{s}` is not a duration (90s, 30m, 1h, 2d)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => anyhow::bail!("`{s}` is not a duration (90s, 30m, 1h, 2d)"),
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (its name is also its namespace).
    Add {
        name: String,
        #[arg(long, env = "ZOO_DATA")]
        data: PathBuf,
        #[command(flatten)]
        stores: StoreArgs,
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
        #[command(flatten)]
        stores: StoreArgs,
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
    args.stores.apply(&mut config);
    if let Some(u) = args.upstream {
        config.upstream = Some(u.trim_end_matches('/').to_string()).filter(|u| !u.is_empty());
    }
    if let Some(t) = args.upstream_token {
        config.upstream_token = Some(t);
    }
    if let Some(r) = args.upstream_refresh {
        config.upstream_refresh = r;
    }
    if args.blobs_redirect {
        config.blobs_redirect = true;
    }
    let hub = zoo_hub::open(config)
        .with_context(|| format!("opening the hub in {}", args.data.display()))?;
    // Blocking work (file reads of downloads, one chunk per call; handlers on SQLite) needs
    // few threads at once: tokio's default of 512 let 500 concurrent downloads start a
    // thread each, every one keeping its allocator heap (issue 16's load test).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()?;
    runtime.block_on(zoo_hub::serve(hub))?;
    Ok(ExitCode::SUCCESS)
}

impl StoreArgs {
    fn apply(&self, config: &mut zoo_hub::HubConfig) {
        if let Some(d) = &self.database {
            config.database = Some(d.clone());
        }
        if let Some(b) = &self.blobs {
            config.blobs = Some(b.clone());
        }
    }

    /// The stores of `zoo admin`: flags, then ZOO_DATABASE / ZOO_BLOBS, then the data
    /// directory.
    fn config(&self, data: &std::path::Path) -> zoo_hub::HubConfig {
        let mut config = zoo_hub::HubConfig::new(data.to_path_buf());
        config.database = std::env::var("ZOO_DATABASE").ok().filter(|v| !v.is_empty());
        config.blobs = std::env::var("ZOO_BLOBS").ok().filter(|v| !v.is_empty());
        self.apply(&mut config);
        config
    }

    fn meta(&self, data: &std::path::Path) -> Result<std::sync::Arc<dyn MetaStore>> {
        Ok(zoo_hub::open_meta(&self.config(data))?)
    }
}

pub fn admin(command: AdminCommand) -> Result<ExitCode> {
    match command {
        AdminCommand::User {
            command: UserCommand::Add { name, data, stores },
        } => {
            if !zoo_hub::paths::valid_repo_part(&name) {
                anyhow::bail!("`{name}` is not a valid user name: letters, digits, `-`, `_`, `.`");
            }
            let meta = stores.meta(&data)?;
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
                    stores,
                },
        } => {
            let meta = stores.meta(&data)?;
            let token = zoo_hub::auth::new_token();
            meta.add_token(&user, &scope, &zoo_hub::auth::hash_token(&token), &name)
                .with_context(|| format!("creating a token for `{user}` in {}", data.display()))?;
            outln!("{token}");
        }
        AdminCommand::Gc {
            data,
            stores,
            grace,
            dry_run,
            json,
        } => {
            let grace = parse_duration(&grace).context("--grace")?;
            let config = stores.config(&data);
            let meta = zoo_hub::open_meta(&config)?;
            let blobs = zoo_hub::open_blobs(&config)?;
            let report = zoo_hub::gc::collect(meta.as_ref(), blobs.as_ref(), grace, dry_run)
                .context("collecting unreferenced blobs")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                outln!(
                    "{} blobs stored, {} referenced, {} unreferenced but younger than {}s (kept); {} {} ({} bytes){}",
                    report.stored,
                    report.referenced,
                    report.young,
                    grace.as_secs(),
                    if dry_run { "would delete" } else { "deleted" },
                    report.collected.len(),
                    report.bytes,
                    if dry_run { " — dry run" } else { "" }
                );
            }
        }
        AdminCommand::Backup {
            dir,
            data,
            stores,
            json,
        } => {
            let s = copy_hub(&stores, &data, &dir, "backup", zoo_hub::backup::backup)
                .with_context(|| format!("backing up the hub into {}", dir.display()))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                outln!(
                    "backed up {} users, {} repositories, {} commits and {} blobs ({} bytes; {} copied, {} already there, {} no longer named removed) into {}",
                    s.users,
                    s.repos,
                    s.commits,
                    s.blobs,
                    s.bytes,
                    s.copied,
                    s.reused,
                    s.pruned,
                    dir.display()
                );
            }
        }
        AdminCommand::Restore {
            dir,
            data,
            stores,
            json,
        } => {
            let s = copy_hub(&stores, &data, &dir, "restore", zoo_hub::backup::restore)
                .with_context(|| format!("restoring the backup in {}", dir.display()))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                outln!(
                    "restored {} users, {} repositories, {} commits and {} blobs ({} bytes) from {}",
                    s.users,
                    s.repos,
                    s.commits,
                    s.blobs,
                    s.bytes,
                    dir.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
