//! The checks of the values that are set, from whichever source set them; each
//! error names the option as the user wrote it.

use super::{ConfigError, MAX_PARAM, ModelKind, TrainOptions, parse_device};
use crate::metric::Metric;
use crate::{Param, check_count, check_hyper};

/// Turns an option's key into how the user wrote it (`--batch-size`, or
/// `FILE: batch_size`).
pub(super) type Namer<'a> = &'a dyn Fn(&str) -> String;

impl TrainOptions {
    /// Checks the values that are set; `name` turns a key into how the user wrote it
    /// (`--batch-size`, or `FILE: batch_size`).
    pub fn check(&self, name: Namer) -> Result<(), ConfigError> {
        let fail = |key: &str, msg: String| Err(ConfigError::invalid(name(key), msg));
        self.check_reals(name)?;
        self.check_counts(name)?;
        for p in self.param.iter().flatten() {
            check_param(p, name)?;
        }
        let records = [
            ("resumes", self.resumes.is_some()),
            ("data_sha256", self.data_sha256.is_some()),
            ("model_sha256", self.model_sha256.is_some()),
            ("provenance", self.provenance.is_some()),
        ];
        if let Some((key, _)) = records.iter().find(|(_, set)| *set) {
            return fail(
                key,
                "is a run's own record in its config.json, not an option".into(),
            );
        }
        if let Some(Err(e)) = self.monitor.as_deref().map(Metric::from_name) {
            return fail("monitor", e.to_string());
        }
        if let Some(d) = &self.device {
            parse_device(d).map_err(|e| ConfigError::invalid(name("device"), e.to_string()))?;
        }
        Ok(())
    }

    /// The real numbers: the ranges a decision has too, dropout, Huber's delta,
    /// epsilon, the validation fraction and the betas.
    fn check_reals(&self, name: Namer) -> Result<(), ConfigError> {
        let fail = |key: &str, msg: String| Err(ConfigError::invalid(name(key), msg));
        for (key, v) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
        ] {
            if let Some(Err(e)) = v.map(|x| check_hyper(key, x)) {
                return fail(key, e.message);
            }
        }
        if let Some(p) = self.dropout.filter(|p| !(0.0..1.0).contains(p)) {
            return fail("dropout", format!("must be in [0, 1), got {p}"));
        }
        if self.dropout.is_some_and(|p| p > 0.0)
            && self.model.as_ref().is_some_and(|m| *m != ModelKind::Mlp)
        {
            return fail(
                "dropout",
                "is for the built-in mlp; a model file has its own dropout layers".into(),
            );
        }
        if let Some(d) = self.huber_delta.filter(|&d| !(d.is_finite() && d > 0.0)) {
            return fail(
                "huber_delta",
                format!("must be a finite number > 0, got {d}"),
            );
        }
        if let Some(e) = self.eps.filter(|&e| !(e.is_finite() && e > 0.0)) {
            return fail("eps", format!("must be a finite number > 0, got {e}"));
        }
        if let Some(f) = self.val_fraction.filter(|&f| !(f > 0.0 && f < 1.0)) {
            return fail("val_fraction", format!("must be between 0 and 1, got {f}"));
        }
        if let Some(b) = &self.betas
            && (b.len() != 2 || b.iter().any(|&x| !(0.0..1.0).contains(&x)))
        {
            return fail("betas", format!("needs two numbers in [0, 1), got {b:?}"));
        }
        Ok(())
    }

    /// The counts and sizes: targets, the counts a decision has too, threads and the
    /// models' widths.
    fn check_counts(&self, name: Namer) -> Result<(), ConfigError> {
        let fail = |key: &str, msg: String| Err(ConfigError::invalid(name(key), msg));
        for (key, v, most) in [
            ("targets", self.targets, 1024),
            ("threads", self.threads, 1024),
        ] {
            match v {
                Some(0) => return fail(key, "must be at least 1, got 0".into()),
                Some(t) if t > most => {
                    return fail(key, format!("must be at most {most}, got {t}"));
                }
                _ => {}
            }
        }
        for (key, v) in [
            ("batch_size", self.batch_size),
            ("epochs", self.epochs),
            ("accumulation", self.accumulation),
        ] {
            if let Some(Err(e)) = v.map(|n| check_count(key, n)) {
                return fail(key, e.message);
            }
        }
        for (key, v) in [("hidden", &self.hidden), ("channels", &self.channels)] {
            if let Some(v) = v
                && (v.is_empty() || v.contains(&0))
            {
                return fail(key, format!("needs widths >= 1, got {v:?}"));
            }
        }
        Ok(())
    }
}

/// One `--param`: at most [`MAX_PARAM`] bytes, and `[POLICY.]KEY=VALUE`.
fn check_param(p: &str, name: Namer) -> Result<(), ConfigError> {
    if p.len() > MAX_PARAM {
        return Err(ConfigError::invalid(
            name("param"),
            format!(
                "{}: {} bytes, more than the {} KiB a --param may have",
                crate::text::clip(p),
                p.len(),
                MAX_PARAM >> 10
            ),
        ));
    }
    p.parse::<Param>()
        .map(|_| ())
        .map_err(|e| ConfigError::invalid(name("param"), crate::text::clip(&e.to_string())))
}
