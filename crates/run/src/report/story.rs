//! What a run's report tells beyond its curves: the header of what ran (model, data,
//! optimizer, batch, the policies with their parameters, versions and origins) and
//! the learning rate actually used; the per-step losses and LRs of `steps.jsonl`;
//! every event in a table that can be filtered.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

use super::Marker;
use super::plot::{esc, fmt_num};

/// The most points a per-step curve draws; longer runs are averaged in buckets.
pub const MAX_STEP_POINTS: usize = 2000;

/// The per-step lines of `steps.jsonl`, read as the file grows.
#[derive(Debug, Default, Clone)]
pub struct Steps {
    epoch: Vec<u64>,
    step: Vec<u64>,
    loss: Vec<f64>,
    lr: Vec<f64>,
    read: u64,
}

impl Steps {
    /// Reads the complete lines `path` gained since the last call (from the start
    /// when the file is new or was cut back, as a resume does). A missing file, or a
    /// line that is not a step's, adds nothing.
    pub fn read_more(&mut self, path: &Path) {
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        let len = f.metadata().map_or(0, |m| m.len());
        if len < self.read {
            *self = Steps::default();
        }
        let mut text = Vec::new();
        if f.seek(SeekFrom::Start(self.read)).is_err() || f.read_to_end(&mut text).is_err() {
            return;
        }
        // Only up to the last newline: a line being written is read next time.
        let Some(end) = text.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        for line in text[..end].split(|&b| b == b'\n') {
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let (Some(e), Some(loss), Some(lr)) =
                (v["epoch"].as_u64(), v["loss"].as_f64(), v["lr"].as_f64())
            else {
                continue;
            };
            self.epoch.push(e);
            self.step.push(v["step"].as_u64().unwrap_or(0));
            self.loss.push(loss);
            self.lr.push(lr);
        }
        self.read += end as u64 + 1;
    }

    /// Skips what `path` holds now: only lines written from here on are read (a
    /// resumed run's TensorBoard steps, which earlier files have).
    pub fn skip_existing(&mut self, path: &Path) {
        let text = std::fs::read(path).unwrap_or_default();
        self.read = text
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i as u64 + 1);
    }

    /// Forgets the steps read so far, keeping the place: the next
    /// [`Steps::read_more`] reads only lines written after them (a reader that hands
    /// each step on once, as the TensorBoard writer does, keeps none in memory).
    pub fn forget(&mut self) {
        let read = self.read;
        *self = Steps {
            read,
            ..Steps::default()
        };
    }

    /// How many steps were read.
    pub fn len(&self) -> usize {
        self.epoch.len()
    }

    /// The `i`-th step read: its optimizer step, loss and LR.
    pub fn at(&self, i: usize) -> (u64, f64, f64) {
        (self.step[i], self.loss[i], self.lr[i])
    }

    /// Whether no step was read.
    pub fn is_empty(&self) -> bool {
        self.epoch.is_empty()
    }

    /// The LRs of every step.
    pub fn lrs(&self) -> &[f64] {
        &self.lr
    }

    /// Where each step falls on the epoch axis: the `i`-th of an epoch's `n` steps at
    /// `epoch + (i + 1) / n`, so an epoch's last step meets its point of the epoch
    /// curves (drawn at `epoch + 1`).
    fn xs(&self) -> Vec<f64> {
        let mut xs = Vec::with_capacity(self.epoch.len());
        let mut start = 0;
        while start < self.epoch.len() {
            let e = self.epoch[start];
            let n = self.epoch[start..].iter().take_while(|&&x| x == e).count();
            xs.extend((0..n).map(|i| e as f64 + (i + 1) as f64 / n as f64));
            start += n;
        }
        xs
    }

    /// The per-step training loss as chart points (at most [`MAX_STEP_POINTS`]).
    pub fn loss_points(&self) -> Vec<(f64, f64)> {
        thin(&self.xs(), &self.loss)
    }

    /// The per-step LR as chart points (at most [`MAX_STEP_POINTS`]).
    pub fn lr_points(&self) -> Vec<(f64, f64)> {
        thin(&self.xs(), &self.lr)
    }
}

/// `(x, y)` pairs, averaged over consecutive buckets when there are more than
/// [`MAX_STEP_POINTS`] (non-finite values left out of a bucket's mean).
fn thin(xs: &[f64], ys: &[f64]) -> Vec<(f64, f64)> {
    let n = xs.len().min(ys.len());
    let size = n.div_ceil(MAX_STEP_POINTS).max(1);
    (0..n)
        .step_by(size)
        .map(|i| {
            let j = (i + size).min(n);
            let finite: Vec<f64> = ys[i..j].iter().copied().filter(|y| y.is_finite()).collect();
            let y = if finite.is_empty() {
                f64::NAN
            } else {
                finite.iter().sum::<f64>() / finite.len() as f64
            };
            (xs[j - 1], y)
        })
        .collect()
}

/// The LR the run trained at: `0.025 throughout`, or its first, last and range
/// (`first 0.0965, last 1e-6, from 1e-6 to 0.1`); `None` with no LR yet.
pub fn lr_used(lrs: &[f64]) -> Option<String> {
    let lrs: Vec<f64> = lrs.iter().copied().filter(|v| v.is_finite()).collect();
    let (first, last) = (*lrs.first()?, *lrs.last()?);
    let lo = lrs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = lrs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(if lo == hi {
        format!("{} throughout", fmt_num(lo))
    } else {
        format!(
            "first {}, last {}, from {} to {}",
            fmt_num(first),
            fmt_num(last),
            fmt_num(lo),
            fmt_num(hi)
        )
    })
}

/// Whether positive `values` span more than a decade (the LR chart then has a log
/// axis).
pub fn spans_decades(values: &[f64]) -> bool {
    let pos = values.iter().copied().filter(|v| *v > 0.0 && v.is_finite());
    let (lo, hi) = pos.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    hi > 10.0 * lo
}

/// One policy as the header lists it: name, parameters, version, origin.
fn policy_row(p: &Value) -> [String; 4] {
    let name = p["policy"].as_str().unwrap_or("?").to_string();
    let params = p["params"].as_object().map_or_else(String::new, |m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let file = &p["files"][0];
    let version = file["sha256"]
        .as_str()
        .map(|h| h.trim_start_matches("sha256:"))
        .map_or("?".into(), |h| h[..h.len().min(12)].to_string());
    let path = file["path"].as_str().unwrap_or("?");
    let origin = match p.get("plugin") {
        Some(o) => {
            let s = |k: &str| o[k].as_str().unwrap_or("?").to_string();
            let commit = o["commit"].as_str().map_or_else(
                || "a folder".to_string(),
                |c| format!("commit {}", &c[..c.len().min(12)]),
            );
            format!(
                "plugin {} {} ({}, {commit})",
                s("name"),
                s("version"),
                s("source")
            )
        }
        None if path.starts_with("<embedded>") => "the standard library (embedded)".into(),
        None => path.to_string(),
    };
    [name, params, version, origin]
}

/// The header's rows of the policies: name, parameters, version, origin.
fn policy_rows(cfg: &Value) -> String {
    let mut html = String::new();
    let policies = cfg["provenance"].as_array().map_or(&[][..], Vec::as_slice);
    if !policies.is_empty() {
        html.push_str("<tr><th>policies</th><th>name</th><th>parameters</th><th>version</th><th>from</th></tr>");
        for p in policies {
            let [name, params, version, origin] = policy_row(p);
            let _ = write!(
                html,
                "<tr><td></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&name),
                esc(&params),
                esc(&version),
                esc(&origin)
            );
        }
    }
    html
}

/// The header's table of what ran, from `config.json` (`cfg`), the LRs trained at
/// (per step where logged, else per epoch) and the run's markers (its reloads).
pub fn header(cfg: &Value, lrs: &[f64], markers: &[Marker]) -> String {
    if !cfg.is_object() {
        return String::new();
    }
    let s = |k: &str| match &cfg[k] {
        Value::String(t) => t.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let n = |k: &str| cfg[k].as_f64().map_or("-".into(), fmt_num);
    let model = match s("model").as_str() {
        "mlp" => format!("mlp, hidden {}", s("hidden")),
        "cnn" => format!("cnn, channels {}", s("channels")),
        other => other.to_string(),
    };
    let mut optimizer = format!("{}, lr {} as configured", s("optimizer"), n("lr"));
    if cfg["momentum"].as_f64().is_some_and(|m| m != 0.0) {
        let _ = write!(optimizer, ", momentum {}", n("momentum"));
    }
    if cfg["weight_decay"].as_f64().is_some_and(|w| w != 0.0) {
        let _ = write!(optimizer, ", weight decay {}", n("weight_decay"));
    }
    let (batch, acc) = (cfg["batch_size"].as_u64(), cfg["accumulation"].as_u64());
    let batch = match (batch, acc) {
        (Some(b), Some(a)) if a > 1 => format!("{b} x {a} accumulation = {} effective", b * a),
        (Some(b), _) => b.to_string(),
        _ => "-".into(),
    };
    let reloads = markers.iter().filter(|m| m.kind == "reload").count();
    let mut rows = vec![
        ("model", model),
        (
            "data",
            format!("{} ({}, {} loss)", s("data"), s("task"), s("loss")),
        ),
        ("optimizer", optimizer),
        (
            "learning rate used",
            lr_used(lrs).unwrap_or_else(|| "-".into()),
        ),
        ("batch", batch),
        (
            "run",
            format!(
                "seed {}, {} on {}, {} threads",
                s("seed"),
                s("kernels"),
                s("device"),
                s("threads")
            ),
        ),
    ];
    if reloads > 0 {
        rows.push(("policy reloads", reloads.to_string()));
    }
    let mut html = String::from("<table class=\"story\">");
    for (k, v) in rows {
        let _ = write!(
            html,
            "<tr><th>{k}</th><td colspan=\"4\">{}</td></tr>",
            esc(&v)
        );
    }
    html.push_str(&policy_rows(cfg));
    html.push_str("</table>");
    html
}

/// Every marker in a table (epoch, kind, text), with a filter box: the `log` texts
/// and decisions readable without hovering, and searchable.
pub fn events_table(markers: &[Marker]) -> String {
    if markers.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<h2>Events</h2><input id=\"filter\" type=\"search\" placeholder=\"filter events\" oninput=\"for(const r of document.querySelectorAll('#events tr.ev'))r.hidden=!r.textContent.toLowerCase().includes(this.value.toLowerCase())\"><table id=\"events\"><tr><th>epoch</th><th>kind</th><th>what</th></tr>",
    );
    for m in markers {
        let _ = write!(
            html,
            "<tr class=\"ev\"><td>{}</td><td>{}</td><td class=\"text\">{}</td></tr>",
            m.epoch + 1,
            esc(&m.kind),
            esc(&m.label)
        );
    }
    html.push_str("</table>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lr_used_is_what_the_steps_had() {
        assert_eq!(lr_used(&[0.025; 4]).unwrap(), "0.025 throughout");
        assert_eq!(
            lr_used(&[0.01, 0.1, 1e-7]).unwrap(),
            "first 0.01, last 1e-7, from 1e-7 to 0.1"
        );
        assert_eq!(lr_used(&[]), None);
        assert!(spans_decades(&[0.1, 0.0, 1e-7]) && !spans_decades(&[0.1, 0.02, 0.0]));
    }

    #[test]
    fn steps_are_read_as_the_file_grows_and_thinned() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("steps.jsonl");
        let line = |e: u64, s: u64| {
            format!(
                "{{\"epoch\":{e},\"step\":{s},\"loss\":{},\"lr\":0.1}}\n",
                s as f64
            )
        };
        std::fs::write(&p, format!("{}{}{{\"epoch\":0,", line(0, 1), line(0, 2))).unwrap();
        let mut steps = Steps::default();
        steps.read_more(&p);
        assert_eq!(steps.loss, [1.0, 2.0], "the torn line waits");
        let mut all = line(0, 1);
        all.push_str(&line(0, 2));
        for s in 3..=5000 {
            all.push_str(&line(1, s));
        }
        std::fs::write(&p, &all).unwrap();
        steps.read_more(&p);
        assert_eq!(steps.loss.len(), 5000);
        assert_eq!(steps.xs()[..2], [0.5, 1.0]);
        let pts = steps.loss_points();
        assert!(pts.len() <= MAX_STEP_POINTS && pts.len() > MAX_STEP_POINTS / 2);
        assert_eq!(pts.last().unwrap().0, 2.0, "the last step ends epoch 2");
        // Cut back (a resume): read again from the start.
        std::fs::write(&p, line(0, 1)).unwrap();
        steps.read_more(&p);
        assert_eq!(steps.loss, [1.0]);
        // Forgotten steps are not read again; the next line is.
        steps.forget();
        assert!(steps.is_empty());
        std::fs::write(&p, format!("{}{}", line(0, 1), line(0, 2))).unwrap();
        steps.read_more(&p);
        assert_eq!(steps.loss, [2.0]);
    }
}
