//! `zoo pull`/`download`, `search`, `info`, `push`/`upload`, `auth`, `repo`, `cache`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use zoo_client::download::{PullOptions, plan, pull};
use zoo_client::push::{PushOptions, create_repo, push};
use zoo_client::settings::{Overrides, TokenSource};
use zoo_client::{Client, RepoId, RepoType, Settings};

/// Where the Hub is and who we are (as the Hugging Face tools find them).
#[derive(Debug, Args, Clone)]
pub struct HubArgs {
    /// Hub URL [default: $HF_ENDPOINT, else https://huggingface.co]
    #[arg(long, global = true)]
    endpoint: Option<String>,
    /// Access token [default: $HF_TOKEN, else $HF_HOME/token]
    #[arg(long, global = true, hide_env_values = true)]
    token: Option<String>,
    /// No network: serve from the cache only (also HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    offline: bool,
    /// The cache folder [default: $HF_HUB_CACHE, else $HF_HOME/hub].
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// No progress bars (also HF_HUB_DISABLE_PROGRESS_BARS=1).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

impl HubArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            endpoint: self.endpoint.clone(),
            token: self.token.clone(),
            offline: self.offline,
            cache_dir: self.cache_dir.clone(),
        }
    }
    pub fn settings(&self) -> Settings {
        Settings::resolve(&self.overrides())
    }
    fn client(&self) -> Client {
        Client::new(self.settings())
    }
    pub fn progress(&self) -> bool {
        !self.quiet
            && !zoo_client::settings::progress_bars_disabled()
            && std::io::stderr().is_terminal()
    }
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// org/name[@revision]
    repo: String,
    /// The repository is a data set.
    #[arg(long)]
    dataset: bool,
    /// Files downloaded at once.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    #[command(flatten)]
    fetch: FetchArgs,
}

/// What pull and download share: which files, where else they go, how hard to try.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Only files matching these globs.
    #[arg(long)]
    include: Vec<String>,
    /// Leave out files matching these globs.
    #[arg(long)]
    exclude: Vec<String>,
    /// Also copy the files into this folder.
    #[arg(long)]
    local_dir: Option<PathBuf>,
    /// Attempts per file after a network error (each resumes where the last stopped).
    #[arg(long, default_value_t = 5)]
    retries: usize,
    /// Files at least this large (bytes) are fetched as parallel byte ranges.
    #[arg(long, default_value_t = 256 << 20)]
    range_threshold: u64,
    /// List what would be downloaded (and what the cache has already); download nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Text in the repository id.
    text: Option<String>,
    #[arg(long)]
    task: Option<String>,
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long)]
    license: Option<String>,
    #[arg(long)]
    library: Option<String>,
    #[arg(long)]
    author: Option<String>,
    /// Extra `filter` values (e.g. `metric:top-1>=0.7`, `base_model:org/name`).
    #[arg(long)]
    filter: Vec<String>,
    /// downloads | likes | updated | params | a metric name (top-1, accuracy, ...)
    #[arg(long)]
    sort: Option<String>,
    /// Ascending (default: descending).
    #[arg(long)]
    asc: bool,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// org/name[@revision]
    repo: String,
    #[arg(long)]
    dataset: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    dir: PathBuf,
    /// org/name
    repo: String,
    #[arg(long)]
    private: bool,
    #[arg(long)]
    branch: Option<String>,
    #[arg(long, short)]
    message: Option<String>,
    #[arg(long)]
    dataset: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

/// `model` or `dataset`, as `--repo-type` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RepoTypeArg {
    Model,
    Dataset,
}

/// `zoo download`, in the `hf` CLI's words: `hf download REPO [FILES...]`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// org/name[@revision], or an hf:// URI (hf://datasets/org/name@rev).
    repo: String,
    /// Only these files (paths in the repository; globs work too).
    files: Vec<String>,
    /// A branch, tag or commit (also `REPO@REVISION`).
    #[arg(long)]
    revision: Option<String>,
    #[arg(long, value_enum, default_value = "model")]
    repo_type: RepoTypeArg,
    /// Files downloaded at once.
    #[arg(long, default_value_t = 8)]
    max_workers: usize,
    #[command(flatten)]
    fetch: FetchArgs,
}

/// `zoo upload`, in the `hf` CLI's words: `hf upload REPO [LOCAL_PATH] [PATH_IN_REPO]`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// org/name, or an hf:// URI.
    repo: String,
    /// The folder or file to upload [default: .].
    local_path: Option<PathBuf>,
    /// Where in the repository: a folder for a folder, the file's path for a file
    /// [default: the root, or the file's name].
    path_in_repo: Option<String>,
    /// The branch to commit to.
    #[arg(long)]
    revision: Option<String>,
    #[arg(long, value_enum, default_value = "model")]
    repo_type: RepoTypeArg,
    #[arg(long)]
    private: bool,
    /// Only local files matching these globs.
    #[arg(long)]
    include: Vec<String>,
    /// Leave out local files matching these globs.
    #[arg(long)]
    exclude: Vec<String>,
    /// Delete the repository's files (under PATH_IN_REPO) matching these globs that are not
    /// being uploaded, in the same commit.
    #[arg(long)]
    delete: Vec<String>,
    /// Show what would be uploaded and deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    commit_message: Option<String>,
    #[arg(long)]
    commit_description: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

pub fn run_download(a: DownloadArgs) -> Result<ExitCode> {
    let (repo, rev) = RepoId::parse_uri(&a.repo, repo_kind(a.repo_type))?;
    let revision = match (rev, a.revision) {
        (Some(x), Some(y)) if x != y => {
            bail!(
                "{}: two revisions given ({x} in the id, --revision {y})",
                a.repo
            )
        }
        (x, y) => x.or(y),
    };
    let mut fetch = a.fetch;
    fetch.include.extend(a.files);
    run_pull(PullArgs {
        repo: match &revision {
            Some(r) => format!("{}@{r}", repo.id),
            None => repo.id.clone(),
        },
        dataset: repo.kind == RepoType::Dataset,
        jobs: a.max_workers,
        fetch,
    })
}

pub fn run_upload(a: UploadArgs) -> Result<ExitCode> {
    let (repo, rev) = RepoId::parse_uri(&a.repo, repo_kind(a.repo_type))?;
    let message = match (a.commit_message, a.commit_description) {
        (Some(m), Some(d)) => Some(format!("{m}\n\n{d}")),
        (None, Some(d)) => Some(format!("Upload with zoo\n\n{d}")),
        (m, None) => m,
    };
    let opts = PushOptions {
        private: a.private,
        branch: a.revision.or(rev),
        message,
        progress: a.hub.progress(),
        path_in_repo: a.path_in_repo,
        include: a.include,
        exclude: a.exclude,
        delete: a.delete,
        dry_run: a.dry_run,
    };
    let dir = a.local_path.unwrap_or_else(|| PathBuf::from("."));
    push_and_report(&a.hub, &dir, &repo, &opts, a.json)
}

fn repo_kind(t: RepoTypeArg) -> RepoType {
    match t {
        RepoTypeArg::Model => RepoType::Model,
        RepoTypeArg::Dataset => RepoType::Dataset,
    }
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Print who and where as JSON (whoami).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

/// `zoo auth`: the `hf auth` commands.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Check a token and save it for this endpoint (prompted for, hidden, when not given
    /// with --token): huggingface.co's in $HF_TOKEN_PATH (as `hf auth login`), any other
    /// hub's under its own name in `stored_tokens`, so the two never overwrite each other.
    Login(LoginArgs),
    /// Forget this endpoint's saved token.
    Logout(LoginArgs),
    /// Who the token belongs to, on which hub, and where the token came from.
    Whoami(LoginArgs),
}

/// `zoo repo`: the `hf repo` commands.
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a repository (a model unless --repo-type dataset).
    Create {
        /// org/name, or an hf:// URI.
        repo: String,
        #[arg(long, value_enum, default_value = "model")]
        repo_type: RepoTypeArg,
        #[arg(long)]
        private: bool,
        /// No error when it exists already.
        #[arg(long)]
        exist_ok: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Sizes per repository and revision.
    Ls {
        #[arg(long)]
        json: bool,
        /// The cache folder [default: $HF_HUB_CACHE, else $HF_HOME/hub].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Re-hash every blob; exit 1 when any is corrupt (unless --repair fixed it).
    Verify {
        /// Fetch corrupt blobs again.
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Remove unreferenced snapshots and blobs, and unfinished downloads.
    Prune {
        /// Keep only the newest snapshot of each repository (what `refs/main` points to).
        #[arg(long)]
        keep_latest: bool,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Remove repositories from the cache.
    Rm {
        /// org/name, or hf:// URIs.
        #[arg(required = true)]
        repos: Vec<String>,
        #[arg(long)]
        dataset: bool,
        #[command(flatten)]
        confirm: Confirm,
    },
}

/// How a deleting cache command is confirmed.
#[derive(Debug, Args)]
pub struct Confirm {
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove without asking (needed when standard input is not a terminal).
    #[arg(long, short)]
    yes: bool,
    #[arg(long)]
    json: bool,
    /// The cache folder [default: $HF_HUB_CACHE, else $HF_HOME/hub].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// Asks before deleting: yes with `--yes`, a y/N question on a terminal, an error otherwise.
fn confirmed(question: &str, yes: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question}: pass --yes to confirm (or --dry-run to only list it)");
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn kind(dataset: bool) -> RepoType {
    if dataset {
        RepoType::Dataset
    } else {
        RepoType::Model
    }
}

pub fn run_pull(a: PullArgs) -> Result<ExitCode> {
    let f = a.fetch;
    let client = f.hub.client();
    let (repo, revision) = RepoId::parse(&a.repo, kind(a.dataset))?;
    let opts = PullOptions {
        revision,
        include: f.include,
        exclude: f.exclude,
        local_dir: f.local_dir,
        jobs: a.jobs,
        retries: f.retries,
        range_threshold: f.range_threshold,
        progress: f.hub.progress(),
    };
    if f.dry_run {
        let plan = plan(&client, &repo, &opts).with_context(|| format!("listing {}", a.repo))?;
        if f.json {
            outln!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            outln!("{:>10}  {:<7} FILE", "SIZE", "CACHED");
            for p in &plan.files {
                outln!(
                    "{:>10}  {:<7} {}",
                    crate::inspect::human_bytes(p.size),
                    if p.cached { "yes" } else { "no" },
                    p.path
                );
            }
            outln!(
                "{} @ {}: {} files, {} to download (dry run: nothing downloaded)",
                plan.repo,
                plan.commit,
                plan.files.len(),
                crate::inspect::human_bytes(plan.to_download)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let pulled = pull(&client, &repo, &opts).with_context(|| format!("pulling {}", a.repo))?;
    if f.json {
        outln!("{}", serde_json::to_string_pretty(&pulled)?);
    } else {
        outln!(
            "{}",
            pulled
                .local_dir
                .as_ref()
                .unwrap_or(&pulled.snapshot)
                .display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_search(a: &SearchArgs) -> Result<ExitCode> {
    let client = a.hub.client();
    let mut q: Vec<(String, String)> = Vec::new();
    if let Some(t) = &a.text {
        q.push(("search".into(), t.clone()));
    }
    if let Some(t) = &a.task {
        q.push(("pipeline_tag".into(), t.clone()));
    }
    if let Some(d) = &a.dataset {
        q.push(("filter".into(), format!("dataset:{d}")));
    }
    if let Some(l) = &a.license {
        q.push(("filter".into(), format!("license:{l}")));
    }
    if let Some(l) = &a.library {
        q.push(("filter".into(), l.clone()));
    }
    if let Some(au) = &a.author {
        q.push(("author".into(), au.clone()));
    }
    for f in &a.filter {
        q.push(("filter".into(), f.clone()));
    }
    if let Some(s) = &a.sort {
        let s = match s.as_str() {
            "downloads" | "likes" | "params" => s.clone(),
            "updated" => "lastModified".into(),
            metric => format!("metric:{metric}"),
        };
        q.push(("sort".into(), s));
        q.push(("direction".into(), if a.asc { "1" } else { "-1" }.into()));
    }
    q.push(("cardData".into(), "true".into()));
    let items = client.search(RepoType::Model, &q, a.limit)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    let metric = a
        .sort
        .as_deref()
        .filter(|s| !matches!(*s, "downloads" | "likes" | "params" | "updated"));
    outln!(
        "{:<40} {:<24} {:>12} {:>10} {:>10}",
        "MODEL",
        "TASK",
        "PARAMS",
        metric.unwrap_or("TOP-1"),
        "DOWNLOADS"
    );
    for m in &items {
        let key = metric.unwrap_or("top-1").to_ascii_lowercase();
        let value = m
            .pointer("/zoo/metrics")
            .and_then(|x| x.get(&key))
            .and_then(Value::as_f64)
            .map(|v| format!("{v}"))
            .unwrap_or("-".into());
        let params = m
            .pointer("/safetensors/total")
            .and_then(Value::as_u64)
            .map(human_params)
            .unwrap_or("-".into());
        outln!(
            "{:<40} {:<24} {:>12} {:>10} {:>10}",
            m["id"].as_str().unwrap_or(""),
            m["pipeline_tag"].as_str().unwrap_or("-"),
            params,
            value,
            m["downloads"].as_u64().unwrap_or(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn human_params(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

pub fn run_info(a: &InfoArgs) -> Result<ExitCode> {
    let client = a.hub.client();
    let (repo, revision) = RepoId::parse(&a.repo, kind(a.dataset))?;
    let info = client
        .info(&repo, revision.as_deref())
        .with_context(|| format!("reading {}", a.repo))?;
    let card = info.get("cardData").cloned().unwrap_or(Value::Null);
    let model_card = zoo_card::ModelCard::from_json(&card).unwrap_or_default();
    let results = model_card.results().unwrap_or_default();
    let base = model_card.base_model();
    // Children: the hub lists them; elsewhere search by lineage.
    let children: Vec<String> = match info.pointer("/zoo/children").and_then(Value::as_array) {
        Some(c) => c
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        None => client
            .search(
                repo.kind,
                &[("filter".into(), format!("base_model:{}", repo.id))],
                100,
            )
            .map(|v| {
                v.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let preprocessing = info.pointer("/config/pretrained_cfg").cloned();
    if a.json {
        let doc = json!({
            "id": info["id"], "sha": info["sha"], "private": info["private"],
            "pipeline_tag": info["pipeline_tag"], "library_name": info["library_name"],
            "license": model_card.license(), "datasets": model_card.datasets(), "tags": info["tags"],
            "parameters": info.pointer("/safetensors/total"),
            "files": info["siblings"], "results": results, "preprocessing": preprocessing,
            "base_models": base, "children": children,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{}  @ {}",
        info["id"].as_str().unwrap_or(&repo.id),
        info["sha"].as_str().unwrap_or("?")
    );
    outln!(
        "task:       {}",
        info["pipeline_tag"].as_str().unwrap_or("-")
    );
    outln!(
        "library:    {}",
        info["library_name"].as_str().unwrap_or("-")
    );
    outln!("license:    {}", model_card.license().unwrap_or("-".into()));
    outln!("datasets:   {}", model_card.datasets().join(", "));
    if let Some(p) = info.pointer("/safetensors/total").and_then(Value::as_u64) {
        outln!("parameters: {} ({p})", human_params(p));
    }
    outln!(
        "base model: {}",
        if base.is_empty() {
            "-".to_string()
        } else {
            base.join(", ")
        }
    );
    outln!(
        "fine-tuned from it: {}",
        if children.is_empty() {
            "-".to_string()
        } else {
            children.join(", ")
        }
    );
    if let Some(p) = &preprocessing {
        outln!(
            "preprocessing: input {} {}, crop {}, mean {}, std {}",
            p["input_size"],
            p["interpolation"].as_str().unwrap_or(""),
            p["crop_pct"],
            p["mean"],
            p["std"]
        );
    }
    if !results.is_empty() {
        outln!("\nRESULTS");
        outln!(
            "{:<24} {:<20} {:<12} {:>10}",
            "TASK",
            "DATASET",
            "METRIC",
            "VALUE"
        );
        for r in &results {
            outln!(
                "{:<24} {:<20} {:<12} {:>10}",
                r.task,
                r.dataset,
                r.key(),
                r.value
            );
        }
    }
    outln!("\nFILES");
    for s in info["siblings"].as_array().cloned().unwrap_or_default() {
        let size = s["size"]
            .as_u64()
            .map(crate::inspect::human_bytes)
            .unwrap_or("?".into());
        let verdict = s
            .pointer("/security/verdict")
            .and_then(Value::as_str)
            .map(|v| format!("  [{v}]"))
            .unwrap_or_default();
        outln!(
            "{:>10}  {}{}",
            size,
            s["rfilename"].as_str().unwrap_or(""),
            verdict
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_push(a: PushArgs) -> Result<ExitCode> {
    let (repo, _) = RepoId::parse(&a.repo, kind(a.dataset))?;
    let opts = PushOptions {
        private: a.private,
        branch: a.branch,
        message: a.message,
        progress: a.hub.progress(),
        ..PushOptions::default()
    };
    push_and_report(&a.hub, &a.dir, &repo, &opts, a.json)
}

fn push_and_report(
    hub: &HubArgs,
    dir: &std::path::Path,
    repo: &RepoId,
    opts: &PushOptions,
    json: bool,
) -> Result<ExitCode> {
    let pushed = push(&hub.client(), dir, repo, opts)
        .with_context(|| format!("pushing {} to {}", dir.display(), repo.id))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&pushed)?);
    } else if pushed.dry_run {
        for p in &pushed.uploaded {
            outln!("upload  {p}");
        }
        for p in &pushed.deleted {
            outln!("delete  {p}");
        }
        outln!(
            "{}: {} files to upload, {} to delete, {} unchanged (dry run: nothing changed)",
            pushed.repo,
            pushed.uploaded.len(),
            pushed.deleted.len(),
            pushed.unchanged.len()
        );
    } else if pushed.uploaded.is_empty() && pushed.deleted.is_empty() {
        outln!(
            "{}: nothing changed ({} files up to date) at {}",
            pushed.repo,
            pushed.unchanged.len(),
            pushed.commit
        );
    } else {
        outln!(
            "{}: {} files uploaded, {} deleted, {} unchanged, commit {}",
            pushed.repo,
            pushed.uploaded.len(),
            pushed.deleted.len(),
            pushed.unchanged.len(),
            pushed.commit
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_auth(c: AuthCommand) -> Result<ExitCode> {
    match c {
        AuthCommand::Login(a) => run_login(&a),
        AuthCommand::Logout(a) => run_logout(&a),
        AuthCommand::Whoami(a) => run_whoami(&a),
    }
}

pub fn run_repo(c: RepoCommand) -> Result<ExitCode> {
    match c {
        RepoCommand::Create {
            repo,
            repo_type,
            private,
            exist_ok,
            hub,
        } => {
            let (repo, rev) = RepoId::parse_uri(&repo, repo_kind(repo_type))?;
            if let Some(r) = rev {
                bail!("{}: a new repository has no revision `{r}` yet", repo.id);
            }
            let client = hub.client();
            let created = create_repo(&client, &repo, private, exist_ok)
                .with_context(|| format!("creating {}", repo.id))?;
            let url = format!(
                "{}/{}{}",
                client.settings.endpoint,
                repo.url_prefix(),
                repo.id
            );
            if created {
                outln!("created {url}");
            } else {
                outln!("{url} exists already");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn run_login(a: &LoginArgs) -> Result<ExitCode> {
    let token = match &a.hub.token {
        Some(t) => t.clone(),
        // A terminal: asked for without echo. A pipe (`… | zoo auth login`): one line.
        None if std::io::stdin().is_terminal() => {
            rpassword::prompt_password("token (input is hidden): ").context("reading the token")?
        }
        None => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line
        }
    };
    let token = token.trim().to_string();
    anyhow::ensure!(!token.is_empty(), "no token given");
    let mut o = a.hub.overrides();
    o.token = Some(token.clone());
    let settings = Settings::resolve(&o);
    let who = Client::new(settings.clone())
        .whoami()
        .with_context(|| format!("checking the token with {}", settings.endpoint))?;
    settings.save_token(&token)?;
    let place = if settings.is_default_endpoint() {
        settings.token_path().display().to_string()
    } else {
        format!(
            "{} as `{}`",
            settings.token_path().display(),
            settings.token_name()
        )
    };
    outln!(
        "logged in to {} as {} (token saved to {place})",
        settings.endpoint,
        who["name"].as_str().unwrap_or("?"),
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run_logout(a: &LoginArgs) -> Result<ExitCode> {
    let mut o = a.hub.overrides();
    o.token = None;
    let settings = Settings::resolve(&o);
    if settings.remove_token()? {
        outln!(
            "logged out of {} ({} removed)",
            settings.endpoint,
            if settings.is_default_endpoint() {
                settings.token_path().display().to_string()
            } else {
                format!(
                    "`{}` in {}",
                    settings.token_name(),
                    settings.token_path().display()
                )
            }
        );
    } else {
        outln!("not logged in to {}", settings.endpoint);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_whoami(a: &LoginArgs) -> Result<ExitCode> {
    let client = a.hub.client();
    if client.settings.token_source == TokenSource::None {
        bail!(
            "not logged in to {} (zoo auth login, or HF_TOKEN)",
            client.settings.endpoint
        );
    }
    let who = client.whoami().with_context(|| {
        format!(
            "asking {} who the token belongs to",
            client.settings.endpoint
        )
    })?;
    if a.json {
        let doc = json!({
            "name": who["name"], "endpoint": client.settings.endpoint,
            "token_source": client.settings.token_source,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        outln!("{}", who["name"].as_str().unwrap_or("?"));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_cache(c: CacheCommand) -> Result<ExitCode> {
    let cache_at = |dir: Option<PathBuf>| {
        let settings = Settings::resolve(&Overrides {
            cache_dir: dir,
            ..Overrides::default()
        });
        zoo_client::cache::Cache::new(&settings.cache)
    };
    match c {
        CacheCommand::Ls { json, cache_dir } => {
            let usage = cache_at(cache_dir).usage()?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&usage)?);
                return Ok(ExitCode::SUCCESS);
            }
            outln!("{:<48} {:>10} {:>6}  REVISIONS", "REPO", "SIZE", "FILES");
            for r in &usage {
                let revs: Vec<String> = r
                    .revisions
                    .iter()
                    .map(|v| {
                        let short = &v.commit[..v.commit.len().min(8)];
                        if v.refs.is_empty() {
                            short.to_string()
                        } else {
                            format!("{short} ({})", v.refs.join(","))
                        }
                    })
                    .collect();
                outln!(
                    "{:<48} {:>10} {:>6}  {}",
                    r.repo,
                    crate::inspect::human_bytes(r.bytes),
                    r.blobs,
                    revs.join(" ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Verify { repair, json, hub } => {
            let client = hub.client();
            let cache = zoo_client::cache::Cache::new(&client.settings.cache);
            let mut report = Vec::new();
            for (repo, blob) in cache.corrupt_blobs()? {
                let repaired =
                    repair && zoo_client::download::repair(&client, &repo, &blob).is_ok();
                report.push(zoo_client::cache::Corrupt {
                    repo: repo.id.clone(),
                    blob,
                    repaired,
                });
            }
            let left = report.iter().filter(|r| !r.repaired).count();
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"corrupt": report, "remaining": left}))?
                );
            } else {
                for r in &report {
                    outln!(
                        "corrupt: {} blob {}{}",
                        r.repo,
                        r.blob,
                        if r.repaired { " (repaired)" } else { "" }
                    );
                }
                outln!("{} corrupt blobs, {} left", report.len(), left);
            }
            Ok(if left > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        CacheCommand::Prune {
            keep_latest,
            confirm,
        } => {
            let cache = cache_at(confirm.cache_dir.clone());
            let plan = cache.prune_plan(keep_latest)?;
            removal(&cache, &plan, &confirm)
        }
        CacheCommand::Rm {
            repos,
            dataset,
            confirm,
        } => {
            let cache = cache_at(confirm.cache_dir.clone());
            let mut plan = zoo_client::cache::Removal::default();
            for spec in &repos {
                let (repo, rev) = RepoId::parse_uri(spec, kind(dataset))?;
                if let Some(r) = rev {
                    bail!("{spec}: `cache rm` removes whole repositories, not revision `{r}`");
                }
                let p = cache.rm_plan(&repo)?;
                plan.paths.extend(p.paths);
                plan.repos.extend(p.repos);
                plan.snapshots += p.snapshots;
                plan.blobs += p.blobs;
                plan.bytes += p.bytes;
            }
            removal(&cache, &plan, &confirm)
        }
    }
}

/// Shows, asks about and carries out a cache removal.
fn removal(
    cache: &zoo_client::cache::Cache,
    plan: &zoo_client::cache::Removal,
    c: &Confirm,
) -> Result<ExitCode> {
    let what = format!(
        "{}{} snapshots and {} blobs ({})",
        if plan.repos.is_empty() {
            String::new()
        } else {
            format!("{}: ", plan.repos.join(", "))
        },
        plan.snapshots,
        plan.blobs,
        crate::inspect::human_bytes(plan.bytes)
    );
    if c.dry_run {
        if c.json {
            outln!("{}", serde_json::to_string_pretty(plan)?);
        } else {
            for p in &plan.paths {
                outln!("would remove {}", p.display());
            }
            outln!("would remove {what} (dry run: nothing removed)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if plan.paths.is_empty() {
        outln!("nothing to remove");
        return Ok(ExitCode::SUCCESS);
    }
    if !confirmed(&format!("remove {what}"), c.yes)? {
        outln!("nothing removed");
        return Ok(ExitCode::from(1));
    }
    cache.remove(plan)?;
    if c.json {
        outln!("{}", serde_json::to_string_pretty(plan)?);
    } else {
        outln!("removed {what}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A model given as a local folder, or as `org/name[@revision]` on the hub (pulled into the
/// cache; its snapshot folder is returned).
pub fn resolve_model(spec: &str, hub: &HubArgs) -> Result<PathBuf> {
    let local = PathBuf::from(spec);
    if local.exists() {
        return Ok(local);
    }
    if spec.starts_with('.') || spec.starts_with('/') || spec.matches('/').count() != 1 {
        anyhow::bail!(
            "{spec}: no such model folder (and not a hub repository org/name[@revision])"
        );
    }
    let client = hub.client();
    let (repo, revision) = RepoId::parse(spec, kind(false))?;
    let opts = PullOptions {
        revision,
        include: Vec::new(),
        exclude: Vec::new(),
        local_dir: None,
        jobs: 8,
        retries: 5,
        range_threshold: 256 << 20,
        progress: hub.progress(),
    };
    let pulled = pull(&client, &repo, &opts).with_context(|| format!("pulling {spec}"))?;
    Ok(pulled.snapshot)
}

/// Pushes a folder to a model repository (creating it); returns the commit.
pub fn push_dir(dir: &std::path::Path, spec: &str, hub: &HubArgs) -> Result<String> {
    let client = hub.client();
    let (repo, _) = RepoId::parse(spec, kind(false))?;
    let opts = PushOptions {
        private: false,
        branch: None,
        message: Some(format!("zoo finetune: {}", dir.display())),
        progress: hub.progress(),
        ..PushOptions::default()
    };
    let pushed = push(&client, dir, &repo, &opts)
        .with_context(|| format!("pushing {} to {spec}", dir.display()))?;
    Ok(pushed.commit)
}
