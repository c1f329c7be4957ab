//! Decisions: what a hook returns, checked whole against the context, and merged in
//! policy order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Ctx, Settings};
use rudder_core::MAX_EPOCHS;
use rudder_core::UnknownName;
pub use rudder_core::{Invalid, Rescale, check_count, check_hyper};

/// A map of decisions; every key is optional.
///
/// It serialises as the JSON events show it and deserialises back exactly (a
/// many-process trainer broadcasts rank 0's validated decision to the other ranks);
/// a decision read from anywhere else must be validated before it is applied.
///
/// ```
/// use rudder_policy::Decision;
/// let d = Decision { lr: Some(0.1), stop: true, ..Decision::default() };
/// let text = serde_json::to_string(&d).unwrap();
/// assert_eq!(text, r#"{"lr":0.1,"stop":true}"#);
/// assert_eq!(serde_json::from_str::<Decision>(&text).unwrap(), d);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Decision {
    /// The learning rate (finite, >= 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// The batch size (1 to the training set's size); the LR follows it by the rescale
    /// rule unless `lr` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// How the LR follows a `batch_size` change, overriding the run's rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescale: Option<Rescale>,
    /// Batches per optimizer step (>= 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accumulation: Option<usize>,
    /// The planned total of epochs (more than the current epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// The optimizer's momentum (< 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// The optimizer's weight decay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Stops the run at the next boundary.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,
    /// Why the run stops (with `stop`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A line to print and record as a `log` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Numbers to record under `policy` in `metrics.jsonl`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Writes a checkpoint at the next boundary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save: Option<Save>,
    /// Restores a checkpoint's weights and optimizer state before the other keys apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Target>,
}

/// `save`: a checkpoint at the next boundary, named by the epoch (or step), or by a
/// tag. Serialised as the script wrote it: `true` or the tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Save {
    /// `true`: a checkpoint named by the epoch (`epoch-N`), or mid-epoch by the step.
    Now(bool),
    /// A checkpoint under `checkpoints/TAG`.
    Tag(String),
}

/// `rollback`: which checkpoint to restore. Serialised as its name (`"best"`,
/// `"last"`, or the tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
#[non_exhaustive]
pub enum Target {
    /// The `best` checkpoint (the best validation result so far).
    Best,
    /// The latest checkpoint.
    Last,
    /// The checkpoint a `save: "TAG"` wrote (or a sweep's exploit put there),
    /// under `checkpoints/TAG`.
    Tag(String),
}

impl Target {
    /// `"best"`, `"last"`, or a tag a `save` may write.
    pub fn from_name(name: &str) -> Result<Target, UnknownName> {
        match name {
            "best" => Ok(Target::Best),
            "last" => Ok(Target::Last),
            tag if tag_ok(tag) => Ok(Target::Tag(tag.to_string())),
            other => Err(UnknownName::new(
                "must be \"best\", \"last\" or a checkpoint's tag",
                other,
            )),
        }
    }

    /// `"best"`, `"last"` or the tag.
    pub fn name(&self) -> &str {
        match self {
            Target::Best => "best",
            Target::Last => "last",
            Target::Tag(t) => t,
        }
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        t.name().to_string()
    }
}

impl TryFrom<String> for Target {
    type Error = UnknownName;
    fn try_from(s: String) -> Result<Target, UnknownName> {
        Target::from_name(&s)
    }
}

/// Whether `tag` may name a checkpoint folder: 1 to 64 of `[A-Za-z0-9_.-]`, not
/// starting with a dot, and not a name the trainer gives (`best`, `epoch-N`, `step-N`).
fn tag_ok(tag: &str) -> bool {
    let reserved = |prefix: &str| {
        tag.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    (1..=64).contains(&tag.len())
        && !tag.starts_with('.')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && tag != "best"
        && !reserved("epoch-")
        && !reserved("step-")
}

impl Decision {
    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        *self == Decision::default()
    }

    /// Sets `lr`, `momentum` or both and nothing else: what a schedule returns at each
    /// step (torch's `OneCycleLR` and `CyclicLR` move momentum with the LR).
    pub fn is_schedule(&self) -> bool {
        (self.lr.is_some() || self.momentum.is_some())
            && *self
                == Decision {
                    lr: self.lr,
                    momentum: self.momentum,
                    ..Decision::default()
                }
    }

    /// Checks every key against `ctx`; a decision is taken whole or not at all.
    pub fn validate(&self, ctx: &Ctx) -> Result<(), Invalid> {
        for (key, v) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
        ] {
            v.map_or(Ok(()), |x| check_hyper(key, x))?;
        }
        if let Some(b) = self.batch_size.filter(|&b| b < 1 || b > ctx.dataset_size) {
            return Err(Invalid::new(
                "batch_size",
                format!(
                    "must be 1..={} (the training set), got {b}",
                    ctx.dataset_size
                ),
            ));
        }
        if let Some(a) = self.accumulation {
            check_count("accumulation", a)?;
        }
        if let Some(e) = self.epochs.filter(|&e| e <= ctx.epoch || e > MAX_EPOCHS) {
            return Err(Invalid::new(
                "epochs",
                format!(
                    "must be > the current epoch {} and at most {MAX_EPOCHS}, got {e}",
                    ctx.epoch
                ),
            ));
        }
        if let Some((k, v)) = self.metrics.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Invalid::new("metrics", format!("{k} is not finite: {v}")));
        }
        if let Some(Save::Tag(t)) = &self.save
            && !tag_ok(t)
        {
            return Err(Invalid::new(
                "save",
                format!(
                    "a tag is 1 to 64 of A-Z a-z 0-9 _ . - (not best, epoch-N or step-N), got {t:?}"
                ),
            ));
        }
        Ok(())
    }

    /// `self` followed by `later`: for each key the later one wins, `stop` wins if
    /// either stops, metrics are merged.
    pub fn then(mut self, later: Decision) -> Decision {
        macro_rules! take {
            ($($k:ident),*) => { $( if later.$k.is_some() { self.$k = later.$k; } )* };
        }
        take!(
            lr,
            batch_size,
            rescale,
            accumulation,
            epochs,
            momentum,
            weight_decay,
            reason,
            log,
            save,
            rollback
        );
        self.stop |= later.stop;
        self.metrics.extend(later.metrics);
        self
    }

    /// The settings after this decision. A batch-size change rescales the LR by
    /// `rescale` (or `default_rule`) unless the decision also sets `lr`.
    pub fn apply(&self, s: Settings, default_rule: Rescale) -> Settings {
        let mut out = s;
        if let Some(b) = self.batch_size {
            out.batch_size = b;
            if self.lr.is_none() {
                let rule = self.rescale.unwrap_or(default_rule);
                out.lr = rule.lr(s.lr, s.batch_size as f64, b as f64);
            }
        }
        if let Some(lr) = self.lr {
            out.lr = lr;
        }
        out.accumulation = self.accumulation.unwrap_or(s.accumulation);
        out.epochs = self.epochs.unwrap_or(s.epochs);
        out.momentum = self.momentum.unwrap_or(s.momentum);
        out.weight_decay = self.weight_decay.unwrap_or(s.weight_decay);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Best, EpochMetrics};

    fn ctx() -> Ctx<'static> {
        Ctx {
            epoch: 3,
            step: 30,
            steps_per_epoch: 10,
            settings: Settings {
                lr: 0.1,
                batch_size: 64,
                accumulation: 1,
                epochs: 10,
                momentum: 0.0,
                weight_decay: 0.0,
            },
            base_lr: 0.1,
            base_batch_size: 64,
            optimizer: "sgd",
            dataset_size: 640,
            metrics: EpochMetrics::default(),
            history: &[],
            best: Best::default(),
            resumed: false,
        }
    }

    #[test]
    fn batch_size_change_rescales_the_lr_unless_lr_is_set() {
        let s = ctx().settings;
        let d = Decision {
            batch_size: Some(256),
            ..Default::default()
        };
        assert!((d.apply(s, Rescale::Linear).lr - 0.4).abs() < 1e-12);
        assert!((d.apply(s, Rescale::Sqrt).lr - 0.2).abs() < 1e-12);
        let d = Decision {
            batch_size: Some(16),
            rescale: Some(Rescale::None),
            ..Default::default()
        };
        assert_eq!(d.apply(s, Rescale::Linear).lr, 0.1);
        let d = Decision {
            batch_size: Some(16),
            lr: Some(0.5),
            ..Default::default()
        };
        assert_eq!(
            d.apply(s, Rescale::Linear),
            Settings {
                lr: 0.5,
                batch_size: 16,
                ..s
            }
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = ctx();
        let bad = [
            (
                Decision {
                    lr: Some(f64::NAN),
                    ..Default::default()
                },
                "lr",
            ),
            (
                Decision {
                    momentum: Some(1.0),
                    ..Default::default()
                },
                "momentum",
            ),
            (
                Decision {
                    batch_size: Some(641),
                    ..Default::default()
                },
                "batch_size",
            ),
            (
                Decision {
                    accumulation: Some(0),
                    ..Default::default()
                },
                "accumulation",
            ),
            (
                Decision {
                    epochs: Some(3),
                    ..Default::default()
                },
                "epochs",
            ),
        ];
        for (d, key) in bad {
            assert_eq!(d.validate(&c).unwrap_err().key, key);
        }
        assert!(
            Decision {
                epochs: Some(4),
                lr: Some(0.0),
                ..Default::default()
            }
            .validate(&c)
            .is_ok()
        );
    }

    #[test]
    fn later_policies_win_and_any_stop_stops() {
        let a = Decision {
            lr: Some(0.1),
            stop: true,
            epochs: Some(5),
            ..Default::default()
        };
        let b = Decision {
            lr: Some(0.2),
            ..Default::default()
        };
        let m = a.then(b);
        assert_eq!((m.lr, m.stop, m.epochs), (Some(0.2), true, Some(5)));
    }
}
