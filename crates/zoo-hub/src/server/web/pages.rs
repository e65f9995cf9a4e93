//! The pages themselves.

use maud::{Markup, html};
use zoo_card::{Config, ModelCard};

use super::*;

const PER_PAGE: usize = 24;

type PageResult = HubResult<(String, Markup)>;

/// The first benchmark result of a repository's card, as `(name, value)`.
fn headline(row: &IndexRow) -> Option<&(String, f64)> {
    row.metrics.first()
}

fn fmt_metric(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn card_of(row: &IndexRow) -> Option<ModelCard> {
    let v: Value = serde_json::from_str(row.card_json.as_deref()?).ok()?;
    ModelCard::from_json(&v).ok()
}

fn datasets(row: &IndexRow) -> Vec<String> {
    row.tags
        .iter()
        .filter_map(|t| t.strip_prefix("dataset:"))
        .map(str::to_string)
        .collect()
}

fn repo_href(repo: &Repo) -> String {
    match repo.kind {
        RepoKind::Model => format!("/{}", repo.full_name()),
        RepoKind::Dataset => format!("/datasets/{}", repo.full_name()),
    }
}

fn date(ms: i64) -> String {
    iso(ms).get(..10).unwrap_or_default().to_string()
}

/// The search page: the API's filters as a form; the URL holds the query.
pub(super) fn search(p: &Page<'_>, kind: RepoKind) -> PageResult {
    let ctx = p.ctx;
    let q = p.param("q");
    let mut filters = Vec::new();
    let mut push = |key: &str, prefix: &str| {
        if let Some(v) = p.param(key) {
            filters.push(format!("{prefix}{}", v.trim()));
        }
    };
    push("dataset", "dataset:");
    push("arch", "arch:");
    push("license", "license:");
    push("base", "base_model:");
    if let Some(n) = p.param("params_max") {
        filters.push(format!("params<={}", n.trim()));
    }
    let metric = p.param("metric");
    let op = [">=", "<=", ">", "<", "="]
        .into_iter()
        .find(|o| p.param("op") == Some(*o))
        .unwrap_or(">=");
    if let (Some(m), Some(v)) = (metric, p.param("value")) {
        filters.push(format!("metric:{m}{op}{}", v.trim()));
    }
    let sort = match (p.param("sort"), metric) {
        (Some("metric"), Some(m)) => Some(format!("metric:{m}")),
        (Some(s @ ("downloads" | "likes" | "updated" | "params")), _) => Some(s.to_string()),
        _ => None,
    };
    let direction = match p.param("dir") {
        Some("asc") => Some("1"),
        Some("desc") => Some("-1"),
        _ => None,
    };
    let query = Query::parse(
        &filters,
        p.param("task"),
        p.param("library"),
        sort.as_deref(),
        direction,
    )?;
    let viewer = ctx.viewer.as_ref().map(|v| v.user.clone());
    let everything = ctx.hub.meta.candidates(&Candidates {
        kind: Some(kind),
        author: None,
        search: None,
        viewer: viewer.as_deref(),
    })?;
    // Suggestions for the form, from what this viewer can see.
    let mut known: std::collections::BTreeMap<&str, std::collections::BTreeSet<String>> =
        Default::default();
    for (_, row) in &everything {
        let mut add = |k: &'static str, v: Option<&String>| {
            if let Some(v) = v {
                known.entry(k).or_default().insert(v.clone());
            }
        };
        add("task", row.pipeline_tag.as_ref());
        add("library", row.library.as_ref());
        add("arch", row.architecture.as_ref());
        add("license", row.license.as_ref());
        for d in datasets(row) {
            known.entry("dataset").or_default().insert(d);
        }
        for (m, _) in &row.metrics {
            known.entry("metric").or_default().insert(m.clone());
        }
        for b in &row.base_models {
            known.entry("base").or_default().insert(b.clone());
        }
    }
    let mut items = match q {
        Some(text) => ctx.hub.meta.candidates(&Candidates {
            kind: Some(kind),
            author: None,
            search: Some(text),
            viewer: viewer.as_deref(),
        })?,
        None => everything,
    };
    query.apply(&mut items);
    let page: usize = p
        .param("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 1 + items.len() / PER_PAGE);
    let shown: Vec<&(Repo, IndexRow)> = items
        .iter()
        .skip((page - 1) * PER_PAGE)
        .take(PER_PAGE)
        .collect();
    let link_to = |n: usize| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in ctx.query.iter().filter(|(k, _)| k != "page") {
            s.append_pair(k, v);
        }
        s.append_pair("page", &n.to_string());
        format!("?{}", s.finish())
    };
    let what = match kind {
        RepoKind::Model => "models",
        RepoKind::Dataset => "datasets",
    };
    let action = format!("/{what}");
    let field = |key: &'static str, label: &str, placeholder: &str| {
        let list = format!("known-{key}");
        html! {
            label { (label)
                input type="text" name=(key) value=(p.param(key).unwrap_or("")) placeholder=(placeholder) list=(list);
            }
            datalist id=(list) {
                @for v in known.get(key).into_iter().flatten() { option value=(v) {} }
            }
        }
    };
    let selected = |key: &str, v: &str| p.param(key) == Some(v);
    let body = html! {
        h1 { (if kind == RepoKind::Model { "Models" } else { "Datasets" }) }
        form.search method="get" action=(action) {
            label.wide { "Search"
                input type="search" name="q" value=(q.unwrap_or("")) placeholder="name, e.g. mobilenet";
            }
            (field("task", "Task", "image-classification"))
            (field("dataset", "Trained on (data set)", "imagenet-1k"))
            (field("library", "Library", "timm"))
            (field("arch", "Architecture", "mobilenet_v2"))
            (field("license", "Licence", "apache-2.0"))
            (field("base", "Base model", "org/name"))
            label { "Parameters ≤"
                input type="number" name="params_max" min="0" value=(p.param("params_max").unwrap_or("")) placeholder="5000000";
            }
            (field("metric", "Metric", "top-1"))
            label { "Metric is"
                select name="op" {
                    @for o in [">=", ">", "<=", "<", "="] { option value=(o) selected[op == o] { (o) } }
                }
            }
            label { "Value"
                input type="text" inputmode="decimal" name="value" value=(p.param("value").unwrap_or("")) placeholder="70";
            }
            label { "Sort by"
                select name="sort" {
                    option value="" { "name" }
                    option value="downloads" selected[selected("sort", "downloads")] { "downloads" }
                    option value="likes" selected[selected("sort", "likes")] { "likes" }
                    option value="updated" selected[selected("sort", "updated")] { "updated" }
                    option value="params" selected[selected("sort", "params")] { "parameters" }
                    option value="metric" selected[selected("sort", "metric")] { "the metric" }
                }
            }
            label { "Order"
                select name="dir" {
                    option value="" { "default" }
                    option value="desc" selected[selected("dir", "desc")] { "high → low" }
                    option value="asc" selected[selected("dir", "asc")] { "low → high" }
                }
            }
            button.go type="submit" { "Search" }
        }
        p.count #count { (items.len()) " " (what) }
        div.cards #results {
            @for (repo, row) in &shown {
                (result_card(repo, row))
            }
        }
        @if items.len() > PER_PAGE {
            nav.pages {
                @if page > 1 { a rel="prev" href=(link_to(page - 1)) { "← previous" } }
                span.muted { "page " (page) " of " (items.len().div_ceil(PER_PAGE)) }
                @if page * PER_PAGE < items.len() { a rel="next" href=(link_to(page + 1)) { "next →" } }
            }
        }
    };
    Ok((what.to_string(), body))
}

fn result_card(repo: &Repo, row: &IndexRow) -> Markup {
    html! {
        article.card data-repo=(repo.full_name()) {
            h3 { a href=(repo_href(repo)) { (repo.full_name()) }
                @if repo.private { " " span.badge.private { "private" } } }
            div.facts {
                @if let Some(t) = &row.pipeline_tag { span.badge { (t) } }
                @for d in datasets(row) { span.badge { "data: " (d) } }
                @if let Some(a) = &row.architecture { span.badge { (a) } }
                @if let Some(n) = row.params { span.badge { (human_count(n)) " params" } }
            }
            div.facts {
                @if let Some((k, v)) = headline(row) { span.metric { (k) " " (fmt_metric(*v)) } " · " }
                @if let Some(l) = &row.license { (l) " · " }
                "updated " (date(repo.last_modified)) " · " (repo.downloads) " downloads"
            }
        }
    }
}

/// Preprocessing as the repository records it (timm's `pretrained_cfg` in `config.json`, or
/// a `preprocessor_config.json`).
fn preprocessing(ctx: &Ctx<'_>, files: &[FileEntry], config: Option<&Config>) -> Option<String> {
    if let Some(cfg) = config.and_then(|c| c.pretrained_cfg().ok().flatten()) {
        return Some(format!(
            "{}×{} input, {} resize, crop {:.3}, mean {:?}, std {:?}",
            cfg.input_size[1],
            cfg.input_size[2],
            cfg.interpolation,
            cfg.crop_pct,
            cfg.mean,
            cfg.std
        ));
    }
    let pre = files
        .iter()
        .find(|f| f.path == "preprocessor_config.json")
        .and_then(|f| small_json(ctx.hub, f))?;
    let part = |k: &str| pre.get(k).map(|v| format!("{k} {v}"));
    let parts: Vec<String> = ["size", "crop_size", "image_mean", "image_std", "resample"]
        .iter()
        .filter_map(|k| part(k))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn verdict_badge(f: &FileEntry) -> Markup {
    let imports: Vec<String> = f
        .scan
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v.get("imports").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter(|i| i["verdict"] != "safe")
        .map(|i| {
            format!(
                "{}.{}",
                i["module"].as_str().unwrap_or("?"),
                i["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    html! {
        @match f.verdict.as_deref() {
            Some("safe") => span.badge.safe { "scanned: safe" },
            Some(v @ ("dangerous" | "suspicious" | "invalid")) => {
                span.badge.danger.verdict title=(imports.join(", ")) { "⚠ " (v) }
                @if !imports.is_empty() { " " span.muted { "imports " (imports.join(", ")) } }
            }
            Some(v) => span.badge { (v) },
            None => "",
        }
    }
}

/// The repository page.
pub(super) fn repo(p: &Page<'_>, kind: RepoKind, ns: &str, name: &str) -> PageResult {
    let ctx = p.ctx;
    let repo = ctx.readable(kind, ns, name)?;
    let rev = p.param("rev").unwrap_or("main").to_string();
    let sha = ctx.resolve(&repo, &rev)?;
    let files = ctx.hub.meta.files(repo.id, &sha)?;
    let row = match rev.as_str() {
        "main" => ctx.hub.meta.index(repo.id)?.unwrap_or_default(),
        _ => crate::index::compute(&files, ctx.hub.blobs.as_ref()),
    };
    let full = repo.full_name();
    let readme = files
        .iter()
        .find(|f| f.path == "README.md" && f.size <= 1 << 20)
        .and_then(|f| {
            let mut s = String::new();
            ctx.hub
                .blobs
                .read_range(&f.sha256, 0, f.size)
                .ok()?
                .read_to_string(&mut s)
                .ok()?;
            Some(s)
        });
    let card = readme.as_deref().and_then(|t| ModelCard::parse(t).ok());
    let body_md = match (&card, &readme) {
        (Some(c), _) => c.body.clone(),
        (None, Some(t)) => t.clone(),
        _ => String::new(),
    };
    let results = card
        .as_ref()
        .and_then(|c| c.results().ok())
        .unwrap_or_default();
    let config = files
        .iter()
        .find(|f| f.path == "config.json")
        .and_then(|f| small_json(ctx.hub, f))
        .and_then(|v| Config::parse(&v.to_string()).ok());
    let refs = ctx.hub.meta.refs(repo.id)?;
    let history = ctx.hub.meta.history(repo.id, &sha, 20)?;
    let has_report = files.iter().any(|f| f.path == "report.html");
    let flagged = files
        .iter()
        .filter(|f| {
            matches!(
                f.verdict.as_deref(),
                Some("dangerous" | "suspicious" | "invalid")
            )
        })
        .count();
    let lineage = lineage(ctx, &repo, &row)?;
    let body = html! {
        h1 {
            @if kind == RepoKind::Dataset { span.muted { "datasets/" } }
            (full)
            @if repo.private { " " span.badge.private { "private" } }
        }
        p.muted {
            @if let Some(t) = &row.pipeline_tag { span.badge { (t) } }
            @if let Some(l) = &row.library { span.badge { (l) } }
            @if let Some(l) = &row.license { span.badge { "licence: " (l) } }
            "revision " code { (rev) } " · " code { (&sha[..sha.len().min(12)]) }
            " · updated " (date(repo.last_modified)) " · " (repo.downloads) " downloads"
        }
        @if flagged > 0 {
            p.error #flagged { "⚠ " (flagged) " file(s) of this revision failed the safety scan: see Files." }
        }
        div.layout {
            div {
                section #card.cardbody {
                    @if body_md.trim().is_empty() { p.muted { "No model card." } }
                    @else { (render_markdown(&body_md)) }
                }
                @if !results.is_empty() {
                    h2 { "Results (model-index)" }
                    div.scroll { table #results {
                        thead { tr { th { "Task" } th { "Data set" } th { "Split" } th { "Metric" } th { "Value" } } }
                        tbody { @for r in &results { tr {
                            td { (r.task) }
                            td { (r.dataset_name.clone().unwrap_or_else(|| r.dataset.clone())) }
                            td { (r.split.clone().unwrap_or_default()) }
                            td { (r.key()) @if r.metric_name.is_some() { span.muted { " (" (r.metric) ")" } } }
                            td.num { (fmt_metric(r.value)) }
                        } } }
                    } }
                }
                h2 { "Files" }
                div.scroll { table #files {
                    thead { tr { th { "Path" } th { "Size" } th { "Scan" } } }
                    tbody { @for f in &files {
                        @let bad = matches!(f.verdict.as_deref(), Some("dangerous" | "suspicious" | "invalid"));
                        tr.flag[bad] data-path=(f.path) {
                            td { a href=(format!("{}/resolve/{}/{}", repo_href(&repo), sha, f.path)) { (f.path) }
                                @if f.lfs { " " span.badge { "LFS" } } }
                            td.num { (human_size(f.size)) }
                            td { (verdict_badge(f)) }
                        }
                    } }
                } }
                h2 { "History" }
                div.scroll { table #history {
                    thead { tr { th { "Commit" } th { "Summary" } th { "Author" } th { "Date" } } }
                    tbody { @for c in &history { tr {
                        td { code { (&c.id[..c.id.len().min(10)]) } }
                        td { (c.summary) }
                        td { (c.author) }
                        td { (date(c.created_at)) }
                    } } }
                } }
            }
            aside {
                h2 { "About" }
                dl.meta #about {
                    dt { "Task" } dd { (row.pipeline_tag.clone().unwrap_or_else(|| "—".into())) }
                    dt { "Trained on" } dd { @let d = datasets(&row); @if d.is_empty() { "—" } @else { (d.join(", ")) } }
                    dt { "Architecture" } dd { (row.architecture.clone().unwrap_or_else(|| "—".into())) }
                    dt { "Parameters" } dd #params {
                        @if let Some(n) = row.params {
                            (human_count(n)) span.muted { " (" (n) ", counted from the weights"
                                @for (d, c) in &row.params_by_dtype { "; " (d) " " (c) } ")" }
                        } @else { "—" }
                    }
                    dt { "Licence" } dd { (row.license.clone().unwrap_or_else(|| "—".into())) }
                    dt { "Preprocessing" } dd { (preprocessing(ctx, &files, config.as_ref()).unwrap_or_else(|| "—".into())) }
                    @if let Some(n) = config.as_ref().and_then(Config::num_classes) {
                        dt { "Classes" } dd { (n) }
                    }
                    dt { "Base model" } dd {
                        @if row.base_models.is_empty() { "—" }
                        @for b in &row.base_models { a href=(format!("/{b}")) { (b) } " " }
                    }
                }
                @if has_report {
                    p { a #report href=(format!("/{full}/report/report.html")) { "Training report" } " (curves, confusion matrix)" }
                }
                h2 { "Lineage" }
                div.lineage #lineage { (lineage) }
                h2 { "Branches and tags" }
                ul #refs { @for r in &refs {
                    li { span.badge { (r.kind) } a href=(format!("{}?rev={}", repo_href(&repo), r.name)) { (r.name) } " " code.muted { (&r.commit[..10.min(r.commit.len())]) } }
                } }
                h2 { "Use this " (if kind == RepoKind::Model { "model" } else { "data set" }) }
                div.snippets #use { (snippets(ctx, &repo, &row, config.as_ref())) }
                p { a href=(format!("/compare?m={full}")) { "Compare with others →" } }
            }
        }
    };
    Ok((full, body))
}

/// "Use this model": code that works for this repository against this hub.
fn snippets(ctx: &Ctx<'_>, repo: &Repo, row: &IndexRow, config: Option<&Config>) -> Markup {
    let id = repo.full_name();
    let base = &ctx.base;
    let timm = row.library.as_deref() == Some("timm")
        || config.is_some_and(|c| c.raw.contains_key("pretrained_cfg"));
    let transformers = config.is_some_and(|c| c.raw.contains_key("model_type"))
        || matches!(
            row.library.as_deref(),
            Some("transformers" | "sentence-transformers")
        );
    let task = row.pipeline_tag.as_deref().unwrap_or("");
    let auto = match task {
        "image-classification" => "AutoModelForImageClassification",
        "text-classification" => "AutoModelForSequenceClassification",
        _ => "AutoModel",
    };
    let zoo_predict = match task {
        "image-classification" => format!("zoo predict {id} photo.jpg"),
        "text-classification" => format!("zoo predict {id} --text \"an example sentence\""),
        "sentence-similarity" | "feature-extraction" => {
            format!("zoo embed {id} --text \"an example sentence\"")
        }
        _ => format!("zoo info {id}"),
    };
    html! {
        @if repo.kind == RepoKind::Dataset {
            h3 { "datasets" }
            pre { code { "import os\nos.environ[\"HF_ENDPOINT\"] = \"" (base) "\"\nfrom datasets import load_dataset\nds = load_dataset(\"" (id) "\")" } }
            h3 { "zoo" }
            pre { code { "HF_ENDPOINT=" (base) " zoo download " (id) " --repo-type dataset" } }
        } @else {
            h3 { "huggingface_hub" }
            pre { code { "import os\nos.environ[\"HF_ENDPOINT\"] = \"" (base) "\"\nfrom huggingface_hub import snapshot_download\npath = snapshot_download(\"" (id) "\")" } }
            @if timm {
                h3 { "timm" }
                pre { code { "import os\nos.environ[\"HF_ENDPOINT\"] = \"" (base) "\"\nimport timm\nmodel = timm.create_model(\"hf-hub:" (id) "\", pretrained=True)\n# a new head for your classes:\n# timm.create_model(\"hf-hub:" (id) "\", pretrained=True, num_classes=N)" } }
            }
            @if transformers && !timm {
                h3 { "transformers" }
                pre { code { "import os\nos.environ[\"HF_ENDPOINT\"] = \"" (base) "\"\nfrom transformers import " (auto) "\nmodel = " (auto) ".from_pretrained(\"" (id) "\")" } }
            }
            h3 { "zoo" }
            pre { code { "export HF_ENDPOINT=" (base) "\nzoo pull " (id) "\n" (zoo_predict) "\nzoo finetune " (id) " --data DATA --out my-model" } }
        }
    }
}

/// A node of the lineage graph.
struct Node {
    name: String,
    href: Option<String>,
    metric: Option<String>,
    /// The repository's index tags (its relations to its bases among them).
    tags: Vec<String>,
}

impl Node {
    /// Whether this repository is a peft adapter on `base` (tag `base_model:adapter:BASE`).
    fn adapter_of(&self, base: &str) -> bool {
        let t = format!("base_model:adapter:{base}");
        self.tags.iter().any(|x| x.eq_ignore_ascii_case(&t))
    }
}

fn node(ctx: &Ctx<'_>, name: &str) -> HubResult<Node> {
    let (ns, n) = name.split_once('/').unwrap_or(("", name));
    let found = match ctx.hub.meta.repo(RepoKind::Model, ns, n)? {
        Some(r) if ctx.can_read(&r) => Some(r),
        _ => None,
    };
    let row = match &found {
        Some(r) => ctx.hub.meta.index(r.id)?,
        None => None,
    };
    let metric = row
        .as_ref()
        .and_then(|row| headline(row).map(|(k, v)| format!("{k} {}", fmt_metric(*v))));
    Ok(Node {
        name: name.to_string(),
        href: found.map(|r| repo_href(&r)),
        metric,
        tags: row.map(|r| r.tags).unwrap_or_default(),
    })
}

/// Base models above, fine-tuned children below, as an SVG graph with each node's headline
/// metric; every node the viewer may see links to its page.
pub(super) fn lineage(ctx: &Ctx<'_>, repo: &Repo, row: &IndexRow) -> HubResult<Markup> {
    let bases = row
        .base_models
        .iter()
        .map(|b| node(ctx, b))
        .collect::<HubResult<Vec<_>>>()?;
    let children = ctx
        .visible_children(&repo.full_name())?
        .iter()
        .map(|c| node(ctx, c))
        .collect::<HubResult<Vec<_>>>()?;
    let me = Node {
        name: repo.full_name(),
        href: None,
        metric: headline(row).map(|(k, v)| format!("{k} {}", fmt_metric(*v))),
        tags: row.tags.clone(),
    };
    let my_name = repo.full_name();
    let (adapters, finetuned): (Vec<&Node>, Vec<&Node>) =
        children.iter().partition(|c| c.adapter_of(&my_name));
    let is_adapter = bases.iter().any(|b| me.adapter_of(&b.name));
    if bases.is_empty() && children.is_empty() {
        return Ok(html! { p.muted { "No base model and no fine-tuned children on this hub." } });
    }
    const W: i32 = 300;
    const BOX_W: i32 = 260;
    const BOX_H: i32 = 44;
    const GAP: i32 = 16;
    const ROW: i32 = 80;
    let rows: Vec<Vec<&Node>> = [bases.iter().collect(), vec![&me], children.iter().collect()]
        .into_iter()
        .filter(|r: &Vec<&Node>| !r.is_empty())
        .collect();
    let height = rows
        .iter()
        .map(|r| r.len() as i32 * (BOX_H + GAP))
        .sum::<i32>()
        + (rows.len() as i32 - 1) * (ROW - BOX_H);
    // One column: bases, this repository, children; edges from each row to the next.
    let mut y = 0;
    let mut placed: Vec<Vec<(i32, &Node)>> = Vec::new();
    for r in &rows {
        let mut here = Vec::new();
        for n in r {
            here.push((y, *n));
            y += BOX_H + GAP;
        }
        y += ROW - BOX_H - GAP;
        placed.push(here);
    }
    let x = (W - BOX_W) / 2;
    let box_of = |(top, n): (i32, &Node), current: bool| {
        let label = html! {
            rect x=(x) y=(top) width=(BOX_W) height=(BOX_H) rx="6"
                fill=(if current { "#e8f0fd" } else { "#ffffff" }) stroke="#9aa7b4" {}
            text x=(x + 10) y=(top + 18) font-size="13" font-weight="600" fill="#1d232a" { (n.name) }
            text x=(x + 10) y=(top + 35) font-size="12" fill="#5b6570" {
                @if n.adapter_of(&my_name) || (current && is_adapter) { "LoRA adapter · " }
                (n.metric.clone().unwrap_or_else(|| if n.href.is_some() || current { "no results in its card".into() } else { "not on this hub".into() }))
            }
        };
        html! {
            @if let Some(h) = &n.href { a href=(h) class="node" { (label) } } @else { g class="node" { (label) } }
        }
    };
    let svg = html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {height}")) width=(W) height=(height) role="img" aria-label="lineage" {
            @for pair in placed.windows(2) {
                @for (ya, _) in &pair[0] { @for (yb, _) in &pair[1] {
                    line x1=(W / 2) y1=(ya + BOX_H) x2=(W / 2) y2=(yb) stroke="#9aa7b4" stroke-width="1.5" {}
                } }
            }
            @for (i, r) in placed.iter().enumerate() {
                @for (top, n) in r {
                    (box_of((*top, n), i == usize::from(!bases.is_empty()) && std::ptr::eq(*n, &me)))
                }
            }
        }
    };
    Ok(html! {
        (svg)
        p.muted {
            @if !bases.is_empty() { (if is_adapter { "An adapter on " } else { "Fine-tuned from " }) @for b in &bases { @if let Some(h) = &b.href { a.base href=(h) { (b.name) } } @else { (b.name) } " " } ". " }
            @if !finetuned.is_empty() { "Fine-tuned into " @for c in &finetuned { @if let Some(h) = &c.href { a.child href=(h) { (c.name) } } " " } ". " }
            @if !adapters.is_empty() { "Adapters: " @for c in &adapters { @if let Some(h) = &c.href { a.child.adapter href=(h) { (c.name) } } " " } "." }
        }
    })
}

/// 2–4 models side by side.
pub(super) fn compare(p: &Page<'_>) -> PageResult {
    let ctx = p.ctx;
    let mut names: Vec<String> = ctx
        .params("m")
        .into_iter()
        .flat_map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    names.dedup();
    names.truncate(4);
    let mut models = Vec::new();
    let mut missing = Vec::new();
    for n in &names {
        let (ns, name) = n.split_once('/').unwrap_or(("", n));
        match ctx.hub.meta.repo(RepoKind::Model, ns, name)? {
            Some(r) if ctx.can_read(&r) => {
                let row = ctx.hub.meta.index(r.id)?.unwrap_or_default();
                let results = card_of(&row)
                    .and_then(|c| c.results().ok())
                    .unwrap_or_default();
                let sha = ctx.hub.meta.resolve(r.id, "main")?.unwrap_or_default();
                let files = ctx.hub.meta.files(r.id, &sha)?;
                let config = files
                    .iter()
                    .find(|f| f.path == "config.json")
                    .and_then(|f| small_json(ctx.hub, f))
                    .and_then(|v| Config::parse(&v.to_string()).ok());
                let pre = preprocessing(ctx, &files, config.as_ref());
                models.push((r, row, results, pre));
            }
            _ => missing.push(n.clone()),
        }
    }
    // Metrics by (data set, metric): a row per pair any model reports.
    let mut keys: Vec<(String, String)> = Vec::new();
    for (_, _, results, _) in &models {
        for r in results {
            let k = (
                r.dataset_name.clone().unwrap_or_else(|| r.dataset.clone()),
                r.key().to_string(),
            );
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    let value = |results: &[zoo_card::EvalResult], k: &(String, String)| {
        results
            .iter()
            .find(|r| {
                r.dataset_name.clone().unwrap_or_else(|| r.dataset.clone()) == k.0 && r.key() == k.1
            })
            .map(|r| r.value)
    };
    let text_row = |label: &str, f: &dyn Fn(&Repo, &IndexRow, &Option<String>) -> String| {
        html! { tr { th { (label) } @for (r, row, _, pre) in &models { td { (f(r, row, pre)) } } } }
    };
    let dash = |o: Option<String>| o.unwrap_or_else(|| "—".into());
    let body = html! {
        h1 { "Compare" }
        form.search method="get" action="/compare" {
            @for i in 0..4 {
                label { "Model " (i + 1)
                    input type="text" name="m" value=(names.get(i).map(String::as_str).unwrap_or("")) placeholder="org/name";
                }
            }
            button.go type="submit" { "Compare" }
        }
        @for m in &missing { p.error { "Not found: " (m) } }
        @if models.len() >= 2 {
            div.scroll { table #compare {
                thead { tr { th {} @for (r, _, _, _) in &models { th { a href=(repo_href(r)) { (r.full_name()) } } } } }
                tbody {
                    (text_row("Task", &|_, row, _| dash(row.pipeline_tag.clone())))
                    (text_row("Architecture", &|_, row, _| dash(row.architecture.clone())))
                    (text_row("Parameters", &|_, row, _| dash(row.params.map(|n| format!("{} ({n})", human_count(n))))))
                    (text_row("Trained on", &|_, row, _| { let d = datasets(row); if d.is_empty() { "—".into() } else { d.join(", ") } }))
                    (text_row("Licence", &|_, row, _| dash(row.license.clone())))
                    (text_row("Base model", &|_, row, _| if row.base_models.is_empty() { "—".into() } else { row.base_models.join(", ") }))
                    (text_row("Preprocessing", &|_, _, pre| dash(pre.clone())))
                    @for k in &keys {
                        @let vals: Vec<Option<f64>> = models.iter().map(|(_, _, res, _)| value(res, k)).collect();
                        @let shared = vals.iter().all(Option::is_some);
                        @let best = vals.iter().flatten().copied().fold(f64::NEG_INFINITY, f64::max);
                        tr.metric.shared[shared] {
                            th { (k.1) " on " (k.0) @if shared { " " span.badge { "shared" } } }
                            @for v in &vals {
                                @match v {
                                    Some(x) => td.num.best[shared && *x == best] { (fmt_metric(*x)) },
                                    None => td.num.muted { "—" },
                                }
                            }
                        }
                    }
                }
            } }
            @if keys.is_empty() { p.muted { "None of these cards reports benchmark results." } }
        } @else {
            p.muted { "Name two to four models (org/name), or open a model's page and follow “Compare”." }
        }
    };
    Ok(("Compare".into(), body))
}

pub(super) fn login_form(p: &Page<'_>, error: Option<&str>) -> PageResult {
    let next = p.param("next").unwrap_or("/");
    Ok((
        "Sign in".into(),
        html! {
            div.login {
                h1 { "Sign in" }
                p.muted { "With an access token of this hub (" code { "zoo admin token create" } "). It is checked, then forgotten: the session names it only by its hash." }
                @if let Some(e) = error { p.error #login-error { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(p.csrf);
                    input type="hidden" name="next" value=(next);
                    label { "Token" input #token type="password" name="token" autocomplete="off" required; }
                    button #signin type="submit" { "Sign in" }
                }
            }
        },
    ))
}

/// The form fields of a POST (application/x-www-form-urlencoded), after its CSRF check.
async fn form(p: &Page<'_>, body: Body) -> HubResult<Vec<(String, String)>> {
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .map_err(|e| HubError::TooLarge(format!("form: {e}")))?;
    let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let sent = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    let cookie = session::cookie(&p.cookies, session::CSRF);
    // Both values are the browser's own; an attacker on another site sees neither, and
    // learns nothing from how long the comparison takes.
    let ok = matches!((sent, cookie), (Some(a), Some(b)) if a.len() == 32 && a == b);
    if !ok {
        return Err(HubError::Forbidden(
            "the form's CSRF token does not match this browser's: reload the page and try again"
                .into(),
        ));
    }
    Ok(fields)
}

pub(super) async fn login_post(p: &Page<'_>, body: Body) -> HubResult {
    let fields = match form(p, body).await {
        Ok(f) => f,
        Err(e) => {
            let (t, b) = login_form(p, Some(&e.to_string()))?;
            return Ok(p.respond(StatusCode::FORBIDDEN, &t, &b));
        }
    };
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let token = get("token");
    if token.is_empty()
        || p.ctx
            .hub
            .meta
            .token(&crate::auth::hash_token(&token))?
            .is_none()
    {
        let (t, b) = login_form(p, Some("That token is not valid on this hub."))?;
        return Ok(p.respond(StatusCode::UNAUTHORIZED, &t, &b));
    }
    let cookie = session::session_cookie(Some(&session::open_session(p.ctx.hub, &token)), p.secure);
    Ok(p.redirect(&get("next"), &[cookie]))
}

pub(super) async fn logout(p: &Page<'_>, body: Body) -> HubResult {
    form(p, body).await?;
    Ok(p.redirect("/", &[session::session_cookie(None, p.secure)]))
}

/// A fine-tune's training report (`report.html` and its pictures, from `main`), sandboxed:
/// served with a CSP that runs no script and gives the page no origin.
pub(super) fn report(p: &Page<'_>, ns: &str, name: &str, file: &str) -> HubResult {
    let ctx = p.ctx;
    let repo = ctx.readable(RepoKind::Model, ns, name)?;
    let sha = ctx.resolve(&repo, "main")?;
    let f = ctx
        .hub
        .meta
        .file(repo.id, &sha, file)?
        .ok_or_else(|| HubError::EntryNotFound {
            path: file.to_string(),
            commit: sha.clone(),
        })?;
    if f.size > 64 << 20 {
        return Err(HubError::TooLarge(format!("{file} is too large to show")));
    }
    let mut bytes = Vec::new();
    ctx.hub
        .blobs
        .read_range(&f.sha256, 0, f.size)?
        .read_to_end(&mut bytes)
        .map_err(|e| HubError::Internal(format!("{file}: {e}")))?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(report_type(file).unwrap_or("application/octet-stream")),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(r)
}
