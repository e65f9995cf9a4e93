//! `zoo finetune --resume` after a kill -9 (issue 6): a run killed at a random step, mid-epoch,
//! continues from its last checkpoint and ends with a `model.safetensors` byte-identical to a
//! run that was never interrupted — with augmentation, a dropout head, and BatchNorm layers
//! that train next to frozen ones.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use zoo_testkit::real_fixtures;

const ZOO: &str = env!("CARGO_BIN_EXE_zoo");

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The run state stored in a checkpoint's safetensors metadata.
fn checkpoint_state(path: &Path) -> Option<Value> {
    let bytes = std::fs::read(path).ok()?;
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: Value = serde_json::from_slice(bytes.get(8..8 + n)?).ok()?;
    serde_json::from_str(header["__metadata__"]["zoo.run_state"].as_str()?).ok()
}

#[test]
fn a_run_killed_mid_epoch_resumes_to_the_same_bytes_issue_6() {
    let fx = real_fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("mnv2");
    let r = Command::new(ZOO)
        .args([
            "import",
            s(&fx.join("checkpoints/mobilenet_v2-b0353104.pth")),
            "--arch",
            "mobilenet_v2",
            "--labels",
            s(&fx.join("imagenet_classes.txt")),
            "--out",
            s(&model),
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    // 60 training images (6 per class), 8 per batch: 8 steps per epoch, 2 epochs.
    let run = |out: &Path, extra: &[&str]| {
        let mut c = Command::new(ZOO);
        c.args([
            "finetune",
            s(&model),
            "--data",
            s(&fx.join("fashion-mnist")),
            "--out",
            s(out),
            "--image-size",
            "64",
            "--per-class",
            "6",
            "--max-val",
            "20",
            "--max-test",
            "20",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--head",
            "mlp:32",
            "--freeze",
            "stages:4",
            "--seed",
            "7",
            "--checkpoint-every",
            "1",
        ])
        .args(extra)
        .env("ZOO_FEATURE_CACHE", tmp.path().join("cache"));
        c
    };

    let straight = tmp.path().join("straight");
    let r = run(&straight, &[]).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    // A step to kill at, drawn afresh each run, never at an epoch's end (8, 16).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let candidates = [2u64, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14];
    let kill_at = candidates[(nanos % candidates.len() as u64) as usize];
    let killed = tmp.path().join("killed");
    let state = killed.join(".checkpoint/state.safetensors");
    let mut child = run(&killed, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let seen_step;
    loop {
        if let Some(st) = checkpoint_state(&state) {
            let step = st["steps"].as_u64().unwrap();
            if step >= kill_at {
                seen_step = step;
                break;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before step {kill_at}"
        );
        assert!(Instant::now() < deadline, "no checkpoint at step {kill_at}");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!killed.join("model.safetensors").exists());
    let at = checkpoint_state(&state).unwrap();
    eprintln!(
        "killed after step {seen_step} (asked {kill_at}); last checkpoint: step {}, epoch {} + {} batches",
        at["steps"], at["epochs_done"], at["partial"]["batches"]
    );

    let r = run(&killed, &["--resume"]).output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(err.contains("resuming after epoch"), "{err}");
    let a = std::fs::read(straight.join("model.safetensors")).unwrap();
    let b = std::fs::read(killed.join("model.safetensors")).unwrap();
    assert!(
        a == b,
        "the resumed model differs from the uninterrupted one"
    );
    assert!(
        !killed.join(".checkpoint").exists(),
        "a finished run removes its checkpoint"
    );
    // The epoch records agree too (losses are computed from the same batches).
    let metrics = |p: &Path| -> Vec<(f64, f64)> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["train_loss"].as_f64().unwrap(),
                    v["val_loss"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(metrics(&straight), metrics(&killed));
}

/// Issue 13: the Trainer's spellings work, `--metric-for-best-model` and `--lr-scheduler` take
/// effect, and `trainer_state.json` carries a `log_history` as the Trainer writes it.
#[test]
fn the_trainer_vocabulary_and_trainer_state_issue_13() {
    let fx = real_fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("mnv2");
    let r = Command::new(ZOO)
        .args([
            "import",
            s(&fx.join("checkpoints/mobilenet_v2-b0353104.pth")),
            "--arch",
            "mobilenet_v2",
            "--labels",
            s(&fx.join("imagenet_classes.txt")),
            "--out",
            s(&model),
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let out = tmp.path().join("run");
    let r = Command::new(ZOO)
        .args([
            "finetune",
            s(&model),
            "--data",
            s(&fx.join("fashion-mnist")),
            "--output-dir",
            s(&out),
            "--image-size",
            "64",
            "--per-class",
            "5",
            "--max-val",
            "20",
            "--max-test",
            "20",
            "--num-train-epochs",
            "3",
            "--learning-rate",
            "1e-3",
            "--warmup-ratio",
            "0.5",
            "--lr-scheduler",
            "linear",
            "--max-grad-norm",
            "2.0",
            "--label-smoothing-factor",
            "0.0",
            "--metric-for-best-model",
            "accuracy",
            "--patience",
            "10",
            "--freeze",
            "all",
            "--no-augment",
            "--batch-size",
            "10",
        ])
        .env("ZOO_FEATURE_CACHE", tmp.path().join("cache"))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trainer_state.json")).unwrap())
            .unwrap();
    let log = state["log_history"].as_array().unwrap();
    assert_eq!(log.len(), 6, "{state}");
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["epoch"], ((i / 2) + 1) as f64);
        assert_eq!(
            e["step"],
            ((i / 2 + 1) * 5) as u64,
            "50 images, 10 per batch"
        );
        let keys: &[&str] = if i % 2 == 0 {
            &["loss", "learning_rate"]
        } else {
            &["eval_loss", "eval_accuracy", "eval_f1"]
        };
        for k in keys {
            assert!(e[k].is_number(), "{k} in {e}");
        }
    }
    // Linear decay to zero at the last step (15 steps, 8 of warm-up from 0).
    let lr: Vec<f64> = log
        .iter()
        .step_by(2)
        .map(|e| e["learning_rate"].as_f64().unwrap())
        .collect();
    assert!(
        lr[0] > 0.0 && lr[1] > lr[2] && lr[2] < 1e-3 * 10.0 * 0.2,
        "{lr:?}"
    );
    // The best epoch is the one with the highest validation accuracy.
    let accs: Vec<f64> = log
        .iter()
        .skip(1)
        .step_by(2)
        .map(|e| e["eval_accuracy"].as_f64().unwrap())
        .collect();
    let best = accs.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(state["best_metric"].as_f64().unwrap(), best);
    assert_eq!(state["metric_for_best_model"], "eval_accuracy");
    // A misspelt scheduler is a clear error.
    let r = Command::new(ZOO)
        .args([
            "finetune",
            s(&model),
            "--data",
            s(&fx.join("fashion-mnist")),
            "--out",
        ])
        .arg(tmp.path().join("bad"))
        .args([
            "--lr-scheduler",
            "polynomial",
            "--per-class",
            "2",
            "--freeze",
            "all",
        ])
        .env("ZOO_FEATURE_CACHE", tmp.path().join("cache"))
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("expected cosine, linear or constant"));
}
