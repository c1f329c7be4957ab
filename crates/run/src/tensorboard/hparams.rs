//! TensorBoard's HParams plugin data (`tensorboard/plugins/hparams/plugin_data.proto`):
//! a run's hyperparameters as a `session_start_info` when it starts, its status as a
//! `session_end_info` when it ends. TensorBoard's HParams tab infers the experiment
//! from the sessions it finds, with every scalar tag as a metric (its last value, the
//! run's final metric).

use serde_json::Value as Json;

/// `HParamsPluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct PluginData {
    #[prost(int32, tag = "1")]
    version: i32,
    #[prost(message, optional, tag = "3")]
    session_start_info: Option<SessionStartInfo>,
    #[prost(message, optional, tag = "4")]
    session_end_info: Option<SessionEndInfo>,
}

/// `SessionStartInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionStartInfo {
    #[prost(map = "string, message", tag = "1")]
    hparams: std::collections::HashMap<String, ProtoValue>,
    #[prost(string, tag = "4")]
    group_name: String,
    #[prost(double, tag = "5")]
    start_time_secs: f64,
}

/// `SessionEndInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionEndInfo {
    #[prost(int32, tag = "1")]
    status: i32,
    #[prost(double, tag = "2")]
    end_time_secs: f64,
}

/// `google.protobuf.Value`: a number, a string or a bool (rudder writes no other).
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoValue {
    #[prost(oneof = "Kind", tags = "2, 3, 4")]
    kind: Option<Kind>,
}

/// `google.protobuf.Value.kind`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    String(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
}

/// `Status.STATUS_SUCCESS`.
pub(super) const STATUS_SUCCESS: i32 = 1;
/// `Status.STATUS_FAILURE`.
pub(super) const STATUS_FAILURE: i32 = 2;

/// The summary tags TensorBoard looks for.
pub(super) const START_TAG: &str = "_hparams_/session_start_info";
pub(super) const END_TAG: &str = "_hparams_/session_end_info";

/// The configuration keys shown as hyperparameters (what a person compares runs by).
const KEYS: &[&str] = &[
    "model",
    "hidden",
    "channels",
    "data",
    "loss",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "accumulation",
    "epochs",
    "seed",
    "policy",
];

/// A JSON value as an hparam: numbers, strings and bools as they are, anything else
/// (a list, `null`) as its JSON text.
fn value(v: &Json) -> ProtoValue {
    let kind = match v {
        Json::Number(n) => Kind::Number(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::String(s.clone()),
        Json::Bool(b) => Kind::Bool(*b),
        other => Kind::String(other.to_string()),
    };
    ProtoValue { kind: Some(kind) }
}

/// The start of a session: the resolved configuration's [`KEYS`] and each policy's
/// parameters as `POLICY.KEY` (from `config.json`'s `provenance`).
pub(super) fn start(config: &Json, start_time_secs: f64) -> PluginData {
    let mut hparams = std::collections::HashMap::new();
    for k in KEYS {
        if let Some(v) = config.get(*k).filter(|v| !v.is_null()) {
            hparams.insert(k.to_string(), value(v));
        }
    }
    for p in config["provenance"].as_array().into_iter().flatten() {
        let name = p["policy"].as_str().unwrap_or("?");
        for (k, v) in p["params"].as_object().into_iter().flatten() {
            hparams.insert(format!("{name}.{k}"), value(v));
        }
    }
    PluginData {
        version: 0,
        session_start_info: Some(SessionStartInfo {
            hparams,
            group_name: String::new(),
            start_time_secs,
        }),
        session_end_info: None,
    }
}

/// The end of a session with `status`.
pub(super) fn end(status: i32, end_time_secs: f64) -> PluginData {
    PluginData {
        version: 0,
        session_start_info: None,
        session_end_info: Some(SessionEndInfo {
            status,
            end_time_secs,
        }),
    }
}
