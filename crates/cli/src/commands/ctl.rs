//! `rudder ctl RUN stop | save | rollback | set | send`: one decision appended to a
//! running run's `control.jsonl` with an `id`, then the run's `events.jsonl` followed
//! (for `--timeout` seconds at most) until the run records that line: what it
//! applied (and, for `save` and `rollback`, the checkpoint written or restored), or
//! why it rejected it.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use rudder_core::config::ConfigError;
use rudder_policy::Decision;
use rudder_run::control;
use serde_json::{Map, Value, json};

use crate::cli::{CtlAction, CtlOptions};
use crate::error::AppError;

/// How often `events.jsonl` is looked at while waiting.
const POLL: Duration = Duration::from_millis(20);

/// The longest wait `--timeout` may ask for (a day).
const MAX_TIMEOUT: f64 = 86_400.0;

/// Runs `rudder ctl`.
pub(crate) fn command(o: CtlOptions) -> Result<(), AppError> {
    let run = o.run.as_path();
    let shown = run.display().to_string();
    if !(o.timeout.is_finite() && (0.0..=MAX_TIMEOUT).contains(&o.timeout)) {
        return Err(ConfigError::invalid(
            "--timeout",
            format!("must be 0 to {MAX_TIMEOUT} seconds, got {}", o.timeout),
        )
        .into());
    }
    let mut line = decision_of(&o.action)?;
    let at = format!("ctl {shown}");
    if !run.join("config.json").is_file() {
        return Err(ConfigError::invalid(
            at,
            "not a run folder (it has no config.json): give the folder a run's --out named",
        )
        .into());
    }
    match rudder_run::lock::held(run) {
        Some(true) => {}
        Some(false) => {
            return Err(ConfigError::refused(
                at,
                "no rudder is training this run now (its lock is free), so nothing would read the line; a line appended to its control.jsonl by hand is read when the run is resumed",
            )
            .into());
        }
        None => return Err(ConfigError::file(at, "cannot be opened").into()),
    }
    let id = format!("ctl-{}-{}", std::process::id(), nanos());
    line.insert("id".into(), json!(id));
    let events = run.join("events.jsonl");
    let from = std::fs::metadata(&events).map_or(0, |m| m.len());
    let text = Value::Object(line).to_string();
    control::append(run, &text).map_err(|e| {
        ConfigError::file(format!("{shown}/{}", control::CONTROL_FILE), e.to_string())
    })?;
    if o.timeout == 0.0 {
        println!("{shown}: written to {}, id {id}", control::CONTROL_FILE);
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs_f64(o.timeout);
    answer(&o, &id, Follow::new(&events, from), deadline)
}

/// Waits for the run's record of line `id` and prints what it applied (and, for
/// `save` and `rollback`, the checkpoint written or restored); a rejection is exit 2.
fn answer(o: &CtlOptions, id: &str, mut follow: Follow, deadline: Instant) -> Result<(), AppError> {
    let run = o.run.as_path();
    let shown = run.display().to_string();
    let found = follow.until(run, deadline, |e| {
        e["policy"] == "control"
            && e["id"] == id
            && (e["kind"] == "decision" || e["kind"] == "invalid_decision")
    });
    let Some(event) = found? else {
        return Err(not_read(&shown, o.timeout, follow.ended));
    };
    let when = format!(
        "at step {} (epoch {})",
        event["step"],
        event["epoch"].as_u64().unwrap_or(0) + 1
    );
    if event["kind"] == "invalid_decision" {
        let message = event["message"].as_str().unwrap_or("rejected");
        return Err(ConfigError::invalid(
            format!("ctl {shown}"),
            format!("rejected {when}: {message}"),
        )
        .into());
    }
    let applied = describe(&event["decision"]);
    // What the decision then did: the checkpoint written, the one restored.
    let (kind, path) = match &o.action {
        CtlAction::Save { tag } => (
            "checkpoint",
            tag.as_ref().map(|t| format!("checkpoints/{t}")),
        ),
        CtlAction::Rollback { .. } => ("rollback", None),
        _ => ("", None),
    };
    let after = if kind.is_empty() {
        None
    } else {
        follow
            .until(run, deadline, |e| {
                e["kind"] == kind && path.as_deref().is_none_or(|p| e["path"] == p)
            })?
            .map(|e| {
                let text = e["message"].as_str().or(e["reason"].as_str());
                format!(
                    "; {}",
                    text.unwrap_or(e["path"].as_str().unwrap_or_default())
                )
            })
    };
    println!(
        "{shown}: {applied} applied {when}{}",
        after.unwrap_or_default()
    );
    Ok(())
}

/// The decision `action` asks for, checked as the run will check it (key names and
/// types; the run checks the values against its state).
fn decision_of(action: &CtlAction) -> Result<Map<String, Value>, AppError> {
    let (verb, m) = match action {
        CtlAction::Stop { reason } => {
            let mut m = Map::new();
            m.insert("stop".into(), json!(true));
            m.insert(
                "reason".into(),
                json!(reason.as_deref().unwrap_or("stopped through rudder ctl")),
            );
            ("stop", m)
        }
        CtlAction::Save { tag } => {
            let v = tag.as_ref().map_or(json!(true), |t| json!(t));
            ("save", Map::from_iter([("save".to_string(), v)]))
        }
        CtlAction::Rollback { target } => (
            "rollback",
            Map::from_iter([("rollback".to_string(), json!(target))]),
        ),
        CtlAction::Set { pairs } => ("set", set_pairs(pairs)?),
        CtlAction::Send { json } => match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(m)) => ("send", m),
            Ok(_) => {
                return Err(ConfigError::invalid("ctl send", "a decision is a JSON object").into());
            }
            Err(e) => return Err(ConfigError::invalid("ctl send", format!("not JSON: {e}")).into()),
        },
    };
    let mut check = m.clone();
    check.remove("id");
    Decision::from_json(&Value::Object(check)).map_err(|e| {
        ConfigError::invalid(format!("ctl {verb}"), format!("{}: {}", e.key, e.message))
    })?;
    Ok(m)
}

/// `KEY=VALUE` pairs as a decision: a value that reads as JSON is taken as JSON
/// (`0.01`, `true`, `{"a": 1}`), any other as a string (`rescale=sqrt`).
fn set_pairs(pairs: &[String]) -> Result<Map<String, Value>, AppError> {
    let mut m = Map::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(ConfigError::invalid(
                "ctl set",
                format!("{p:?} is not KEY=VALUE (lr=0.01, batch_size=256)"),
            )
            .into());
        };
        let v = serde_json::from_str(v).unwrap_or_else(|_| json!(v));
        m.insert(k.trim().to_string(), v);
    }
    Ok(m)
}

/// The decision as a line says it: `lr 0.01, batch_size 256`, `stop (plateaued)`.
fn describe(d: &Value) -> String {
    let Some(m) = d.as_object() else {
        return "the decision".into();
    };
    let mut parts = Vec::new();
    for (k, v) in m {
        match (k.as_str(), v) {
            ("reason", _) => {}
            ("stop", _) => {
                let reason = m.get("reason").and_then(Value::as_str).unwrap_or_default();
                parts.push(format!("stop ({reason})"));
            }
            ("save", Value::Bool(true)) => parts.push("save".into()),
            (k, Value::String(s)) => parts.push(format!("{k} {s}")),
            (k, v) => parts.push(format!("{k} {v}")),
        }
    }
    parts.join(", ")
}

/// Why no answer came.
fn not_read(shown: &str, timeout: f64, ended: bool) -> AppError {
    let why = if ended {
        "the run ended before it read the line".to_string()
    } else {
        format!(
            "the run did not record the line within {timeout} s (it reads control.jsonl between steps; a step longer than that delays it)"
        )
    };
    AppError::Ctl(format!(
        "ctl {shown}: {why}; the line stays in control.jsonl and is read if the run goes on (or is resumed)"
    ))
}

/// Nanoseconds since the epoch, for a line's id.
fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// `events.jsonl` read from an offset on, complete lines only.
struct Follow<'a> {
    path: &'a Path,
    offset: u64,
    /// Events read and not yet looked at (those after the one a wait found).
    unread: std::collections::VecDeque<Value>,
    /// The run's lock was found free: no more lines will come.
    ended: bool,
}

impl<'a> Follow<'a> {
    fn new(path: &'a Path, offset: u64) -> Follow<'a> {
        Follow {
            path,
            offset,
            unread: Default::default(),
            ended: false,
        }
    }

    /// The first new event `want` takes, looking until `deadline` or until the run
    /// (its folder `run`) has ended and every line it wrote has been read.
    fn until(
        &mut self,
        run: &Path,
        deadline: Instant,
        want: impl Fn(&Value) -> bool,
    ) -> Result<Option<Value>, AppError> {
        loop {
            // Whether the run was still going before this read: once it is not, one
            // more read sees everything it wrote.
            let going = rudder_run::lock::held(run) == Some(true);
            let new = self.read();
            self.unread.extend(new);
            while let Some(e) = self.unread.pop_front() {
                if want(&e) {
                    return Ok(Some(e));
                }
            }
            if !going {
                self.ended = true;
                return Ok(None);
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// The new complete lines as JSON (lines that do not parse are passed over).
    fn read(&mut self) -> Vec<Value> {
        let Ok(mut f) = rudder_core::input::open(self.path) else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err()
            || f.take(16 << 20).read_to_end(&mut buf).is_err()
        {
            return Vec::new();
        }
        let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset += whole as u64;
        buf[..whole]
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect()
    }
}
