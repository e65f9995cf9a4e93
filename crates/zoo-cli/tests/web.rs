//! Issue 15: the hub's web pages, in a real browser — Debian's Chromium driven through
//! chromedriver (W3C WebDriver, `fantoccini`) — against a hub seeded like the quickstart's:
//! MobileNetV2 and EfficientNet-Lite0 imported from the real checkpoints with the quickstart's
//! cards, MiniLM pushed as it is, and MobileNetV2 fine-tuned on Fashion-MNIST by `zoo
//! finetune --push` (its card names the base; its report is pushed with it). Plus a hostile
//! pickle, a private repository and a card full of active content. Screenshots of each page
//! land in `$ZOO_SCREENSHOTS` (default: the test's target tmp folder).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

mod common;
use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const MOBILENET_CARD: &str = "---
license: bsd-3-clause
library_name: timm
pipeline_tag: image-classification
datasets: [imagenet-1k]
model-index:
- name: mobilenet_v2
  results:
  - task: {type: image-classification}
    dataset: {type: imagenet-1k, name: ImageNet-1k, split: validation}
    metrics:
    - {type: accuracy, name: top-1, value: 71.878}
    - {type: accuracy, name: top-5, value: 90.286}
---

# MobileNetV2 (torchvision IMAGENET1K_V1)

The torchvision weights `mobilenet_v2-b0353104.pth`, converted to safetensors by `zoo import`.

| split | top-1 | top-5 |
|---|---|---|
| validation | 71.878 | 90.286 |
";

const EFFICIENTNET_CARD: &str = "---
license: apache-2.0
library_name: zoo
pipeline_tag: image-classification
datasets: [imagenet-1k]
---

# EfficientNet-Lite0

The packaged EfficientNet-Lite0 weights, converted by `zoo import`.
";

const HOSTILE_CARD: &str = "---
license: mit
---
# Totally normal model
<script>document.title = 'pwned-script'</script>

[click me](javascript:document.title='pwned-link')

<img src=\"x\" onerror=\"document.title='pwned-img'\">

<a href=\"/\" onclick=\"document.title='pwned-click'\" id=\"clicky\">a link</a>

<iframe src=\"javascript:alert(1)\"></iframe>
";

struct Hub {
    _dir: tempfile::TempDir,
    server: Server,
    token: String,
}

fn zoo(hub_url: &str, token: &str, cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(ZOO)
        .args(args)
        .current_dir(cwd)
        .env("HF_ENDPOINT", hub_url)
        .env("HF_TOKEN", token)
        .env("HF_HOME", cwd.join("hf-home"))
        .env("ZOO_FEATURE_CACHE", cwd.join("features"))
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    ok(&out)
}

/// The quickstart's models, fine-tune included, and the hostile and private repositories.
fn seeded_hub() -> Hub {
    let fx = real_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("hub");
    let token = user(&data, "zoo", "write");
    let server = Server::start(&data, &["--allow-dangerous-pickles"], &[]);
    let url = server.url.clone();
    let run = |args: &[&str]| zoo(&url, &token, root, args);
    for (file, arch, card, repo) in [
        (
            "mobilenet_v2-b0353104.pth",
            "mobilenet_v2",
            MOBILENET_CARD,
            "zoo/mobilenet_v2",
        ),
        (
            "efficientnet-lite0-57934424.pth",
            "efficientnet_lite0",
            EFFICIENTNET_CARD,
            "zoo/efficientnet_lite0",
        ),
    ] {
        let card_path = root.join(format!("{arch}.card.md"));
        std::fs::write(&card_path, card).unwrap();
        let out = root.join(arch);
        run(&[
            "import",
            s(&fx.join("checkpoints").join(file)),
            "--arch",
            arch,
            "--labels",
            s(&fx.join("imagenet_classes.txt")),
            "--card-from",
            s(&card_path),
            "--out",
            s(&out),
        ]);
        run(&["push", "-q", s(&out), repo]);
    }
    run(&[
        "push",
        "-q",
        s(&fx.join("checkpoints/all-MiniLM-L6-v2")),
        "zoo/all-MiniLM-L6-v2",
    ]);
    // The quickstart's fine-tune, on a tiny subset: the card and report are what matter here.
    run(&[
        "finetune",
        "zoo/mobilenet_v2",
        "--data",
        s(&fx.join("fashion-mnist")),
        "--out",
        s(&root.join("child")),
        "--push",
        "zoo/mobilenet_v2-fashion-mnist",
        "--freeze",
        "all",
        "--image-size",
        "32",
        "--per-class",
        "3",
        "--max-val",
        "10",
        "--max-test",
        "20",
        "--epochs",
        "1",
        "--batch-size",
        "10",
        "--no-augment",
    ]);
    // A LoRA adapter on MiniLM (issue 17): listed under its base, marked as an adapter.
    run(&[
        "finetune",
        "zoo/all-MiniLM-L6-v2",
        "--data",
        s(&fx.join("sentiment.csv")),
        "--out",
        s(&root.join("adapter")),
        "--push",
        "zoo/minilm-lora",
        "--peft",
        "lora:r=2,alpha=4",
        "--per-class",
        "8",
        "--max-test",
        "10",
        "--epochs",
        "1",
        "--batch-size",
        "8",
    ]);
    let http = Http::new(&url);
    // A pickle that runs `os.system("id")` when loaded, kept (flagged) by this hub.
    let evil: &[u8] = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
    http.create(&token, "zoo/hostile", false);
    let r = http.commit(
        &token,
        "zoo/hostile",
        &[
            ("pytorch_model.bin", evil),
            ("README.md", HOSTILE_CARD.as_bytes()),
        ],
        &[],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    http.create(&token, "zoo/secret-model", true);
    let r = http.commit(
        &token,
        "zoo/secret-model",
        &[(
            "README.md",
            b"---\npipeline_tag: image-classification\ndatasets: [imagenet-1k]\nlicense: mit\nbase_model: zoo/mobilenet_v2\n---\n# Secret\n",
        )],
        &[],
    );
    assert_eq!(r.status, 200);
    // A data set.
    let r = http.post(
        "/api/repos/create",
        &token,
        &json!({"name": "zoo/flowers", "type": "dataset"}),
    );
    assert_eq!(r.status, 200);
    let r = Http::reply(
        http.agent
            .post(format!("{url}/api/datasets/zoo/flowers/commit/main"))
            .header("Authorization", format!("Bearer {token}"))
            .content_type("application/x-ndjson")
            .send(
                [
                    json!({"key": "header", "value": {"summary": "data"}}).to_string(),
                    json!({"key": "file", "value": {"path": "train.csv", "content": "text,label\nrose,0\n", "encoding": "utf-8"}}).to_string(),
                    json!({"key": "file", "value": {"path": "README.md", "content": "---\nlicense: cc-by-4.0\ntask_categories: [image-classification]\n---\n# Flowers\n", "encoding": "utf-8"}}).to_string(),
                ]
                .join("\n")
                .as_bytes(),
            ),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    Hub {
        _dir: dir,
        server,
        token,
    }
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian: apt-get install chromium chromium-driver; .ci/run installs them)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("ZOO_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.unwrap().len()
}

/// The `data-repo` of every result card on the page.
async fn results(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css("article.card")).await.unwrap() {
        out.push(e.attr("data-repo").await.unwrap().unwrap());
    }
    out.sort();
    out
}

/// Clicks an element and waits for the page it leads to (chromedriver's click returns before
/// the navigation ends).
async fn follow(c: &Client, css: &str) {
    let before = c.current_url().await.unwrap();
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = c.current_url().await.unwrap();
        let ready = c
            .execute("return document.readyState", vec![])
            .await
            .unwrap();
        if now != before && ready == "complete" {
            return;
        }
        assert!(Instant::now() < deadline, "clicking {css} led nowhere");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn child_info_children(api: &Http, token: Option<&str>) -> Vec<String> {
    let info = api.get("/api/models/zoo/mobilenet_v2", token, None).json();
    info["zoo"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

fn fmt_metric(v: f64) -> String {
    format!("{v:.4}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

#[test]
fn the_pages_work_in_a_real_browser_issue_15() {
    let hub = seeded_hub();
    let base = hub.server.url.clone();
    let api = Http::new(&base);
    let child_info = api
        .get("/api/models/zoo/mobilenet_v2-fashion-mnist", None, None)
        .json();
    // The API names no private child to others either.
    let children = child_info_children(&api, None);
    assert_eq!(children, ["zoo/mobilenet_v2-fashion-mnist"]);
    assert_eq!(child_info_children(&api, Some(&hub.token)).len(), 2);
    let child_metrics: Vec<f64> = child_info["zoo"]["metrics"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(!child_metrics.is_empty(), "{child_info}");
    let driver = driver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        // Search: two filters through the form; the URL holds the query.
        c.goto(&format!("{base}/models")).await.unwrap();
        assert_eq!(
            results(&c).await,
            [
                "zoo/all-MiniLM-L6-v2",
                "zoo/efficientnet_lite0",
                "zoo/hostile",
                "zoo/minilm-lora",
                "zoo/mobilenet_v2",
                "zoo/mobilenet_v2-fashion-mnist"
            ],
            "everything public, nothing private"
        );
        c.find(Locator::Css("input[name=task]"))
            .await
            .unwrap()
            .send_keys("image-classification")
            .await
            .unwrap();
        c.find(Locator::Css("input[name=dataset]"))
            .await
            .unwrap()
            .send_keys("imagenet-1k")
            .await
            .unwrap();
        follow(&c, "button.go").await;
        let url = c.current_url().await.unwrap();
        assert!(
            url.query()
                .unwrap_or("")
                .contains("task=image-classification")
                && url.query().unwrap_or("").contains("dataset=imagenet-1k"),
            "{url}"
        );
        assert_eq!(
            results(&c).await,
            ["zoo/efficientnet_lite0", "zoo/mobilenet_v2"]
        );
        assert!(text(&c, "#count").await.starts_with("2 "));
        shot(&c, "search").await;
        // A metric filter and sort, shared as a URL.
        c.goto(&format!(
            "{base}/models?metric=top-1&op=%3E%3D&value=70&sort=metric&dir=desc"
        ))
        .await
        .unwrap();
        assert_eq!(results(&c).await, ["zoo/mobilenet_v2"]);

        // The model page: card, metadata, results table, files with verdicts, snippets.
        c.goto(&format!("{base}/zoo/mobilenet_v2")).await.unwrap();
        assert!(
            text(&c, "#card")
                .await
                .contains("MobileNetV2 (torchvision IMAGENET1K_V1)")
        );
        assert_eq!(
            count(&c, "#card table").await,
            1,
            "the card's own table is rendered"
        );
        let results_table = text(&c, "table#results").await;
        assert!(
            results_table.contains("71.878") && results_table.contains("top-5"),
            "{results_table}"
        );
        let about = text(&c, "#about").await;
        assert!(
            about.contains("mobilenetv2_100")
                && about.contains("3.5M")
                && about.contains("bsd-3-clause"),
            "{about}"
        );
        assert!(about.contains("224×224"), "preprocessing shown: {about}");
        let files = text(&c, "table#files").await;
        assert!(
            files.contains("model.safetensors") && files.contains("scanned: safe"),
            "{files}"
        );
        let use_it = text(&c, "#use").await;
        assert!(
            use_it.contains("timm.create_model(\"hf-hub:zoo/mobilenet_v2\", pretrained=True)")
                && use_it.contains("snapshot_download(\"zoo/mobilenet_v2\")")
                && use_it.contains("zoo predict zoo/mobilenet_v2"),
            "{use_it}"
        );
        shot(&c, "model").await;

        // Lineage, both ways, by clicking.
        follow(&c, "#lineage a.child").await;
        assert!(
            c.current_url()
                .await
                .unwrap()
                .path()
                .ends_with("/zoo/mobilenet_v2-fashion-mnist")
        );
        assert_eq!(
            count(&c, "#lineage svg a.node").await,
            1,
            "the base is a link in the graph"
        );
        let report = c
            .find(Locator::Css("a#report"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        shot(&c, "lineage-child").await;
        follow(&c, "#lineage a.base").await;
        assert!(
            c.current_url()
                .await
                .unwrap()
                .path()
                .ends_with("/zoo/mobilenet_v2")
        );
        let graph = text(&c, "#lineage").await;
        assert!(
            graph.contains("top-1 71.878") && graph.contains("zoo/mobilenet_v2-fashion-mnist"),
            "{graph}"
        );
        shot(&c, "lineage-base").await;
        // An adapter (issue 17): the base lists it apart, marked, and it links there.
        c.goto(&format!("{base}/zoo/all-MiniLM-L6-v2"))
            .await
            .unwrap();
        assert_eq!(count(&c, "#lineage a.child.adapter").await, 1);
        let graph = text(&c, "#lineage").await;
        assert!(
            graph.contains("Adapters:") && graph.contains("LoRA adapter"),
            "{graph}"
        );
        follow(&c, "#lineage a.child.adapter").await;
        assert!(
            c.current_url()
                .await
                .unwrap()
                .path()
                .ends_with("/zoo/minilm-lora")
        );
        assert!(text(&c, "#lineage").await.contains("An adapter on"));
        assert!(
            text(&c, "#card")
                .await
                .contains("PeftModel.from_pretrained")
        );
        shot(&c, "lineage-adapter").await;
        // The fine-tune's training report opens, sandboxed.
        c.goto(&format!("{base}{report}")).await.unwrap();
        let body = text(&c, "body").await;
        assert!(body.to_lowercase().contains("accuracy"), "{body}");
        shot(&c, "report").await;

        // The hostile pickle is flagged where it is listed.
        c.goto(&format!("{base}/zoo/hostile")).await.unwrap();
        let flagged = text(&c, "tr.flag").await;
        assert!(
            flagged.contains("pytorch_model.bin")
                && flagged.contains("dangerous")
                && flagged.contains("os.system"),
            "{flagged}"
        );
        assert!(text(&c, "#flagged").await.contains("1 file"));
        // …and its card's active content is inert.
        assert_eq!(c.title().await.unwrap(), "zoo/hostile · zoo");
        assert_eq!(
            count(
                &c,
                "#card script, #card iframe, #card [onerror], #card [onclick]"
            )
            .await,
            0
        );
        assert_eq!(count(&c, "#card a[href^='javascript']").await, 0);
        if let Ok(a) = c.find(Locator::Css("#card a")).await {
            let _ = a.click().await;
        }
        c.goto(&format!("{base}/zoo/hostile")).await.unwrap();
        assert_eq!(c.title().await.unwrap(), "zoo/hostile · zoo", "nothing ran");
        shot(&c, "hostile").await;

        // Compare: both models' metrics, side by side.
        c.goto(&format!(
            "{base}/compare?m=zoo/mobilenet_v2&m=zoo/mobilenet_v2-fashion-mnist"
        ))
        .await
        .unwrap();
        let table = text(&c, "table#compare").await;
        assert!(table.contains("71.878"), "{table}");
        for v in &child_metrics {
            assert!(table.contains(&fmt_metric(*v)), "{v} in {table}");
        }
        assert!(table.contains("bsd-3-clause") && table.contains("zoo/mobilenet_v2"));
        shot(&c, "compare").await;

        // Data sets have their own search and pages.
        c.goto(&format!("{base}/datasets")).await.unwrap();
        assert_eq!(results(&c).await, ["zoo/flowers"]);
        follow(&c, "article.card a").await;
        assert!(
            c.current_url()
                .await
                .unwrap()
                .path()
                .ends_with("/datasets/zoo/flowers")
        );
        assert!(text(&c, "#card").await.contains("Flowers"));
        assert!(
            text(&c, "#use")
                .await
                .contains("load_dataset(\"zoo/flowers\")")
        );
        shot(&c, "dataset").await;

        // A private repository (a fine-tune of MobileNetV2): invisible to the anonymous
        // browser, anywhere — its page, search, the base's lineage…
        c.goto(&format!("{base}/zoo/mobilenet_v2")).await.unwrap();
        assert_eq!(count(&c, "#lineage a.child").await, 1);
        assert!(!c.source().await.unwrap().contains("secret-model"));
        c.goto(&format!("{base}/zoo/secret-model")).await.unwrap();
        assert!(text(&c, "h1").await.contains("Not found"));
        c.goto(&format!("{base}/models?dataset=imagenet-1k"))
            .await
            .unwrap();
        assert!(!results(&c).await.contains(&"zoo/secret-model".to_string()));
        assert!(!c.source().await.unwrap().contains("secret-model"));
        // …visible after signing in with the owner's token.
        c.goto(&format!("{base}/login")).await.unwrap();
        c.find(Locator::Css("#token"))
            .await
            .unwrap()
            .send_keys(&hub.token)
            .await
            .unwrap();
        follow(&c, "#signin").await;
        assert_eq!(text(&c, ".who .user").await, "zoo");
        c.goto(&format!("{base}/models?dataset=imagenet-1k"))
            .await
            .unwrap();
        assert!(results(&c).await.contains(&"zoo/secret-model".to_string()));
        c.goto(&format!("{base}/zoo/secret-model")).await.unwrap();
        assert!(text(&c, "h1").await.contains("private"));
        c.goto(&format!("{base}/zoo/mobilenet_v2")).await.unwrap();
        assert_eq!(
            count(&c, "#lineage a.child").await,
            2,
            "its owner sees it in the lineage"
        );
        shot(&c, "private-signed-in").await;
        // The session cookie is HTTP-only: the page's scripts (if any ran) could not read it.
        let cookies = c.get_all_cookies().await.unwrap();
        let session = cookies
            .iter()
            .find(|k| k.name() == "zoo_session")
            .expect("a session cookie");
        assert_eq!(session.http_only(), Some(true));
        follow(&c, ".who button").await;
        c.goto(&format!("{base}/zoo/secret-model")).await.unwrap();
        assert!(text(&c, "h1").await.contains("Not found"), "signed out");
        // Readable on a phone: nothing wider than the screen.
        c.set_window_size(390, 844).await.unwrap();
        for page in [
            "/models",
            "/zoo/mobilenet_v2",
            "/compare?m=zoo/mobilenet_v2&m=zoo/efficientnet_lite0",
        ] {
            c.goto(&format!("{base}{page}")).await.unwrap();
            let fits = c
                .execute(
                    "return document.documentElement.scrollWidth <= window.innerWidth + 1",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(fits, json!(true), "{page} is wider than a phone");
        }
        shot(&c, "compare-phone").await;
        c.close().await.unwrap();
    });

    // Outside the browser: sign-in refuses a form without the CSRF token its cookie holds; a
    // session reads private repositories through the API, and never writes.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let cookie_value = |r: &Reply, name: &str| {
        r.header("set-cookie")
            .and_then(|c| c.strip_prefix(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_string())
    };
    let page = Http::reply(agent.get(format!("{base}/login")).call());
    let csrf = cookie_value(&page, "zoo_csrf").expect("a CSRF cookie");
    let login = |body: String| {
        Http::reply(
            agent
                .post(format!("{base}/login"))
                .header("Cookie", format!("zoo_csrf={csrf}"))
                .content_type("application/x-www-form-urlencoded")
                .send(body.as_bytes()),
        )
    };
    let r = login(format!("token={}", hub.token));
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(cookie_value(&r, "zoo_session").is_none());
    let r = login(format!("csrf={}&token={}", "0".repeat(32), hub.token));
    assert_eq!(r.status, 403);
    let r = login(format!("csrf={csrf}&token={}", hub.token));
    assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
    let session = format!("zoo_session={}", cookie_value(&r, "zoo_session").unwrap());
    let r = Http::reply(
        agent
            .get(format!("{base}/api/models/zoo/secret-model"))
            .header("Cookie", &session)
            .call(),
    );
    assert_eq!(r.status, 200);
    let r = Http::reply(
        agent
            .post(format!("{base}/api/models/zoo/secret-model/commit/main"))
            .header("Cookie", &session)
            .content_type("application/x-ndjson")
            .send(
                json!({"key": "header", "value": {"summary": "via cookie"}})
                    .to_string()
                    .as_bytes(),
            ),
    );
    assert_eq!(
        r.status,
        401,
        "a cookie wrote: {}",
        String::from_utf8_lossy(&r.body)
    );
    // A forged session is nobody.
    let r = Http::reply(
        agent
            .get(format!("{base}/api/models/zoo/secret-model"))
            .header("Cookie", format!("{session}0"))
            .call(),
    );
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
}
