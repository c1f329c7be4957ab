//! Live updates as server-sent events. A run's stream looks at its files every
//! [`LOOK`] and sends each new epoch (`metric`), event (`event`, with its marker) and
//! step (`step`) as it appears, its status when it changes, and `reset` when a resume
//! cut the files back; the list's stream and a sweep's send the whole list or page
//! again when it changed. A page that goes away ends its stream at the next send.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::detail::{marker, step_point};
use crate::scan::Found;
use crate::state::State;
use crate::summary::{Locks, status};
use crate::tail::{self, CHUNK};

/// How often a run's files are looked at.
pub(crate) const LOOK: Duration = Duration::from_millis(100);

/// How often the list and a sweep are looked at.
const LIST_LOOK: Duration = Duration::from_millis(500);

/// The stream type every live answer is.
pub(crate) type Stream = Sse<KeepAliveStream<ReceiverStream<Result<Event, Infallible>>>>;

fn stream(rx: mpsc::Receiver<Result<Event, Infallible>>) -> Stream {
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}

fn event(name: &str, data: &Value) -> Result<Event, Infallible> {
    Ok(Event::default().event(name).data(data.to_string()))
}

/// Byte offsets a run's stream goes on from (what its page was drawn from).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct From {
    pub(crate) metrics: u64,
    pub(crate) events: u64,
    pub(crate) steps: u64,
}

/// A run's stream.
pub(crate) fn run(found: Found, from: From) -> Stream {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let dir = found.dir;
        let mut at = from;
        let mut shown: Option<(&'static str, Option<String>)> = None;
        let mut tick = tokio::time::interval(LOOK);
        for n in 0u64.. {
            tick.tick().await;
            let m = tail::read_from(&dir, "metrics.jsonl", at.metrics, CHUNK);
            let e = tail::read_from(&dir, "events.jsonl", at.events, CHUNK);
            let s = tail::read_from(&dir, "steps.jsonl", at.steps, CHUNK);
            if m.cut || e.cut || s.cut {
                let _gone = tx.send(event("reset", &Value::Null)).await;
                return;
            }
            let mut out = Vec::new();
            out.extend(s.values.iter().map(|v| event("step", &step_point(v))));
            out.extend(
                e.values
                    .iter()
                    .map(|v| event("event", &json!({"event": v, "marker": marker(v)}))),
            );
            out.extend(m.values.iter().map(|v| event("metric", v)));
            (at.metrics, at.events, at.steps) = (m.end, e.end, s.end);
            if n % 5 == 0 || !e.values.is_empty() {
                let now = status(&dir, &Locks::now());
                if shown.as_ref() != Some(&now) {
                    out.push(event("status", &json!({"status": now.0, "reason": now.1})));
                    shown = Some(now);
                }
            }
            for x in out {
                if tx.send(x).await.is_err() {
                    return;
                }
            }
        }
    });
    stream(rx)
}

/// A stream of `name` events: `look()`'s value every [`LIST_LOOK`], sent whenever it
/// changed.
fn whole(name: &'static str, look: impl Fn() -> Value + Send + 'static) -> Stream {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut last = Value::Null;
        let mut tick = tokio::time::interval(LIST_LOOK);
        loop {
            tick.tick().await;
            let now = look();
            if now != last {
                if tx.send(event(name, &now)).await.is_err() {
                    return;
                }
                last = now;
            }
        }
    });
    stream(rx)
}

/// The list's stream: every run and sweep, again whenever anything in it changed.
pub(crate) fn list(state: Arc<State>) -> Stream {
    whole("list", move || state.list())
}

/// A sweep's stream: its page again whenever it changed.
pub(crate) fn sweep(state: Arc<State>, found: Found) -> Stream {
    whole("sweep", move || crate::detail::sweep(&found, &state.roots))
}
