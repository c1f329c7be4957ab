//! Data sets: the embedded digits, MNIST and Fashion-MNIST from IDX files, CSV files;
//! the seeded validation split, normalisation, and batching with a per-epoch shuffle.

pub mod batcher;
pub mod csv;
pub mod idx;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub use batcher::Batcher;

/// The embedded digits set (scikit-learn's copy of UCI optdigits, CC BY 4.0).
const DIGITS_CSV_GZ: &[u8] = include_bytes!("digits.csv.gz");
/// The embedded diabetes set: 442 patients, 10 baseline variables (age, sex, BMI,
/// blood pressure, six serum measurements, unscaled) and a measure of disease
/// progression one year later. Efron, Hastie, Johnstone and Tibshirani, "Least
/// Angle Regression" (2004), as scikit-learn 1.9.1 ships it (`load_diabetes(scaled=
/// False)`, BSD-3-Clause).
const DIABETES_CSV_GZ: &[u8] = include_bytes!("diabetes.csv.gz");

/// A data file that cannot be used, or a tensor that cannot be built from it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {message}")]
    Bad { path: String, message: String },
    #[error("{path}:{line}:{column}: {message}")]
    At {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("building the data tensors: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl DataError {
    pub(crate) fn bad(path: &Path, message: String) -> Self {
        DataError::Bad {
            path: path.display().to_string(),
            message,
        }
    }

    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => e.to_string(),
        };
        Self::bad(path, message)
    }

    pub(crate) fn at(path: &Path, line: usize, column: usize) -> impl Fn(String) -> Self + '_ {
        move |message| DataError::At {
            path: path.display().to_string(),
            line,
            column,
            message,
        }
    }
}

/// Where the examples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Digits,
    Diabetes,
    Mnist(PathBuf),
    FashionMnist(PathBuf),
    Csv(PathBuf),
}

/// One split, resident on the device: `x` is `(n, c, h, w)` for images or `(n, d)`,
/// `y` holds the class numbers as u32, or for regression `(n, targets)` f32 targets
/// standardised with the training split's mean and deviation.
#[derive(Debug, Clone)]
pub struct Split {
    pub x: Tensor,
    pub y: Tensor,
}

impl Split {
    pub fn len(&self) -> usize {
        self.x.dim(0).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A loaded data set, normalised with statistics of its training split.
#[derive(Debug, Clone)]
pub struct Data {
    pub train: Split,
    pub val: Split,
    /// `(channels, height, width)` when the examples are images (or square CSV rows).
    pub image: Option<(usize, usize, usize)>,
    pub features: usize,
    /// The model's output width: the classes, or for regression the targets.
    pub classes: usize,
    /// Regression: how the targets were standardised, to report in their units.
    pub targets: Option<Targets>,
    /// SHA-256 of the examples as read (pixels and labels, or the CSV text): a
    /// resumed run checks it is given the data it trained on.
    pub fingerprint: String,
}

/// Regression targets: the training split's mean and deviation per target (a
/// prediction p is `p * std + mean` in the data's units), and the validation split's
/// sum of squares about its mean per target, in those units (R^2's denominator).
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub val_sst: Vec<f64>,
}

/// The data sets `--data` names (anything else is a CSV path).
pub const NAMES: [&str; 4] = ["digits", "diabetes", "mnist", "fashion-mnist"];

/// The most values (features) of one example: 1,048,576 (a 1024x1024 image).
pub const MAX_FEATURES: usize = 1 << 20;
/// The most values of a whole data set: 2^29, 2 GiB as f32.
pub const MAX_VALUES: usize = 1 << 29;
/// The most classes (the largest label plus one).
pub const MAX_CLASSES: usize = 100_000;

/// Examples in host memory, before the split and normalisation.
struct Raw {
    x: Vec<f32>,
    y: Vec<u32>,
    /// Regression targets, `len x n_targets` (empty for classification).
    t: Vec<f32>,
    n_targets: usize,
    width: usize,
    image: Option<(usize, usize, usize)>,
}

impl Raw {
    fn len(&self) -> usize {
        self.x.len() / self.width.max(1)
    }

    fn from_idx(images: idx::IdxImages, labels: Vec<u8>) -> Raw {
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

    fn from_csv(t: csv::CsvTable) -> Raw {
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
struct Normalizer {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalizer {
    fn fit(raw: &Raw) -> Normalizer {
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

    fn apply(&self, raw: &mut Raw) {
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
fn split(raw: Raw, val_fraction: f64, seed: u64) -> Result<(Raw, Raw), DataError> {
    let n_val = check_fraction(val_fraction, raw.len())?;
    let mut idx: Vec<usize> = (0..raw.len()).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ SPLIT_SALT));
    Ok((raw.select(&idx[n_val..]), raw.select(&idx[..n_val])))
}

/// Mixed into the seed so the split and the shuffle draw different streams.
const SPLIT_SALT: u64 = 0x5eed_5917;

fn to_split(raw: Raw, device: &Device) -> Result<Split, DataError> {
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

/// The embedded digits as CSV text.
pub fn digits_csv() -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(DIGITS_CSV_GZ), &mut text)
        .expect("the embedded digits file is valid gzip");
    text
}

/// The embedded diabetes set as CSV text.
pub fn diabetes_csv() -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(DIABETES_CSV_GZ),
        &mut text,
    )
    .expect("the embedded diabetes file is valid gzip");
    text
}

/// Loads `source` for classification (see [`load_task`]).
pub fn load(
    source: &Source,
    val_fraction: f64,
    seed: u64,
    device: &Device,
) -> Result<Data, DataError> {
    load_task(source, None, val_fraction, seed, device)
}

/// Loads `source`, splits off validation where the set has none, normalises both
/// splits with the training split's statistics and puts them on `device`. With
/// `regression: Some(n)` the last n CSV columns are real targets, standardised on the
/// training split.
pub fn load_task(
    source: &Source,
    regression: Option<usize>,
    val_fraction: f64,
    seed: u64,
    device: &Device,
) -> Result<Data, DataError> {
    use sha2::Digest;
    let mut sha = sha2::Sha256::new();
    let table = |text: &str, path: &Path| match regression {
        Some(n) => csv::parse_regression(text, path, n),
        None => csv::parse(text, path),
    };
    let (mut train, mut val) = match source {
        Source::Digits if regression.is_some() => {
            return Err(DataError::Usage(
                "--task regression: digits is a classification set (try --data diabetes)".into(),
            ));
        }
        Source::Diabetes if regression.is_none() => {
            return Err(DataError::Usage(
                "--task classification: diabetes is a regression set (its target is a real number)"
                    .into(),
            ));
        }
        Source::Digits => {
            let text = digits_csv();
            sha.update(text.as_bytes());
            let mut raw = Raw::from_csv(csv::parse(&text, Path::new("<digits>"))?);
            raw.x.iter_mut().for_each(|v| *v /= 16.0);
            split(raw, val_fraction, seed)?
        }
        Source::Diabetes => {
            let text = diabetes_csv();
            sha.update(text.as_bytes());
            let raw = Raw::from_csv(table(&text, Path::new("<diabetes>"))?);
            split(raw, val_fraction, seed)?
        }
        Source::Csv(path) => {
            // A name that is neither a data set nor a file: say which names there are.
            if !path.exists() && path.extension().is_none() {
                let given = path.display().to_string();
                let hint = crate::runlog::nearest(&given, NAMES)
                    .map_or(String::new(), |n| format!(" (did you mean {n}?)"));
                return Err(DataError::Usage(format!(
                    "--data {}: not one of {} and no such file{hint}",
                    crate::runlog::clip(&given),
                    NAMES.join(", ")
                )));
            }
            let text = String::from_utf8(idx::read_maybe_gz(path)?)
                .map_err(|_| DataError::bad(path, "not UTF-8 text".into()))?;
            sha.update(text.as_bytes());
            split(Raw::from_csv(table(&text, path)?), val_fraction, seed)?
        }
        Source::Mnist(_) | Source::FashionMnist(_) if regression.is_some() => {
            return Err(DataError::Usage(format!(
                "--task regression: {} is a classification set",
                source.name()
            )));
        }
        Source::Mnist(dir) | Source::FashionMnist(dir) => {
            let (ti, tl) = idx::read_split(dir, "train")?;
            let (vi, vl) = idx::read_split(dir, "t10k")?;
            for part in [&ti.pixels, &tl, &vi.pixels, &vl] {
                sha.update(part);
            }
            if (ti.rows, ti.cols) != (vi.rows, vi.cols) {
                return Err(DataError::bad(
                    dir,
                    "train and t10k images differ in size".into(),
                ));
            }
            (Raw::from_idx(ti, tl), Raw::from_idx(vi, vl))
        }
    };
    for (split, part) in [("training", &train), ("validation", &val)] {
        if part.len() == 0 {
            return Err(DataError::Usage(format!(
                "--data: the {split} split of {} is empty",
                source.name()
            )));
        }
    }
    let norm = Normalizer::fit(&train);
    norm.apply(&mut train);
    norm.apply(&mut val);
    let (image, features) = (train.image, train.width);
    let fingerprint: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if regression.is_some() {
        let targets = standardise_targets(&mut train, &mut val);
        return Ok(Data {
            classes: train.n_targets,
            train: to_split(train, device)?,
            val: to_split(val, device)?,
            image,
            features,
            targets: Some(targets),
            fingerprint,
        });
    }
    let classes = train
        .y
        .iter()
        .chain(&val.y)
        .max()
        .map_or(0, |&m| m as usize + 1);
    if classes > MAX_CLASSES {
        return Err(DataError::Usage(format!(
            "--data: {} has a label of {}: rudder trains at most {MAX_CLASSES} classes",
            crate::runlog::clip(&source.name()),
            classes - 1
        )));
    }
    if classes < 2 {
        return Err(DataError::Usage(format!(
            "--data: {} has a single class; nothing to learn",
            source.name()
        )));
    }
    Ok(Data {
        train: to_split(train, device)?,
        val: to_split(val, device)?,
        image,
        features,
        classes,
        targets: None,
        fingerprint,
    })
}

/// Standardises both splits' targets with the training split's mean and (population)
/// deviation per target; the validation sums of squares are taken first, in the
/// data's units.
fn standardise_targets(train: &mut Raw, val: &mut Raw) -> Targets {
    let k = train.n_targets;
    let stats = |r: &Raw| {
        let n = r.len().max(1) as f64;
        let mut mean = vec![0f64; k];
        for row in r.t.chunks(k) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64 / n;
            }
        }
        let mut ss = vec![0f64; k];
        for row in r.t.chunks(k) {
            for ((s, m), &v) in ss.iter_mut().zip(&mean).zip(row) {
                *s += (v as f64 - m).powi(2);
            }
        }
        (mean, ss, n)
    };
    let (mean, ss, n) = stats(train);
    let std: Vec<f64> = ss
        .iter()
        .map(|s| {
            let sd = (s / n).sqrt();
            if sd > 1e-12 { sd } else { 1.0 }
        })
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

impl Data {
    /// A classification set from tensors already built: `x` of any shape and
    /// dtype the model takes (one example per row), `y` the class numbers as u32.
    /// Its fingerprint is the SHA-256 of the tensors' bytes.
    pub fn from_tensors(
        train_x: Tensor,
        train_y: Tensor,
        val_x: Tensor,
        val_y: Tensor,
        classes: usize,
    ) -> Result<Data, DataError> {
        use sha2::Digest;
        let mut sha = sha2::Sha256::new();
        for t in [&train_x, &train_y, &val_x, &val_y] {
            let bytes = t
                .flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()?;
            for b in bytes {
                sha.update(b.to_le_bytes());
            }
        }
        let dims = train_x.dims().to_vec();
        if train_y.dims1()? != dims[0] || val_y.dims1()? != val_x.dim(0)? {
            return Err(DataError::Usage(
                "Data::from_tensors: x and y differ in their number of examples".into(),
            ));
        }
        let image = (dims.len() == 4).then(|| (dims[1], dims[2], dims[3]));
        Ok(Data {
            features: dims[1..].iter().product(),
            image,
            classes,
            targets: None,
            fingerprint: sha.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            train: Split {
                x: train_x,
                y: train_y,
            },
            val: Split { x: val_x, y: val_y },
        })
    }
}

impl Source {
    /// A short name for messages and the report.
    pub fn name(&self) -> String {
        match self {
            Source::Digits => "digits".into(),
            Source::Diabetes => "diabetes".into(),
            Source::Mnist(_) => "mnist".into(),
            Source::FashionMnist(_) => "fashion-mnist".into(),
            Source::Csv(p) => p.display().to_string(),
        }
    }
}
