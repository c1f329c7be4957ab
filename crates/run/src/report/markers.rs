//! Policy events as chart markers: which events are worth one, the text a reader
//! hovers (the decision's values, the log line, the error's place and message), a
//! colour and shape per kind (errors red crosses, unmistakable), and markers of one
//! kind in one epoch merged. A schedule's per-epoch LR is shown by the LR curve, not
//! by a marker per epoch.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A policy event to mark on the charts, at the end of `epoch` (0-based).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// 0-based.
    pub epoch: usize,
    /// The event's kind (`decision`, `stop`, ...); empty in checkpoints written before
    /// kinds were recorded (drawn as decisions).
    #[serde(default)]
    pub kind: String,
    /// What a reader hovers.
    pub label: String,
}

/// A kind as drawn: its name in the legend, colour and shape.
pub struct Style {
    /// The kind's name in the legend.
    pub name: &'static str,
    /// The CSS colour.
    pub color: &'static str,
    /// The symbol's shape.
    pub shape: Shape,
}

/// A marker's symbol.
#[derive(Clone, Copy, PartialEq)]
pub enum Shape {
    /// A circle.
    Circle,
    /// A square.
    Square,
    /// A diamond.
    Diamond,
    /// A triangle pointing down.
    TriangleDown,
    /// A cross (errors).
    Cross,
}

/// The kinds marked, in legend order.
pub const STYLES: [(&str, Style); 10] = [
    (
        "decision",
        Style {
            name: "decision",
            color: "#1c7ed6",
            shape: Shape::Circle,
        },
    ),
    (
        "log",
        Style {
            name: "log",
            color: "#868e96",
            shape: Shape::Circle,
        },
    ),
    (
        "checkpoint",
        Style {
            name: "checkpoint (save)",
            color: "#0c8599",
            shape: Shape::Square,
        },
    ),
    (
        "stop",
        Style {
            name: "stop",
            color: "#212529",
            shape: Shape::Square,
        },
    ),
    (
        "rollback",
        Style {
            name: "rollback",
            color: "#7048e8",
            shape: Shape::TriangleDown,
        },
    ),
    (
        "resume",
        Style {
            name: "resume",
            color: "#495057",
            shape: Shape::TriangleDown,
        },
    ),
    (
        "reload",
        Style {
            name: "reload",
            color: "#2b8a3e",
            shape: Shape::Diamond,
        },
    ),
    (
        "invalid_decision",
        Style {
            name: "invalid decision",
            color: "#f08c00",
            shape: Shape::Cross,
        },
    ),
    (
        "reload_failed",
        Style {
            name: "reload failed",
            color: "#e03131",
            shape: Shape::Cross,
        },
    ),
    (
        "policy_error",
        Style {
            name: "policy error",
            color: "#e03131",
            shape: Shape::Cross,
        },
    ),
];

/// How `kind` is drawn (an unknown or empty kind as a decision).
pub fn style(kind: &str) -> &'static Style {
    STYLES
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&STYLES[0].1, |(_, s)| s)
}

/// Whether an error kind (drawn with a solid line through the chart).
pub fn is_error(kind: &str) -> bool {
    matches!(kind, "policy_error" | "reload_failed" | "invalid_decision")
}

/// The marker for event `e` (an `events.jsonl` object), if it is worth one; `run`
/// prefixes its text on a comparison page.
pub fn from_event(e: &Value, run: Option<&str>) -> Option<Marker> {
    let kind = e["kind"].as_str()?;
    let epoch = e["epoch"].as_u64()? as usize;
    let decision = e.get("decision").and_then(Value::as_object);
    match kind {
        // The LR curve shows a schedule; a marker per epoch would hide the rest. A
        // person's LR (through `control.jsonl`) is marked: it is the story.
        "decision"
            if e["policy"] != "control"
                && e["policy"] != "console"
                && decision.is_some_and(|d| d.keys().all(|k| k == "lr")) =>
        {
            return None;
        }
        "decision" | "log" | "stop" | "rollback" | "resume" | "reload" | "reload_failed"
        | "policy_error" | "invalid_decision" => {}
        // A save a policy asked for, the interrupt's, or one that failed; not the
        // periodic ones (every epoch would have one).
        "checkpoint" => {
            let path = e["path"].as_str().unwrap_or("");
            let name = path.rsplit('/').next().unwrap_or(path);
            let failed = e.get("reason").is_some_and(|r| !r.is_null());
            if !failed && (name == "best" || name.starts_with("epoch-")) {
                return None;
            }
        }
        _ => return None,
    }
    let mut text = String::new();
    if let Some(r) = run {
        text.push_str(r);
        text.push_str(": ");
    }
    text.push_str(style(kind).name);
    if let Some(p) = e["policy"].as_str() {
        text.push_str(&format!(" ({p}"));
        if let Some(h) = e["hook"].as_str().filter(|h| *h != p) {
            text.push_str(&format!(", {h}"));
        }
        text.push(')');
    }
    if let Some(d) = decision {
        let kv: Vec<String> = d
            .iter()
            .map(|(k, v)| format!("{k}: {}", value(v)))
            .collect();
        text.push_str(&format!(": {}", kv.join(", ")));
    }
    if let (Some(f), Some(l)) = (e["file"].as_str(), e["line"].as_u64()) {
        text.push_str(&format!(
            " at {f}:{l}:{}",
            e["column"].as_u64().unwrap_or(0)
        ));
    }
    for key in ["message", "reason", "path"] {
        if let Some(m) = e[key].as_str() {
            text.push_str(&format!(": {m}"));
        }
    }
    // A hover text, not the record: a 1 KiB log line is cut (events.jsonl has it).
    let mut label = rudder_core::text::one_line(&text);
    if label.len() > MAX_LABEL {
        let cut = (0..=MAX_LABEL)
            .rev()
            .find(|&i| label.is_char_boundary(i))
            .unwrap_or(0);
        label.truncate(cut);
        label.push_str("...");
    }
    Some(Marker {
        epoch,
        kind: kind.to_string(),
        label,
    })
}

/// The longest hover text a marker keeps, in bytes.
const MAX_LABEL: usize = 240;

fn value(v: &Value) -> String {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map_or_else(|| n.to_string(), rudder_core::text::fmt_num),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The symbol of `shape` centred at `(x, y)`, `r` across, in `color`.
pub fn symbol(shape: Shape, x: f64, y: f64, r: f64, color: &str) -> String {
    match shape {
        Shape::Circle => format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="{color}"/>"#),
        Shape::Square => format!(
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
            x - r,
            y - r,
            2.0 * r,
            2.0 * r
        ),
        Shape::Diamond => format!(
            r#"<path d="M{x:.1} {:.1}L{:.1} {y:.1}L{x:.1} {:.1}L{:.1} {y:.1}Z" fill="{color}"/>"#,
            y - r * 1.3,
            x + r * 1.3,
            y + r * 1.3,
            x - r * 1.3
        ),
        Shape::TriangleDown => format!(
            r#"<path d="M{:.1} {:.1}L{:.1} {:.1}L{x:.1} {:.1}Z" fill="{color}"/>"#,
            x - r * 1.2,
            y - r,
            x + r * 1.2,
            y - r,
            y + r * 1.2
        ),
        Shape::Cross => format!(
            r#"<path d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}" stroke="{color}" stroke-width="2.6" fill="none"/>"#,
            x - r,
            y - r,
            x + r,
            y + r,
            x - r,
            y + r,
            x + r,
            y - r
        ),
    }
}

/// The legend of the kinds among `groups`, as HTML (empty when there are none).
pub fn legend(groups: &[Group]) -> String {
    let present: Vec<&Style> = STYLES
        .iter()
        .filter(|(k, _)| groups.iter().any(|g| g.kind == *k))
        .map(|(_, s)| s)
        .collect();
    if present.is_empty() {
        return String::new();
    }
    let mut out = String::from(r#"<div class="legend events">events:"#);
    for s in present {
        out.push_str(&format!(
            r#"<span><svg viewBox="0 0 14 14" width="14" height="14">{}</svg>{}</span>"#,
            symbol(s.shape, 7.0, 7.0, 4.0, s.color),
            s.name
        ));
    }
    out.push_str("</div>");
    out
}

/// Markers of one kind at one epoch, merged: what a chart draws.
pub struct Group {
    /// 0-based.
    pub epoch: usize,
    /// The kind (`decision`, `stop`, ...).
    pub kind: String,
    /// How many markers were merged.
    pub count: usize,
    /// What a reader hovers: up to five of the markers' labels.
    pub text: String,
}

/// The most groups a chart draws: past it, neighbouring epochs merge into ranges
/// (the count and up to five labels stay in each range's hover text).
pub const MAX_GROUPS: usize = 400;

/// The markers of the `events.jsonl` at `path`, read a line at a time (a file of any
/// size takes the memory of its markers, not of its events); `each` sees every
/// event. A missing or unreadable file has none; a line that is not JSON is skipped.
pub fn read(path: &std::path::Path, mut each: impl FnMut(&Value)) -> Vec<Marker> {
    use std::io::BufRead;
    let Ok(file) = rudder_core::input::open(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let Ok(line) = line else { break };
        let Ok(e) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        each(&e);
        out.extend(from_event(&e, None));
    }
    out
}

/// `markers` merged by epoch and kind, in epoch order; each group's text lists up to
/// five of its markers' and how many more. With more than [`MAX_GROUPS`] groups,
/// epochs are merged into ranges of equal width (`epochs 1-50: ...`), so a page's
/// size and the time to draw it are bounded whatever the run logged.
pub fn group(markers: &[Marker]) -> Vec<Group> {
    let kind_of = |m: &Marker| {
        if m.kind.is_empty() {
            "decision".to_string()
        } else {
            m.kind.clone()
        }
    };
    let distinct: std::collections::HashSet<(usize, &str)> =
        markers.iter().map(|m| (m.epoch, m.kind.as_str())).collect();
    let (Some(lo), Some(hi)) = (
        markers.iter().map(|m| m.epoch).min(),
        markers.iter().map(|m| m.epoch).max(),
    ) else {
        return Vec::new();
    };
    let width = if distinct.len() > MAX_GROUPS {
        let kinds = distinct
            .iter()
            .map(|(_, k)| *k)
            .collect::<std::collections::HashSet<_>>()
            .len();
        let per_kind = (MAX_GROUPS / kinds.max(1)).max(1) as u128;
        (((hi - lo) as u128 + 1).div_ceil(per_kind)).max(1) as usize
    } else {
        1
    };
    let mut merged: std::collections::BTreeMap<(usize, String), Group> = Default::default();
    for m in markers {
        let start = lo + (m.epoch - lo) / width * width;
        let g = merged.entry((start, kind_of(m))).or_insert_with(|| Group {
            epoch: start,
            kind: kind_of(m),
            count: 0,
            text: String::new(),
        });
        g.count += 1;
        if g.count <= 5 {
            if g.count > 1 {
                g.text.push('\n');
            }
            g.text.push_str(&m.label);
        }
    }
    let mut out: Vec<Group> = merged.into_values().collect();
    for g in &mut out {
        if g.count > 5 {
            g.text.push_str(&format!("\n... and {} more", g.count - 5));
        }
        let last = g.epoch.saturating_add(width - 1).min(hi);
        g.text = if width == 1 || last == g.epoch {
            format!("epoch {}: {}", g.epoch as u128 + 1, g.text)
        } else {
            format!(
                "epochs {}-{}: {}",
                g.epoch as u128 + 1,
                last as u128 + 1,
                g.text
            )
        };
    }
    out.sort_by_key(|g| g.epoch);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persons_lr_is_marked_a_schedules_is_not() {
        let at = |policy: &str, hook: &str| serde_json::json!({"kind": "decision", "epoch": 2, "policy": policy, "hook": hook, "decision": {"lr": 0.01}});
        assert!(from_event(&at("lr/cosine", "on_epoch_start"), None).is_none());
        let m = from_event(&at("control", "control"), None).expect("marked");
        assert_eq!(m.label, "decision (control): lr: 0.01");
    }
}
