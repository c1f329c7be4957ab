//! rudder's policy runtime (`rudder-policy`) steering a hand-written candle training
//! loop: softmax regression on the embedded digits (1,437 training and 360 validation
//! images), with SGD (momentum, weight decay, as torch defines them) written out, so
//! that the loop itself applies every decision a policy can take: `lr`, `momentum`,
//! `weight_decay`, `batch_size` (its LR rescaled by the linear rule unless the decision
//! says otherwise), `accumulation`, `epochs`, `stop`, `save` and `rollback` (through
//! this file's own checkpoint functions), `log` and `metrics`. The policies' files are
//! watched: save an edit while it runs and the next hook call uses it.
//!
//! Run: `cargo run --release -p rudder-train --example own_loop [POLICY...]` (default: `default`);
//! `crates/train/examples/every_key.rhai` takes every decision once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{D, DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rudder_policy::{
    Decision, Hook, Policies, PolicyState, Rescale, RunState, Save, Settings, Target, WatchMode,
};

/// Weights, biases and their momentum buffers.
struct Model {
    w: Var,
    b: Var,
    vw: Tensor,
    vb: Tensor,
}

/// A split of the digits: features scaled to [0, 1], labels.
struct Split {
    x: Tensor,
    y: Tensor,
    n: usize,
}

/// Everything the loop keeps, and what it tells the policies.
struct Run {
    model: Model,
    train: Split,
    val: Split,
    /// The run as the policies see it: settings, counters, metrics, history, best.
    state: RunState,
    /// The scalars policies asked to record this epoch.
    recorded: BTreeMap<String, f64>,
    /// This run's checkpoints: `best` (written when val_loss improves) and any the
    /// policies ask for; `last` is the newest.
    checkpoints: PathBuf,
    last: Option<PathBuf>,
}

fn main() -> Result<()> {
    let mut specs: Vec<String> = std::env::args().skip(1).collect();
    if specs.is_empty() {
        specs.push("default".into());
    }
    let mut policies = Policies::builder()
        .policies(specs)
        .watch(WatchMode::Auto)
        .build()?;
    let mut run = Run::new()?;
    run.hook(Hook::TrainStart, &mut policies)?;
    while !run.state.stopped && run.state.epoch < run.state.settings.epochs {
        run.hook(Hook::EpochStart, &mut policies)?;
        run.train_epoch(&mut policies)?;
        run.end_epoch(&mut policies)?;
    }
    run.hook(Hook::TrainEnd, &mut policies)?;
    let last = run.state.metrics.val_acc.unwrap_or(0.0);
    println!(
        "finished after {}: val_acc {last:.4}",
        rudder_policy::text::plural(run.state.epoch as i64, "epoch")
    );
    if last < 0.9 {
        bail!("the model did not learn (val_acc {last:.4})");
    }
    Ok(())
}

impl Run {
    fn new() -> Result<Run> {
        let dev = Device::Cpu;
        let table =
            rudder_nn::data::csv::parse(&rudder_nn::data::digits_csv(), Path::new("digits"))?;
        let (n, f) = (table.rows, 64);
        let x = (Tensor::from_vec(table.features, (n, f), &dev)? / 16.0)?;
        let y = Tensor::from_vec(table.labels, n, &dev)?;
        let n_val = n / 5;
        let split = |start: usize, len: usize| -> Result<Split> {
            Ok(Split {
                x: x.narrow(0, start, len)?,
                y: y.narrow(0, start, len)?,
                n: len,
            })
        };
        let mut base = Settings::new(0.5, 64);
        base.epochs = 12;
        let checkpoints = std::env::temp_dir().join(format!("own-loop-{}", std::process::id()));
        let mut state = RunState::new(base);
        state.dataset_size = Some(n - n_val);
        state.fix_bases();
        Ok(Run {
            model: Model {
                w: Var::zeros((f, 10), DType::F32, &dev)?,
                b: Var::zeros(10, DType::F32, &dev)?,
                vw: Tensor::zeros((f, 10), DType::F32, &dev)?,
                vb: Tensor::zeros(10, DType::F32, &dev)?,
            },
            train: split(n_val, n - n_val)?,
            val: split(0, n_val)?,
            state,
            recorded: BTreeMap::new(),
            checkpoints,
            last: None,
        })
    }

    /// Asks the policies at `hook` and applies what they decide.
    fn hook(&mut self, hook: Hook, policies: &mut Policies) -> Result<()> {
        let reply = policies.call(hook, &self.state.ctx());
        for e in &reply.events {
            eprintln!("policy event: {}", serde_json::to_string(e)?);
        }
        self.apply(&reply.decision, policies)
    }

    /// Every key of a validated decision, in the order rudder applies them: a
    /// rollback first (the other values apply to the restored state), then a save,
    /// the settings, stop, log and metrics.
    fn apply(&mut self, d: &Decision, policies: &Policies) -> Result<()> {
        if let Some(target) = d.rollback.clone() {
            self.rollback(target)?;
        }
        if let Some(save) = &d.save {
            let name = match save {
                Save::Tag(tag) => tag.clone(),
                _ => format!("step-{}", self.state.step),
            };
            self.save(&name, &policies.state())?;
        }
        let before = self.state.settings;
        // lr, momentum, weight_decay, accumulation, epochs; a batch_size with its
        // LR rescaled (linear here) unless the decision sets lr or says `rescale`.
        self.state.apply(d, Rescale::Linear);
        // A schedule's LR and momentum at every step go unsaid; any other change is
        // shown.
        if self.state.settings != before && !d.is_schedule() {
            println!("applied: {}", changes(&before, &self.state.settings));
        }
        if d.stop {
            println!(
                "stop: {}",
                d.reason.as_deref().unwrap_or("a policy stopped the run")
            );
        }
        if let Some(log) = &d.log {
            println!("policy log: {log}");
        }
        for (k, v) in &d.metrics {
            println!("recorded: {k} = {v}");
            self.recorded.insert(k.clone(), *v);
        }
        Ok(())
    }

    /// One epoch: shuffled batches of the current size, `accumulation` of them per
    /// optimizer step, `on_step` before each step (its decisions hold from that step).
    fn train_epoch(&mut self, policies: &mut Policies) -> Result<()> {
        let mut order: Vec<u32> = (0..self.train.n as u32).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            self.state.epoch as u64,
        ));
        let (mut cursor, mut loss_sum, mut correct) = (0, 0.0, 0.0);
        while cursor < order.len() && !self.state.stopped {
            self.hook(Hook::Step, policies)?;
            let mut grads: Option<(Tensor, Tensor)> = None;
            for _ in 0..self.state.settings.accumulation {
                if cursor >= order.len() {
                    break;
                }
                let end = (cursor + self.state.settings.batch_size).min(order.len());
                let idx = Tensor::new(&order[cursor..end], self.train.x.device())?;
                let (x, y) = (
                    self.train.x.index_select(&idx, 0)?,
                    self.train.y.index_select(&idx, 0)?,
                );
                let logits = self.logits(&x)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                let len = (end - cursor) as f64;
                loss_sum += loss.to_scalar::<f32>()? as f64 * len;
                correct += accuracy(&logits, &y)? * len;
                // Each micro-batch's share of the step's mean.
                let scaled = (loss
                    * (len
                        / self.state.settings.batch_size as f64
                        / self.state.settings.accumulation as f64))?;
                let g = scaled.backward()?;
                let (gw, gb) = (
                    g.get(&self.model.w).context("no gradient")?.clone(),
                    g.get(&self.model.b).context("no gradient")?.clone(),
                );
                grads = Some(match grads {
                    Some((aw, ab)) => ((aw + gw)?, (ab + gb)?),
                    None => (gw, gb),
                });
                cursor = end;
            }
            if let Some((gw, gb)) = grads {
                self.sgd(gw, gb)?;
                self.state.step += 1;
            }
        }
        let n = cursor.max(1) as f64;
        self.state.metrics.train_loss = Some(loss_sum / n);
        self.state.metrics.train_acc = Some(correct / n);
        Ok(())
    }

    /// torch's SGD: g += wd * w; v = momentum * v + g (v = g at first); w -= lr * v.
    fn sgd(&mut self, gw: Tensor, gb: Tensor) -> Result<()> {
        let s = self.state.settings;
        let m = &mut self.model;
        let gw = (gw + (m.w.as_tensor() * s.weight_decay)?)?;
        let gb = (gb + (m.b.as_tensor() * s.weight_decay)?)?;
        (m.vw, m.vb) = if s.momentum > 0.0 {
            (((&m.vw * s.momentum)? + gw)?, ((&m.vb * s.momentum)? + gb)?)
        } else {
            (gw, gb)
        };
        m.w.set(&(m.w.as_tensor() - (&m.vw * s.lr)?)?)?;
        m.b.set(&(m.b.as_tensor() - (&m.vb * s.lr)?)?)?;
        Ok(())
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(self.model.w.as_tensor())?
            .broadcast_add(self.model.b.as_tensor())?)
    }

    /// Validation, the best checkpoint, `on_epoch_end`, the epoch's history line.
    fn end_epoch(&mut self, policies: &mut Policies) -> Result<()> {
        let logits = self.logits(&self.val.x)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &self.val.y)?.to_scalar::<f32>()? as f64;
        let acc = accuracy(&logits, &self.val.y)?;
        self.state.metrics.val_loss = Some(loss);
        self.state.metrics.val_acc = Some(acc);
        let before = self.state.best;
        let metrics = self.state.metrics;
        self.state.end_epoch(metrics);
        if self.state.best != before {
            self.save("best", &policies.state())?;
        }
        self.hook(Hook::EpochEnd, policies)?;
        println!(
            "epoch {}: val_loss {loss:.4} val_acc {acc:.4} lr {:.4} batch {} x {}",
            self.state.epoch + 1,
            self.state.settings.lr,
            self.state.settings.batch_size,
            self.state.settings.accumulation
        );
        self.state.history.push(serde_json::json!({
            "epoch": self.state.epoch, "step": self.state.step, "lr": self.state.settings.lr,
            "batch_size": self.state.settings.batch_size, "val_loss": loss, "val_acc": acc,
            "train_loss": self.state.metrics.train_loss, "train_acc": self.state.metrics.train_acc,
            "policy": std::mem::take(&mut self.recorded),
        }));
        self.state.epoch += 1;
        Ok(())
    }

    /// Our own checkpoint: the weights and momentum buffers as safetensors, the
    /// policies' state beside them (what a resume would give `load_state`).
    fn save(&mut self, name: &str, policies: &[PolicyState]) -> Result<()> {
        let dir = self.checkpoints.join(name);
        std::fs::create_dir_all(&dir)?;
        let m = &self.model;
        let tensors: HashMap<String, Tensor> = [
            ("w", m.w.as_tensor().clone()),
            ("b", m.b.as_tensor().clone()),
            ("w.momentum_buffer", m.vw.clone()),
            ("b.momentum_buffer", m.vb.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
        std::fs::write(dir.join("policies.json"), serde_json::to_vec(policies)?)?;
        println!("saved checkpoint {name} (after {} steps)", self.state.step);
        if name != "best" {
            self.last = Some(dir);
        }
        Ok(())
    }

    /// Restores weights and momentum buffers; settings, counters and data order go on.
    fn rollback(&mut self, target: Target) -> Result<()> {
        let dir = match target {
            Target::Best => Some(self.checkpoints.join("best")),
            Target::Tag(t) => Some(self.checkpoints.join(t)),
            _ => self.last.clone(),
        };
        let Some(dir) = dir.filter(|d| d.exists()) else {
            println!("rollback ignored: no checkpoint to roll back to");
            return Ok(());
        };
        let t = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
        let get = |k: &str| t.get(k).cloned().context(format!("{k} missing"));
        self.model.w.set(&get("w")?)?;
        self.model.b.set(&get("b")?)?;
        self.model.vw = get("w.momentum_buffer")?;
        self.model.vb = get("b.momentum_buffer")?;
        println!("rolled back to {}", dir.display());
        Ok(())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.checkpoints);
    }
}

fn accuracy(logits: &Tensor, y: &Tensor) -> Result<f64> {
    Ok(logits
        .argmax(D::Minus1)?
        .eq(y)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()? as f64)
}

/// `lr 0.5 -> 0.25, batch_size 64 -> 32`: what changed.
fn changes(a: &Settings, b: &Settings) -> String {
    let pairs = [
        ("lr", a.lr, b.lr),
        ("batch_size", a.batch_size as f64, b.batch_size as f64),
        ("accumulation", a.accumulation as f64, b.accumulation as f64),
        ("epochs", a.epochs as f64, b.epochs as f64),
        ("momentum", a.momentum, b.momentum),
        ("weight_decay", a.weight_decay, b.weight_decay),
    ];
    pairs
        .iter()
        .filter(|(_, x, y)| x != y)
        .map(|(k, x, y)| format!("{k} {x} -> {y}"))
        .collect::<Vec<_>>()
        .join(", ")
}
