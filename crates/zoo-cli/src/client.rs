//! `zoo pull`, `search`, `info`, `push`, `login`, `logout`, `whoami`, `cache`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use zoo_client::download::{PullOptions, pull};
use zoo_client::push::{PushOptions, push};
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
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

impl HubArgs {
    fn client(&self) -> Client {
        Client::new(Settings::from_env(
            self.endpoint.as_deref(),
            self.token.as_deref(),
            self.offline,
        ))
    }
    fn progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
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
    /// The folder to upload [default: .].
    local_path: Option<PathBuf>,
    /// Where in the repository (only the root, `.`, is implemented).
    path_in_repo: Option<String>,
    /// The branch to commit to.
    #[arg(long)]
    revision: Option<String>,
    #[arg(long, value_enum, default_value = "model")]
    repo_type: RepoTypeArg,
    #[arg(long)]
    private: bool,
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
    if let Some(p) = a
        .path_in_repo
        .as_deref()
        .filter(|p| !matches!(*p, "." | "/" | ""))
    {
        bail!(
            "{}: uploading to `{p}` inside the repository is not implemented yet (upload to the root: leave PATH_IN_REPO out)",
            a.repo
        );
    }
    let message = match (a.commit_message, a.commit_description) {
        (Some(m), Some(d)) => Some(format!("{m}\n\n{d}")),
        (None, Some(d)) => Some(format!("Upload with zoo\n\n{d}")),
        (m, None) => m,
    };
    run_push(PushArgs {
        dir: a.local_path.unwrap_or_else(|| PathBuf::from(".")),
        repo: repo.id,
        private: a.private,
        branch: a.revision.or(rev),
        message,
        dataset: repo.kind == RepoType::Dataset,
        json: a.json,
        hub: a.hub,
    })
}

fn repo_kind(t: RepoTypeArg) -> RepoType {
    match t {
        RepoTypeArg::Model => RepoType::Model,
        RepoTypeArg::Dataset => RepoType::Dataset,
    }
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    hub: HubArgs,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Sizes per repository and revision.
    Ls {
        #[arg(long)]
        json: bool,
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
    },
    /// Remove a repository from the cache.
    Rm {
        repo: String,
        #[arg(long)]
        dataset: bool,
    },
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
    let card_text = format!("---\n{}---\n", serde_yaml_like(&card));
    let model_card = zoo_card::ModelCard::parse(&card_text).unwrap_or_default();
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

/// JSON card data back to YAML text for the card parser (JSON is YAML).
fn serde_yaml_like(v: &Value) -> String {
    if v.is_object() {
        format!("{v}\n")
    } else {
        String::new()
    }
}

pub fn run_push(a: PushArgs) -> Result<ExitCode> {
    let client = a.hub.client();
    let (repo, _) = RepoId::parse(&a.repo, kind(a.dataset))?;
    let opts = PushOptions {
        private: a.private,
        branch: a.branch,
        message: a.message,
        progress: a.hub.progress(),
    };
    let pushed = push(&client, &a.dir, &repo, &opts)
        .with_context(|| format!("pushing {} to {}", a.dir.display(), a.repo))?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&pushed)?);
    } else if pushed.uploaded.is_empty() {
        outln!(
            "{}: nothing changed ({} files up to date) at {}",
            pushed.repo,
            pushed.unchanged.len(),
            pushed.commit
        );
    } else {
        outln!(
            "{}: {} files uploaded, {} unchanged, commit {}",
            pushed.repo,
            pushed.uploaded.len(),
            pushed.unchanged.len(),
            pushed.commit
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_login(a: &LoginArgs) -> Result<ExitCode> {
    let token = match &a.hub.token {
        Some(t) => t.clone(),
        None => {
            eprint!("token: ");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_string()
        }
    };
    anyhow::ensure!(!token.is_empty(), "no token given");
    let settings = Settings::from_env(a.hub.endpoint.as_deref(), Some(&token), false);
    let who = Client::new(settings.clone())
        .whoami()
        .context("checking the token")?;
    settings.save_token(&token)?;
    outln!(
        "logged in as {} (token saved to {})",
        who["name"].as_str().unwrap_or("?"),
        settings.token_path().display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run_logout(a: &LoginArgs) -> Result<ExitCode> {
    let settings = Settings::from_env(a.hub.endpoint.as_deref(), None, false);
    if settings.remove_token()? {
        outln!("logged out ({} removed)", settings.token_path().display());
    } else {
        outln!("not logged in");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_whoami(a: &LoginArgs) -> Result<ExitCode> {
    let who = a.hub.client().whoami()?;
    outln!("{}", who["name"].as_str().unwrap_or("?"));
    Ok(ExitCode::SUCCESS)
}

pub fn run_cache(c: CacheCommand) -> Result<ExitCode> {
    let settings = Settings::from_env(None, None, false);
    let cache = zoo_client::cache::Cache::new(&settings.cache);
    match c {
        CacheCommand::Ls { json } => {
            let mut doc = Vec::new();
            for repo in cache.repos()? {
                let blobs = cache.blobs(&repo);
                let size: u64 = blobs.iter().map(|(_, s)| s).sum();
                let refs = cache.refs(&repo);
                let revisions: Vec<Value> = cache
                    .snapshots(&repo)
                    .into_iter()
                    .map(|commit| {
                        let files = cache.snapshot_files(&repo, &commit).unwrap_or_default();
                        let bytes: u64 = files.iter().filter_map(|(_, b)| blobs.iter().find(|(n, _)| n == b).map(|(_, s)| *s)).sum();
                        let names: Vec<&str> = refs.iter().filter(|(_, c)| *c == commit).map(|(r, _)| r.as_str()).collect();
                        json!({"commit": commit, "refs": names, "files": files.len(), "bytes": bytes})
                    })
                    .collect();
                doc.push(json!({"repo": repo.id, "type": repo.kind.singular(), "bytes": size, "blobs": blobs.len(), "revisions": revisions}));
            }
            if json {
                outln!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                outln!("{:<48} {:>10} {:>6}  REVISIONS", "REPO", "SIZE", "FILES");
                for r in &doc {
                    let revs: Vec<String> = r["revisions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| {
                            let c = v["commit"].as_str().unwrap_or("");
                            let refs: Vec<&str> = v["refs"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .filter_map(Value::as_str)
                                .collect();
                            format!(
                                "{}{}",
                                &c[..c.len().min(8)],
                                if refs.is_empty() {
                                    String::new()
                                } else {
                                    format!(" ({})", refs.join(","))
                                }
                            )
                        })
                        .collect();
                    outln!(
                        "{:<48} {:>10} {:>6}  {}",
                        r["repo"].as_str().unwrap(),
                        crate::inspect::human_bytes(r["bytes"].as_u64().unwrap()),
                        r["blobs"],
                        revs.join(" ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Verify { repair, json, hub } => {
            let client = hub.client();
            let mut report = Vec::new();
            let mut bad_left = 0;
            for repo in cache.repos()? {
                for (name, _) in cache.blobs(&repo) {
                    if cache.verify_blob(&repo, &name)? {
                        continue;
                    }
                    let mut repaired = false;
                    if repair {
                        repaired = repair_blob(&client, &cache, &repo, &name).is_ok();
                    }
                    if !repaired {
                        bad_left += 1;
                    }
                    report.push(json!({"repo": repo.id, "blob": name, "repaired": repaired}));
                }
            }
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"corrupt": report, "remaining": bad_left})
                    )?
                );
            } else {
                for r in &report {
                    outln!(
                        "corrupt: {} blob {}{}",
                        r["repo"].as_str().unwrap(),
                        r["blob"].as_str().unwrap(),
                        if r["repaired"] == true {
                            " (repaired)"
                        } else {
                            ""
                        }
                    );
                }
                outln!("{} corrupt blobs, {} left", report.len(), bad_left);
            }
            Ok(if bad_left > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        CacheCommand::Prune { keep_latest } => {
            let (snaps, blobs, bytes) = prune(&cache, keep_latest)?;
            outln!(
                "removed {snaps} snapshots and {blobs} blobs ({})",
                crate::inspect::human_bytes(bytes)
            );
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Rm { repo, dataset } => {
            let (repo, _) = RepoId::parse(&repo, kind(dataset))?;
            let dir = cache.repo_dir(&repo);
            anyhow::ensure!(dir.exists(), "{} is not in the cache", repo.id);
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            let _ = std::fs::remove_dir_all(cache.root.join(".locks").join(repo.folder()));
            outln!("removed {}", repo.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Fetches a corrupt blob again from a snapshot that links to it.
fn repair_blob(
    client: &Client,
    cache: &zoo_client::cache::Cache,
    repo: &RepoId,
    name: &str,
) -> Result<()> {
    for commit in cache.snapshots(repo) {
        for (path, blob) in cache.snapshot_files(repo, &commit)? {
            if blob == name {
                std::fs::remove_file(cache.blob(repo, name))?;
                let opts = PullOptions {
                    revision: Some(commit.clone()),
                    include: vec![path],
                    ..PullOptions::default()
                };
                pull(client, repo, &opts)?;
                anyhow::ensure!(cache.verify_blob(repo, name)?, "still corrupt after repair");
                return Ok(());
            }
        }
    }
    anyhow::bail!("no snapshot links to {name}")
}

/// Removes snapshots no ref points to (all but the latest with `keep_latest`), blobs no
/// remaining snapshot links to, and unfinished downloads.
fn prune(cache: &zoo_client::cache::Cache, keep_latest: bool) -> Result<(usize, usize, u64)> {
    let (mut snaps, mut blobs, mut bytes) = (0, 0, 0);
    for repo in cache.repos()? {
        let refs = cache.refs(&repo);
        let keep: Vec<String> = if keep_latest {
            let main = refs
                .iter()
                .find(|(r, _)| r == "main")
                .or(refs.first())
                .map(|(_, c)| c.clone());
            main.into_iter().collect()
        } else {
            refs.iter().map(|(_, c)| c.clone()).collect()
        };
        for commit in cache.snapshots(&repo) {
            if !keep.contains(&commit) {
                std::fs::remove_dir_all(cache.snapshot(&repo, &commit))?;
                snaps += 1;
            }
        }
        if keep_latest {
            for (r, c) in &refs {
                if !keep.contains(c) {
                    let _ = std::fs::remove_file(cache.ref_path(&repo, r));
                }
            }
        }
        let mut used = std::collections::HashSet::new();
        for commit in cache.snapshots(&repo) {
            for (_, b) in cache.snapshot_files(&repo, &commit)? {
                used.insert(b);
            }
        }
        for (name, size) in cache.blobs(&repo) {
            if !used.contains(&name) {
                std::fs::remove_file(cache.blob(&repo, &name))?;
                blobs += 1;
                bytes += size;
            }
        }
        if let Ok(rd) = std::fs::read_dir(cache.repo_dir(&repo).join("blobs")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.ends_with(".incomplete") || n.ends_with(".incomplete.ranges") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    Ok((snaps, blobs, bytes))
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
    };
    let pushed = push(&client, dir, &repo, &opts)
        .with_context(|| format!("pushing {} to {spec}", dir.display()))?;
    Ok(pushed.commit)
}
