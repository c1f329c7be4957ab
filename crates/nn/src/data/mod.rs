//! Data sets: the embedded digits, MNIST and Fashion-MNIST from IDX files, CSV files;
//! the seeded validation split, normalisation, and batching with a per-epoch shuffle.

pub mod batcher;
pub mod csv;
pub mod idx;
mod raw;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

pub use batcher::Batcher;
use raw::{Normalizer, Raw, split, standardise_targets, to_split};

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
    /// A file that cannot be read or used as a whole.
    #[error("{path}: {message}")]
    Bad {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A fault at a place in a file.
    #[error("{path}:{line}:{column}: {message}")]
    At {
        /// The file.
        path: String,
        /// 1-based.
        line: usize,
        /// 1-based.
        column: usize,
        /// What is wrong there.
        message: String,
    },
    /// A data set that does not suit the options (an empty split, one class, the
    /// wrong task).
    #[error("{0}")]
    Usage(String),
    /// A tensor could not be built from the examples.
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
    /// The embedded digits (8x8 images, 10 classes).
    Digits,
    /// The embedded diabetes set (a regression).
    Diabetes,
    /// MNIST's IDX files in this folder.
    Mnist(PathBuf),
    /// Fashion-MNIST's IDX files in this folder.
    FashionMnist(PathBuf),
    /// A CSV file.
    Csv(PathBuf),
}

impl Source {
    /// Where `cfg`'s examples come from, with `--data-dir` resolved for IDX sets
    /// (else `$RUDDER_DATA/NAME`, else `./data/NAME`).
    pub fn of(cfg: &rudder_core::TrainConfig) -> Source {
        let dir = |name: &str| {
            cfg.data_dir
                .clone()
                .unwrap_or_else(|| match std::env::var_os("RUDDER_DATA") {
                    Some(root) => PathBuf::from(root).join(name),
                    None => PathBuf::from("data").join(name),
                })
        };
        match cfg.data.as_str() {
            "digits" => Source::Digits,
            "diabetes" => Source::Diabetes,
            "mnist" => Source::Mnist(dir("mnist")),
            "fashion-mnist" => Source::FashionMnist(dir("fashion-mnist")),
            path => Source::Csv(PathBuf::from(path)),
        }
    }
}

/// One split, resident on the device: `x` is `(n, c, h, w)` for images or `(n, d)`,
/// `y` holds the class numbers as u32, or for regression `(n, targets)` f32 targets
/// standardised with the training split's mean and deviation.
#[derive(Debug, Clone)]
pub struct Split {
    /// The inputs.
    pub x: Tensor,
    /// The labels or targets.
    pub y: Tensor,
}

impl Split {
    /// The number of examples.
    pub fn len(&self) -> usize {
        self.x.dim(0).unwrap_or(0)
    }

    /// Whether the split has no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A loaded data set, normalised with statistics of its training split.
#[derive(Debug, Clone)]
pub struct Data {
    /// The training split.
    pub train: Split,
    /// The validation split.
    pub val: Split,
    /// `(channels, height, width)` when the examples are images (or square CSV rows).
    pub image: Option<(usize, usize, usize)>,
    /// Values per example (`c * h * w` for images).
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
    /// Per target: the training split's mean.
    pub mean: Vec<f64>,
    /// Per target: the training split's standard deviation.
    pub std: Vec<f64>,
    /// Per target: the validation split's sum of squares about its mean.
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
    let (mut train, mut val, fingerprint) = read(source, regression, val_fraction, seed)?;
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
    let (classes, targets) = match regression {
        Some(_) => (
            train.n_targets,
            Some(standardise_targets(&mut train, &mut val)),
        ),
        None => (classes_of(&train, &val, source)?, None),
    };
    Ok(Data {
        train: to_split(train, device)?,
        val: to_split(val, device)?,
        image,
        features,
        classes,
        targets,
        fingerprint,
    })
}

/// The classes of a classification set: the largest label plus one, at least 2 and
/// at most [`MAX_CLASSES`].
fn classes_of(train: &Raw, val: &Raw, source: &Source) -> Result<usize, DataError> {
    let classes = train
        .y
        .iter()
        .chain(&val.y)
        .max()
        .map_or(0, |&m| m as usize + 1);
    if classes > MAX_CLASSES {
        return Err(DataError::Usage(format!(
            "--data: {} has a label of {}: rudder trains at most {MAX_CLASSES} classes",
            rudder_core::text::clip(&source.name()),
            classes - 1
        )));
    }
    if classes < 2 {
        return Err(DataError::Usage(format!(
            "--data: {} has a single class; nothing to learn",
            source.name()
        )));
    }
    Ok(classes)
}

/// Reads `source` into its training and validation examples (split here when the
/// set has no split of its own), with the SHA-256 of what was read.
fn read(
    source: &Source,
    regression: Option<usize>,
    val_fraction: f64,
    seed: u64,
) -> Result<(Raw, Raw, String), DataError> {
    use sha2::Digest;
    let mut sha = sha2::Sha256::new();
    let table = |text: &str, path: &Path| match regression {
        Some(n) => csv::parse_regression(text, path, n),
        None => csv::parse(text, path),
    };
    let (train, val) = match source {
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
            let text = read_csv(path)?;
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
    let fingerprint = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((train, val, fingerprint))
}

/// A CSV file's text; a name that is neither a data set nor a file says which names
/// there are.
fn read_csv(path: &Path) -> Result<String, DataError> {
    if !path.exists() && path.extension().is_none() {
        let given = path.display().to_string();
        let hint = rudder_core::text::nearest(&given, NAMES)
            .map_or(String::new(), |n| format!(" (did you mean {n}?)"));
        return Err(DataError::Usage(format!(
            "--data {}: not one of {} and no such file{hint}",
            rudder_core::text::clip(&given),
            NAMES.join(", ")
        )));
    }
    String::from_utf8(idx::read_maybe_gz(path)?)
        .map_err(|_| DataError::bad(path, "not UTF-8 text".into()))
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
