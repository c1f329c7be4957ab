//! The one error of every "one of these names" setting: a rescale rule, a watch
//! mode, a rollback target, a model, a device.

/// A name that is none of those a setting accepts: `expected` says what it takes
/// (`must be "linear", "sqrt" or "none"`), `got` is the name given, clipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expected}, got {got:?}")]
pub struct UnknownName {
    /// What the setting takes, as the message says it.
    pub expected: &'static str,
    /// What was given, at most [`crate::text::QUOTE_MAX`] characters.
    pub got: String,
}

impl UnknownName {
    /// `got` is not one of `expected`.
    pub fn new(expected: &'static str, got: &str) -> UnknownName {
        UnknownName {
            expected,
            got: crate::text::clip(got),
        }
    }
}
