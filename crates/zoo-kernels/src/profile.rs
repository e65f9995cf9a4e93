//! An op-level profiler for one training step: forward time per op kind measured around each
//! op (the CPU backend runs eagerly), backward time per op kind from *probes* — identity ops
//! around every profiled op whose backward notes the moment the gradient arrives. The
//! backward pass runs the graph in reverse order, so the time between the gradient reaching
//! an op's output and reaching its input is that op's backward.
//!
//! Off by default; when off, [`scope`] is a plain call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::backend::Dispatch;
use burn::prelude::Tensor;

use crate::ext::ZooKernels;

static ENABLED: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<State> = Mutex::new(State {
    kinds: Vec::new(),
    forward: Vec::new(),
    events: Vec::new(),
});

#[derive(Debug)]
struct State {
    kinds: Vec<&'static str>,
    /// Per kind: calls and seconds.
    forward: Vec<(u64, f64)>,
    /// Backward: when a probe's gradient arrived, and the probe's label.
    events: Vec<(Instant, u32)>,
}

impl State {
    fn kind(&mut self, k: &'static str) -> usize {
        match self.kinds.iter().position(|x| *x == k) {
            Some(i) => i,
            None => {
                self.kinds.push(k);
                self.forward.push((0, 0.0));
                self.kinds.len() - 1
            }
        }
    }
}

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns profiling on or off (and clears what was recorded).
pub fn enable(on: bool) {
    reset();
    ENABLED.store(on, Ordering::SeqCst);
}

/// Whether [`scope`] records.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Forgets what was recorded (keeps the on/off switch).
pub fn reset() {
    let mut s = state();
    for f in &mut s.forward {
        *f = (0, 0.0);
    }
    s.events.clear();
}

fn probe<const D: usize>(x: Tensor<D>, label: u32) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as ZooKernels>::zoo_probe(
        x.into_dispatch(),
        label,
    ))
}

/// Runs `f(x)` as one op of `kind`: timed, and probed for the backward pass when `x` is on
/// an autodiff device. Scopes must not nest (only leaf ops are profiled).
pub fn scope<const D: usize, const E: usize>(
    kind: &'static str,
    x: Tensor<D>,
    f: impl FnOnce(Tensor<D>) -> Tensor<E>,
) -> Tensor<E> {
    if !enabled() {
        return f(x);
    }
    let id = state().kind(kind) as u32;
    let ad = x.is_autodiff();
    let x = if ad { probe(x, id * 2) } else { x };
    let t = Instant::now();
    let y = f(x);
    let dt = t.elapsed().as_secs_f64();
    {
        let mut s = state();
        s.forward[id as usize].0 += 1;
        s.forward[id as usize].1 += dt;
    }
    if ad { probe(y, id * 2 + 1) } else { y }
}

pub(crate) fn backward_arrived(label: u32) {
    let now = Instant::now();
    state().events.push((now, label));
}

/// One op kind's share of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct OpRow {
    pub kind: String,
    pub calls: u64,
    pub forward_ms: f64,
    pub backward_ms: f64,
}

/// What a step spent, by op kind. `other` rows hold what no profiled op accounts for
/// (residual additions, reshapes, pooling, the loss, the optimiser).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub rows: Vec<OpRow>,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
}

impl Report {
    pub fn step_ms(&self) -> f64 {
        self.forward_ms + self.backward_ms + self.optimizer_ms
    }

    /// A plain-text table: calls, milliseconds forward and backward, share of the step.
    pub fn table(&self, title: &str) -> String {
        use std::fmt::Write;
        let step = self.step_ms().max(1e-9);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{title}: step {:.1} ms = forward {:.1} + backward {:.1} + optimizer {:.1}",
            step, self.forward_ms, self.backward_ms, self.optimizer_ms
        );
        let _ = writeln!(
            out,
            "  {:<26} {:>6} {:>10} {:>10} {:>10} {:>7}",
            "op", "calls", "fwd ms", "bwd ms", "total ms", "share"
        );
        let mut rows = self.rows.clone();
        rows.sort_by(|a, b| {
            (b.forward_ms + b.backward_ms).total_cmp(&(a.forward_ms + a.backward_ms))
        });
        for r in rows {
            let t = r.forward_ms + r.backward_ms;
            let _ = writeln!(
                out,
                "  {:<26} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>6.1}%",
                r.kind,
                r.calls,
                r.forward_ms,
                r.backward_ms,
                t,
                100.0 * t / step
            );
        }
        let _ = writeln!(
            out,
            "  {:<26} {:>6} {:>10} {:>10} {:>10.1} {:>6.1}%",
            "optimizer (AdamW)",
            "",
            "",
            "",
            self.optimizer_ms,
            100.0 * self.optimizer_ms / step
        );
        out
    }
}

/// The report of what was recorded since the last [`reset`]: `forward` and `backward` are
/// the measured wall times of the whole passes, `backward_start` when the backward began.
pub fn report(
    forward: Duration,
    backward_start: Instant,
    backward: Duration,
    optimizer: Duration,
) -> Report {
    let s = state();
    let n = s.kinds.len();
    let mut bwd = vec![0f64; n];
    let mut glue = 0f64;
    let mut prev = backward_start;
    // The op whose output gradient arrived last while its input's never did (an op whose
    // input needs no gradient, such as the first layer).
    let mut pending: Option<usize> = None;
    for &(t, label) in &s.events {
        let dt = t.saturating_duration_since(prev).as_secs_f64();
        let (kind, is_input) = ((label / 2) as usize, label % 2 == 0);
        if is_input {
            bwd[kind] += dt;
            pending = None;
        } else {
            match pending {
                Some(k) => bwd[k] += dt,
                None => glue += dt,
            }
            pending = Some(kind);
        }
        prev = t;
    }
    let tail = (backward_start + backward)
        .saturating_duration_since(prev)
        .as_secs_f64();
    match pending {
        Some(k) => bwd[k] += tail,
        None => glue += tail,
    }
    let mut rows: Vec<OpRow> = (0..n)
        .filter(|&i| s.forward[i].0 > 0 || bwd[i] > 0.0)
        .map(|i| OpRow {
            kind: s.kinds[i].to_string(),
            calls: s.forward[i].0,
            forward_ms: s.forward[i].1 * 1e3,
            backward_ms: bwd[i] * 1e3,
        })
        .collect();
    let fwd_ops: f64 = rows.iter().map(|r| r.forward_ms).sum();
    rows.push(OpRow {
        kind: "other (glue, loss, pooling)".into(),
        calls: 0,
        forward_ms: (forward.as_secs_f64() * 1e3 - fwd_ops).max(0.0),
        backward_ms: glue * 1e3,
    });
    Report {
        rows,
        forward_ms: forward.as_secs_f64() * 1e3,
        backward_ms: backward.as_secs_f64() * 1e3,
        optimizer_ms: optimizer.as_secs_f64() * 1e3,
    }
}
