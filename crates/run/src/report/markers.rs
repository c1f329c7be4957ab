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
        // The LR curve shows a schedule; a marker per epoch would hide the rest.
        "decision" if decision.is_some_and(|d| d.keys().all(|k| k == "lr")) => return None,
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
        if let Some(h) = e["hook"].as_str() {
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
    Some(Marker {
        epoch,
        kind: kind.to_string(),
        label: rudder_core::text::one_line(&text),
    })
}

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

/// `markers` merged by epoch and kind, in epoch order; each group's text lists up to
/// five of its markers' and how many more.
pub fn group(markers: &[Marker]) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for m in markers {
        let kind = if m.kind.is_empty() {
            "decision"
        } else {
            &m.kind
        };
        match out
            .iter_mut()
            .find(|g| g.epoch == m.epoch && g.kind == kind)
        {
            Some(g) => {
                g.count += 1;
                if g.count <= 5 {
                    g.text.push('\n');
                    g.text.push_str(&m.label);
                }
            }
            None => out.push(Group {
                epoch: m.epoch,
                kind: kind.to_string(),
                count: 1,
                text: m.label.clone(),
            }),
        }
    }
    for g in &mut out {
        if g.count > 5 {
            g.text.push_str(&format!("\n... and {} more", g.count - 5));
        }
        g.text = format!("epoch {}: {}", g.epoch + 1, g.text);
    }
    out.sort_by_key(|g| g.epoch);
    out
}
