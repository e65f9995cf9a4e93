//! `zoo`: the Checkpoint Zoo command line. Thin: parsing arguments, printing results;
//! the work lives in the library crates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// `println!` that returns an error instead of panicking when stdout is closed (`| head`).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*)?;
    }};
}

/// mimalloc instead of glibc's malloc: the engine allocates and frees many tensor-sized
/// buffers per step, which glibc hands back to the kernel each time (page faults and TLB
/// shootdowns were a fifth of the CPU time of a feature pass).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (the same index in its v2 and v3 enums;
/// libmimalloc-sys names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// For the engine's commands: freed memory stays with the process instead of going back to
/// the kernel. A training step frees and reallocates the same tensor-sized buffers, and
/// mimalloc's purging made every reuse a fresh page fault: ~290 000 minor faults in a
/// three-model `zoo bench` against ~3 600 without, ViT-S and MiniLM training steps 1.3x
/// faster, for ~10% more peak memory. (The hub keeps the default: it returns idle memory.)
fn keep_freed_memory() {
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option table (atomic);
    // -1 is the documented "never purge" value of this option.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

mod bench;
mod client;
mod hub;
mod inspect;
mod models;
mod scan;
mod train;

#[derive(Debug, Parser)]
#[command(
    name = "zoo",
    version,
    about = "Checkpoint Zoo: pre-trained checkpoints, safely loaded, converted and inspected"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Report what every pickle would import (safe / suspicious / dangerous) and validate
    /// safetensors files. Exit status 1 when anything is dangerous or invalid.
    Scan {
        /// Files or directories (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Convert a PyTorch checkpoint (or a safetensors file) to safetensors.
    Convert {
        input: PathBuf,
        output: PathBuf,
        /// Cast floating-point tensors (f16, bf16, f32); integer and bool tensors are kept.
        #[arg(long, value_parser = ["f16", "bf16", "f32"])]
        dtype: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Tensor names, dtypes and shapes, total parameters and bytes, metadata.
    Inspect {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Download a repository into the Hugging Face cache (resumable, verified, parallel).
    Pull(client::PullArgs),
    /// Search a Hub: task, data set, licence, library, author; sort by downloads, params or a metric.
    Search(client::SearchArgs),
    /// A repository's card summary, files, benchmark results, preprocessing and lineage.
    Info(client::InfoArgs),
    /// Upload a folder: only changed files, large ones through LFS, one atomic commit.
    Push(client::PushArgs),
    /// `hf download`'s spelling of pull: REPO [FILES...] with --revision, --repo-type, hf:// URIs.
    Download(client::DownloadArgs),
    /// `hf upload`'s spelling of push: REPO [LOCAL_PATH] with --revision, --commit-message.
    Upload(client::UploadArgs),
    /// Log in, out, or ask who you are, per hub: login, logout, whoami.
    Auth {
        #[command(subcommand)]
        command: client::AuthCommand,
    },
    /// Repositories on a hub: create.
    Repo {
        #[command(subcommand)]
        command: client::RepoCommand,
    },
    /// Same as `zoo auth login`.
    Login(client::LoginArgs),
    /// Same as `zoo auth logout`.
    Logout(client::LoginArgs),
    /// Same as `zoo auth whoami`.
    Whoami(client::LoginArgs),
    /// The local cache (shared with the Python tools): ls, verify, prune, rm.
    Cache {
        #[command(subcommand)]
        command: client::CacheCommand,
    },
    /// Turn a raw checkpoint into a zoo model folder (model.safetensors, config.json, README.md).
    Import(models::ImportArgs),
    /// Top-K labels with probabilities for images or texts.
    Predict(train::PredictArgs),
    /// Fine-tune a model on labelled images or texts (new head, freezing, feature cache, reports).
    Finetune(Box<train::FinetuneArgs>),
    /// Accuracy, top-5, macro-F1, per-class precision/recall and the confusion matrix.
    Eval(train::EvalArgs),
    /// Fold a peft LoRA adapter into its base model: a full model folder.
    Merge(train::MergeArgs),
    /// Pooled features for a folder of images or a text file / CSV, to a safetensors file.
    Embed(models::EmbedArgs),
    /// Which checkpoint to start from: each candidate's frozen features scored on your
    /// labelled data (k-NN, LogME, linear probe, H-score), best first.
    Rank(models::RankArgs),
    /// Inference and AdamW-step throughput of ResNet-18 and MiniLM (see benches/engine/bench.py).
    Bench(bench::BenchArgs),
    /// Run the hub: the Hugging Face Hub protocol over SQLite and local files.
    Serve(hub::ServeArgs),
    /// Manage the hub's users and tokens (works while `zoo serve` runs).
    Admin {
        #[command(subcommand)]
        command: hub::AdminCommand,
    },
    /// Run by git inside `zoo serve`'s bare repositories (the `pre-receive` hook of a push).
    #[command(hide = true)]
    HubHook {
        /// The hook's name (`pre-receive`).
        hook: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Predict(_)
            | Command::Finetune(_)
            | Command::Eval(_)
            | Command::Merge(_)
            | Command::Embed(_)
            | Command::Rank(_)
            | Command::Bench(_)
    ) {
        keep_freed_memory();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Scan { paths, json } => scan::run(&paths, json),
        Command::Convert {
            input,
            output,
            dtype,
            json,
        } => {
            let dtype = dtype.map(|d| d.parse()).transpose().context("--dtype")?;
            let summary = zoo_checkpoint::convert(&input, &output, dtype).with_context(|| {
                format!("converting {} to {}", input.display(), output.display())
            })?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                outln!(
                    "wrote {}: {} tensors, {} parameters, {} ({} cast), from {}",
                    output.display(),
                    summary.tensors,
                    inspect::thousands(summary.parameters),
                    inspect::human_bytes(summary.bytes),
                    summary.cast,
                    summary.input_format.as_str()
                );
                if !summary.skipped.is_empty() {
                    outln!("not tensors, left out: {}", summary.skipped.join(", "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { path, json } => inspect::run(&path, json),
        Command::Serve(args) => hub::serve(args),
        Command::HubHook { hook } => match hook.as_str() {
            "pre-receive" => Ok(ExitCode::from(zoo_hub::gitrepo::hook_main() as u8)),
            other => anyhow::bail!("unknown hook `{other}`"),
        },
        Command::Import(a) => models::import(&a),
        Command::Predict(a) => train::predict(&a),
        Command::Finetune(a) => train::finetune(&a),
        Command::Eval(a) => train::eval(&a),
        Command::Merge(a) => train::merge(&a),
        Command::Embed(a) => models::embed(&a),
        Command::Rank(a) => models::rank(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Pull(a) => client::run_pull(a),
        Command::Search(a) => client::run_search(&a),
        Command::Info(a) => client::run_info(&a),
        Command::Push(a) => client::run_push(a),
        Command::Download(a) => client::run_download(a),
        Command::Upload(a) => client::run_upload(a),
        Command::Auth { command } => client::run_auth(command),
        Command::Repo { command } => client::run_repo(command),
        Command::Login(a) => client::run_login(&a),
        Command::Logout(a) => client::run_logout(&a),
        Command::Whoami(a) => client::run_whoami(&a),
        Command::Cache { command } => client::run_cache(command),
        Command::Admin { command } => hub::admin(command),
    }
}
