//! TensorBoard event files (`--tensorboard DIR`): the per-epoch scalars, the policy
//! events, the configuration and policy sources (text), the hyperparameters (the
//! HParams plugin) and, with `--log-steps`, per-step scalars in a `steps` folder
//! beside them (its own steps: optimizer steps), written as TensorBoard's own `Event`
//! protocol buffers in its record framing, so an existing TensorBoard shows rudder
//! runs beside others.
//!
//! A file is `events.out.tfevents.<secs>.<host>.rudder`: records of a little-endian
//! u64 length, its masked CRC-32C, the bytes, their masked CRC-32C. The first event
//! names the format (`brain.Event:2`); a resumed run starts a new file with a
//! `SessionLog` START at the step it continues from, which TensorBoard takes as the
//! order to drop what an earlier file wrote from that step on (the epochs a resume
//! replays). Scalars are `simple_value`s; events are text summaries (plugin `text`,
//! a string tensor). The step is the epoch number (1-based), as the report's axis.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::log::EpochRecord;
use crate::report::Steps;
use crate::sink::Sink;

mod hparams;

/// `tensorflow.Event` (the fields rudder writes).
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
    #[prost(message, optional, tag = "7")]
    session_log: Option<SessionLog>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, prost::Message)]
struct Value {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    tensor: Option<TensorProto>,
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    content: Vec<u8>,
}

/// `tensorflow.TensorProto` (a string scalar).
#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShape>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    string_val: Vec<Vec<u8>>,
}

/// `tensorflow.TensorShapeProto` (no dimensions: a scalar).
#[derive(Clone, PartialEq, prost::Message)]
struct TensorShape {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<Dim>,
}

/// `tensorflow.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
struct Dim {
    #[prost(int64, tag = "1")]
    size: i64,
}

/// `tensorflow.SessionLog`.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionLog {
    #[prost(int32, tag = "1")]
    status: i32,
}

const DT_FLOAT: i32 = 1;
const DT_STRING: i32 = 7;
const SESSION_START: i32 = 1;

/// `text` as a Markdown code block (TensorBoard's Text tab renders Markdown).
fn code_block(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// The CRC TensorBoard's records carry: CRC-32C, rotated and offset.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `path` created new for writing: `O_CREAT | O_EXCL | O_NOFOLLOW`.
fn exclusive(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The file in a run's TensorBoard folder that names the run folder it belongs to.
const OWNER: &str = ".rudder-run";

/// The TensorBoard folder under `root` for the run in `run_dir`: `root/NAME`, or
/// when another run holds that name, `root/NAME-2`, `root/NAME-3`, ... Each folder
/// says whose it is in a `.rudder-run` file; a resumed run finds its own again (and
/// adopts a folder from before these files).
pub fn claim(root: &Path, name: &str, run_dir: &Path, resumed: bool) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(root)?;
    let me = std::fs::canonicalize(run_dir)
        .unwrap_or_else(|_| run_dir.to_path_buf())
        .display()
        .to_string();
    for n in 1..=1000 {
        let dir = match n {
            1 => root.join(name),
            n => root.join(format!("{name}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                exclusive(&dir.join(OWNER))?.write_all(me.as_bytes())?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = rudder_core::input::read(&dir.join(OWNER), 1 << 16)
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
                match owner {
                    Some(o) if o == me => return Ok(dir),
                    // A folder from before owner files: the run resumed is its own.
                    None if resumed && dir.is_dir() => {
                        if let Ok(mut f) = exclusive(&dir.join(OWNER)) {
                            f.write_all(me.as_bytes())?;
                        }
                        return Ok(dir);
                    }
                    _ => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "{} and 999 more folders of that name are taken",
        root.join(name).display()
    )))
}

/// One run's event file, open for appending.
pub struct Writer {
    out: BufWriter<File>,
    path: PathBuf,
    /// How a note names the files when they fail (`--tensorboard DIR`).
    shown: String,
    /// The per-step scalars, when the run logs steps.
    steps: Option<Box<StepScalars>>,
}

/// The per-step scalars: `steps.jsonl`'s new lines at each epoch's end, written to
/// an event file of their own in `steps/` (its steps are optimizer steps, and a
/// resume's order to drop replayed steps is its own).
struct StepScalars {
    /// The run's `steps.jsonl`.
    source: PathBuf,
    /// The folder of the event file, `<run's TensorBoard folder>/steps`.
    dir: PathBuf,
    /// The steps read and not yet written.
    read: Steps,
    out: Option<Writer>,
}

impl Writer {
    /// A new event file in `dir` (created); `resumed_at` (an epoch number) starts it
    /// with the order to drop what earlier files hold from that step on.
    pub fn create(dir: &Path, resumed_at: Option<u64>) -> std::io::Result<Writer> {
        std::fs::create_dir_all(dir)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let secs = now() as u64;
        // A new file, never through a link planted under its name (O_EXCL fails on
        // any name that exists, a dangling link included; O_NOFOLLOW as well); two
        // files in one second (a quick resume) take the next suffix.
        let mut n = 0;
        let (path, file) = loop {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!(".{n}")
            };
            let path = dir.join(format!("events.out.tfevents.{secs}.{host}.rudder{suffix}"));
            match exclusive(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(e),
            }
        };
        let mut w = Writer {
            out: BufWriter::new(file),
            shown: format!("--tensorboard {}", dir.display()),
            path,
            steps: None,
        };
        w.write(&Event {
            wall_time: now(),
            step: 0,
            file_version: Some("brain.Event:2".into()),
            ..Default::default()
        })?;
        if let Some(step) = resumed_at {
            w.write(&Event {
                wall_time: now(),
                step: step as i64,
                session_log: Some(SessionLog {
                    status: SESSION_START,
                }),
                ..Default::default()
            })?;
        }
        w.out.flush()?;
        Ok(w)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Also writes the steps `steps_jsonl` (the run's `steps.jsonl`) gains, as
    /// `loss/train_step` and `lr_step`, into `dir/steps`; a `resumed` run's start at
    /// the lines written from now on.
    pub fn with_steps(mut self, steps_jsonl: &Path, resumed: bool) -> Writer {
        let mut read = Steps::default();
        if resumed {
            read.skip_existing(steps_jsonl);
        }
        let dir = self.path.parent().unwrap_or(Path::new(".")).join("steps");
        self.steps = Some(Box::new(StepScalars {
            source: steps_jsonl.to_path_buf(),
            dir,
            read,
            out: None,
        }));
        self
    }

    /// What ran, at the run's start (step 0): `config` (`config.json`) as text and
    /// as the HParams plugin's hyperparameters (with the policies' parameters), and
    /// each policy's source as text (`policies/NAME`), from `sources`.
    pub fn start(
        &mut self,
        config: &serde_json::Value,
        sources: &[(String, String)],
    ) -> std::io::Result<()> {
        let pretty = serde_json::to_string_pretty(config).unwrap_or_default();
        self.text(0, "config", &code_block(&pretty))?;
        for (name, source) in sources {
            self.text(0, &format!("policies/{name}"), &code_block(source))?;
        }
        let data = hparams::start(config, now());
        self.plugin(0, hparams::START_TAG, &data)?;
        self.flush()
    }

    /// A summary of HParams plugin data at `step` (with TensorBoard's own empty
    /// float tensor).
    fn plugin(&mut self, step: u64, tag: &str, data: &hparams::PluginData) -> std::io::Result<()> {
        let empty = TensorProto {
            dtype: DT_FLOAT,
            tensor_shape: Some(TensorShape {
                dim: vec![Dim { size: 0 }],
            }),
            string_val: Vec::new(),
        };
        self.tensor(step, tag, empty, "hparams", data.encode_to_vec())
    }

    /// A tensor summary of `plugin` (with its `content`) at `step`.
    fn tensor(
        &mut self,
        step: u64,
        tag: &str,
        tensor: TensorProto,
        plugin: &str,
        content: Vec<u8>,
    ) -> std::io::Result<()> {
        self.write(&Event {
            wall_time: now(),
            step: step as i64,
            summary: Some(Summary {
                value: vec![Value {
                    tag: tag.into(),
                    tensor: Some(tensor),
                    metadata: Some(SummaryMetadata {
                        plugin_data: Some(PluginData {
                            plugin_name: plugin.into(),
                            content,
                        }),
                    }),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        })
    }

    /// Writes the steps `steps.jsonl` gained since the last call.
    fn write_steps(&mut self) -> std::io::Result<()> {
        let Some(s) = self.steps.as_mut() else {
            return Ok(());
        };
        s.read.read_more(&s.source);
        if s.read.is_empty() {
            return Ok(());
        }
        if s.out.is_none() {
            // The first step this file holds: earlier files' steps from there on are
            // what a resume replays.
            let first = s.read.at(0).0;
            s.out = Some(Writer::create(&s.dir, Some(first))?);
        }
        let out = s.out.as_mut().expect("just created");
        for i in 0..s.read.len() {
            let (step, loss, lr) = s.read.at(i);
            out.scalars(
                step,
                &[("loss/train_step".into(), loss), ("lr_step".into(), lr)],
            )?;
        }
        // Each step is written once: none stays in memory.
        s.read.forget();
        out.flush()
    }

    /// Names the files as `shown` in the note a failure gives (`--tensorboard DIR`).
    pub fn shown_as(mut self, shown: String) -> Writer {
        self.shown = shown;
        self
    }

    fn write(&mut self, e: &Event) -> std::io::Result<()> {
        let data = e.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc(&len).to_le_bytes())?;
        self.out.write_all(&data)?;
        self.out.write_all(&masked_crc(&data).to_le_bytes())
    }

    /// Scalars at `step`, one event.
    pub fn scalars(&mut self, step: u64, values: &[(String, f64)]) -> std::io::Result<()> {
        let value = values
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(tag, v)| Value {
                tag: tag.clone(),
                simple_value: Some(*v as f32),
                ..Default::default()
            })
            .collect();
        self.write(&Event {
            wall_time: now(),
            step: step as i64,
            summary: Some(Summary { value }),
            ..Default::default()
        })
    }

    /// A text summary (TensorBoard's Text tab) at `step`.
    pub fn text(&mut self, step: u64, tag: &str, text: &str) -> std::io::Result<()> {
        let string = TensorProto {
            dtype: DT_STRING,
            tensor_shape: Some(TensorShape::default()),
            string_val: vec![text.as_bytes().to_vec()],
        };
        self.tensor(step, tag, string, "text", Vec::new())
    }

    /// Makes what was written visible to a TensorBoard reading the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A run's scalars per epoch (1-based steps), and its events worth a marker as
/// text (`events/KIND`). A failure stops the TensorBoard files, not the run.
impl Sink for Writer {
    fn event(
        &mut self,
        _event: &crate::sink::Event,
        line: &serde_json::Value,
    ) -> std::io::Result<()> {
        if line["kind"] == "run_end" && line["reason"] != "interrupted" {
            // A finished session, for the HParams tab (interrupted: it goes on later).
            let status = match line["reason"].as_str() {
                Some(r) if r.starts_with("diverged") => hparams::STATUS_FAILURE,
                _ => hparams::STATUS_SUCCESS,
            };
            let step = line["epoch"].as_u64().unwrap_or(0) + 1;
            self.plugin(step, hparams::END_TAG, &hparams::end(status, now()))?;
            return self.flush();
        }
        match crate::report::markers::from_event(line, None) {
            Some(m) => self.text(m.epoch as u64 + 1, &format!("events/{}", m.kind), &m.label),
            None => Ok(()),
        }
    }

    fn epoch(&mut self, r: &EpochRecord, _history: &[serde_json::Value]) -> std::io::Result<()> {
        let mut v: Vec<(String, f64)> = [
            ("loss/train", Some(r.train_loss)),
            ("loss/val", Some(r.val_loss)),
            ("accuracy/train", r.train_acc),
            ("accuracy/val", r.val_acc),
            ("error/val_rmse", r.val_rmse),
            ("error/val_mae", r.val_mae),
            ("r2/val", r.val_r2),
            ("lr", Some(r.lr)),
            ("batch_size", Some(r.batch_size as f64)),
            ("samples_per_s", Some(r.samples_per_s)),
        ]
        .iter()
        .filter_map(|(k, x)| x.map(|x| (k.to_string(), x)))
        .collect();
        v.extend(r.policy.iter().map(|(k, x)| (format!("policy/{k}"), *x)));
        self.scalars(r.epoch as u64 + 1, &v)?;
        self.write_steps()?;
        self.flush()
    }

    fn dropped(&self, e: &std::io::Error) -> Option<String> {
        Some(format!(
            "{}: {e}; no more TensorBoard events for this run",
            self.shown
        ))
    }

    fn name(&self) -> &'static str {
        "tensorboard"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_framed_with_masked_crcs() {
        // The masked CRC of 8 zero bytes, as TensorFlow's own writer computes it
        // (tensorboard.compat.tensorflow_stub: masked_crc32c(b"\0" * 8)).
        assert_eq!(masked_crc(&[0u8; 8]), 0x0798_0329);
    }
}
