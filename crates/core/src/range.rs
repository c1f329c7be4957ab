//! The ranges a setting may take, checked the same wherever it is set: a flag, a
//! config file, a policy's decision, a checkpoint read back.

/// The most epochs a run may plan (an epoch index beyond it overflows policies'
/// integer arithmetic long before).
pub const MAX_EPOCHS: usize = 1_000_000_000;
/// The most micro-batches per optimizer step.
pub const MAX_ACCUMULATION: usize = 1 << 20;

/// A value a key may not take: the key at fault and why (a policy's rejected
/// decision, an option out of range).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
#[non_exhaustive]
pub struct Invalid {
    /// The key as a decision or a config file names it (`batch_size`).
    pub key: String,
    /// Why, for a person.
    pub message: String,
}

impl Invalid {
    /// `key` may not take the value; `message` says why.
    pub fn new(key: &str, message: impl Into<String>) -> Invalid {
        Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// The range of `lr`, `momentum` and `weight_decay`, checked the same wherever one
/// is set (a decision, a trainer's options): finite and >= 0, momentum < 1.
pub fn check_hyper(key: &str, x: f64) -> Result<(), Invalid> {
    if !x.is_finite() || x < 0.0 {
        return Err(Invalid::new(
            key,
            format!("must be a finite number >= 0, got {x}"),
        ));
    }
    if key == "momentum" && x >= 1.0 {
        return Err(Invalid::new(key, format!("must be < 1, got {x}")));
    }
    Ok(())
}

/// The range of a count: at least 1, and for `accumulation` and `epochs` at most
/// [`MAX_ACCUMULATION`] and [`MAX_EPOCHS`].
pub fn check_count(key: &str, n: usize) -> Result<(), Invalid> {
    let most = match key {
        "accumulation" => MAX_ACCUMULATION,
        "epochs" => MAX_EPOCHS,
        _ => usize::MAX,
    };
    if n == 0 {
        return Err(Invalid::new(key, "must be at least 1, got 0"));
    }
    if n > most {
        return Err(Invalid::new(
            key,
            format!("must be at most {most}, got {n}"),
        ));
    }
    Ok(())
}
