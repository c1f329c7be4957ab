//! Examples in host memory between reading and the device: the seeded split,
//! normalisation fitted on the training split, regression targets standardised on
//! it, and the move onto the device.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{DataError, Split, Targets, csv, idx};

/// Examples in host memory, before the split and normalisation.
pub(super) struct Raw {
    pub(super) x: Vec<f32>,
    pub(super) y: Vec<u32>,
    /// Regression targets, `len x n_targets` (empty for classification).
    pub(super) t: Vec<f32>,
    pub(super) n_targets: usize,
    pub(super) width: usize,
    pub(super) image: Option<(usize, usize, usize)>,
}

impl Raw {
    pub(super) fn len(&self) -> usize {
        self.x.len() / self.width.max(1)
    }

    pub(super) fn from_idx(images: idx::IdxImages, labels: Vec<u8>) -> Raw {
        let width = images.rows * images.cols;
        Raw {
            x: images.pixels.iter().map(|&p| p as f32 / 255.0).collect(),
            y: labels.into_iter().map(u32::from).collect(),
            t: Vec::new(),
            n_targets: 0,
            width,
            image: Some((1, images.rows, images.cols)),
        }
    }

    pub(super) fn from_csv(t: csv::CsvTable) -> Raw {
        let side = (t.width as f64).sqrt().round() as usize;
        Raw {
            image: (side * side == t.width).then_some((1, side, side)),
            width: t.width,
            x: t.features,
            y: t.labels,
            t: t.targets,
            n_targets: t.n_targets,
        }
    }

    /// Moves the examples at `idx` out into a new `Raw`.
    fn select(&self, idx: &[usize]) -> Raw {
        let mut x = Vec::with_capacity(idx.len() * self.width);
        for &i in idx {
            x.extend_from_slice(&self.x[i * self.width..(i + 1) * self.width]);
        }
        let k = self.n_targets;
        Raw {
            x,
            y: if k == 0 {
                idx.iter().map(|&i| self.y[i]).collect()
            } else {
                Vec::new()
            },
            t: idx
                .iter()
                .flat_map(|&i| self.t[i * k..(i + 1) * k].iter().copied())
                .collect(),
            n_targets: k,
            width: self.width,
            image: self.image,
        }
    }
}

/// Normalisation fitted on the training split: one mean and deviation for images,
/// one per feature for tabular data.
pub(super) struct Normalizer {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalizer {
    pub(super) fn fit(raw: &Raw) -> Normalizer {
        let groups = if raw.image.is_some() { 1 } else { raw.width };
        let mut sum = vec![0f64; groups];
        let mut sq = vec![0f64; groups];
        for (i, &v) in raw.x.iter().enumerate() {
            let g = if groups == 1 { 0 } else { i % raw.width };
            sum[g] += v as f64;
            sq[g] += (v as f64) * (v as f64);
        }
        let per_group = (raw.x.len() / groups).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / per_group).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let sd = (s / per_group - m * m).max(0.0).sqrt();
                if sd > 1e-8 { sd as f32 } else { 1.0 }
            })
            .collect();
        Normalizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    pub(super) fn apply(&self, raw: &mut Raw) {
        let groups = self.mean.len();
        for (i, v) in raw.x.iter_mut().enumerate() {
            let g = if groups == 1 { 0 } else { i % raw.width };
            *v = (*v - self.mean[g]) / self.std[g];
        }
    }
}

fn check_fraction(val_fraction: f64, n: usize) -> Result<usize, DataError> {
    let n_val = (val_fraction * n as f64).round() as usize;
    if n_val == 0 || n_val >= n {
        return Err(DataError::Usage(format!(
            "--val-fraction: {val_fraction} of {n} examples leaves an empty split"
        )));
    }
    Ok(n_val)
}

/// Splits `raw` into train and validation parts by a seeded permutation.
pub(super) fn split(raw: Raw, val_fraction: f64, seed: u64) -> Result<(Raw, Raw), DataError> {
    let n_val = check_fraction(val_fraction, raw.len())?;
    let mut idx: Vec<usize> = (0..raw.len()).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ SPLIT_SALT));
    Ok((raw.select(&idx[n_val..]), raw.select(&idx[..n_val])))
}

/// Mixed into the seed so the split and the shuffle draw different streams.
const SPLIT_SALT: u64 = 0x5eed_5917;

pub(super) fn to_split(raw: Raw, device: &Device) -> Result<Split, DataError> {
    let n = raw.len();
    let x = match raw.image {
        Some((c, h, w)) => Tensor::from_vec(raw.x, (n, c, h, w), device)?,
        None => Tensor::from_vec(raw.x, (n, raw.width), device)?,
    };
    let y = match raw.n_targets {
        0 => Tensor::from_vec(raw.y, n, device)?,
        k => Tensor::from_vec(raw.t, (n, k), device)?,
    };
    Ok(Split { x, y })
}

/// A deviation at most this fraction of the values' largest magnitude is rounding
/// (f32 holds about 7 digits): the target is constant.
const CONSTANT: f64 = 1e-6;

/// Standardises both splits' targets with the training split's mean and (population)
/// deviation per target; the validation sums of squares are taken first, in the
/// data's units. A target whose deviation is rounding next to its values' scale
/// (a constant column, at any scale) keeps deviation 1 and a validation sum of
/// squares of exactly 0, so R^2 follows scikit-learn's `force_finite` rule.
pub(super) fn standardise_targets(train: &mut Raw, val: &mut Raw) -> Targets {
    let k = train.n_targets;
    let stats = |r: &Raw| {
        let n = r.len().max(1) as f64;
        let mut mean = vec![0f64; k];
        let mut scale = vec![0f64; k];
        for row in r.t.chunks(k) {
            for ((m, a), &v) in mean.iter_mut().zip(&mut scale).zip(row) {
                *m += v as f64 / n;
                *a = a.max((v as f64).abs());
            }
        }
        let mut ss = vec![0f64; k];
        for row in r.t.chunks(k) {
            for ((s, m), &v) in ss.iter_mut().zip(&mean).zip(row) {
                *s += (v as f64 - m).powi(2);
            }
        }
        // A deviation within rounding of the scale is none.
        for (s, a) in ss.iter_mut().zip(&scale) {
            if (*s / n).sqrt() <= CONSTANT * a {
                *s = 0.0;
            }
        }
        (mean, ss, n)
    };
    let (mean, ss, n) = stats(train);
    let std: Vec<f64> = ss
        .iter()
        .map(|s| if *s > 0.0 { (s / n).sqrt() } else { 1.0 })
        .collect();
    let (_, val_sst, _) = stats(val);
    for r in [train, val] {
        for row in r.t.chunks_mut(k) {
            for ((v, m), s) in row.iter_mut().zip(&mean).zip(&std) {
                *v = ((*v as f64 - m) / s) as f32;
            }
        }
    }
    Targets { mean, std, val_sst }
}
