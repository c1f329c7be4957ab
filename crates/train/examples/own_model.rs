//! Your own candle model under rudder's loop: a character-level next-character
//! classifier written with candle-nn (an embedding of the 8 characters before, two
//! linear layers), trained on the standard policy library's sources through
//! `rudder_train::fit`, so it gets rudder's policies (hot reload included), checkpoints,
//! metrics and report. Run: `cargo run --release -p rudder-train --example own_model [OUT_DIR]`.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Embedding, Linear, VarBuilder, VarMap};
use rudder_core::TrainOptions;
use rudder_train::{Trainable, fit};

/// The characters before the one to predict.
const CONTEXT: usize = 8;
/// Bytes 0-127 (anything else reads as 0).
const VOCAB: usize = 128;

struct NextChar {
    vars: VarMap,
    embed: Embedding,
    hidden: Linear,
    out: Linear,
}

impl NextChar {
    fn new(device: &Device) -> candle_core::Result<NextChar> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, device);
        Ok(NextChar {
            embed: candle_nn::embedding(VOCAB, 16, vb.pp("embed"))?,
            hidden: candle_nn::linear(CONTEXT * 16, 128, vb.pp("hidden"))?,
            out: candle_nn::linear(128, VOCAB, vb.pp("out"))?,
            vars,
        })
    }
}

impl Trainable for NextChar {
    fn forward(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        let (b, _) = x.dims2()?;
        let e = self.embed.forward(x)?.reshape((b, CONTEXT * 16))?;
        self.out.forward(&self.hidden.forward(&e)?.relu()?)
    }

    fn params(&self) -> Vec<(String, Var)> {
        let mut v: Vec<(String, Var)> = self
            .vars
            .data()
            .lock()
            .expect("the VarMap's lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// (x, y) of every position of `text`: the CONTEXT bytes before, and the byte.
fn windows(text: &[u8], device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let b: Vec<u32> = text
        .iter()
        .map(|&c| if c < VOCAB as u8 { c as u32 } else { 0 })
        .collect();
    let n = b.len() - CONTEXT;
    let x: Vec<u32> = (0..n).flat_map(|i| b[i..i + CONTEXT].to_vec()).collect();
    let y: Vec<u32> = (0..n).map(|i| b[i + CONTEXT]).collect();
    Ok((
        Tensor::from_vec(x, (n, CONTEXT), device)?,
        Tensor::from_vec(y, n, device)?,
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/own_model".into());
    let device = Device::Cpu;
    // The text: the standard library's training policies' sources, one after the
    // other.
    let text: Vec<u8> = rudder_policy::EMBEDDED
        .iter()
        .filter(|(name, _)| !name.starts_with("sweep/"))
        .flat_map(|(_, source)| source.bytes())
        .collect();
    // The last tenth of the text is the validation set (not shuffled in).
    let cut = text.len() * 9 / 10;
    let (tx, ty) = windows(&text[..cut], &device)?;
    let (vx, vy) = windows(&text[cut..], &device)?;
    // The baseline: always the most frequent character of the training text.
    let mut counts = [0usize; VOCAB];
    for &c in ty.to_vec1::<u32>()?.iter() {
        counts[c as usize] += 1;
    }
    let top = (0..VOCAB).max_by_key(|&c| counts[c]).unwrap_or(0) as u32;
    let val_y = vy.to_vec1::<u32>()?;
    let baseline = val_y.iter().filter(|&&c| c == top).count() as f64 / val_y.len() as f64;
    let data = rudder_nn::data::Data::from_tensors(tx, ty, vx, vy, VOCAB)?;
    let cfg = rudder_train::resolve(TrainOptions {
        epochs: Some(6),
        optimizer: Some(rudder_core::OptimizerKind::Adamw),
        lr: Some(0.003),
        batch_size: Some(128),
        out: Some(out.clone().into()),
        ..TrainOptions::default()
    })?;
    let mut policies = rudder_train::load_policies(
        &["lr/cosine".into(), "stop/early_stop".into()],
        &[],
        cfg.lr_scaling,
        cfg.watch,
    )?;
    let summary = fit(NextChar::new(&device)?, &data, &cfg, &mut policies)?;
    let acc = summary.last.as_ref().and_then(|r| r.val_acc).unwrap_or(0.0);
    println!(
        "own_model: {} epochs, val_acc {acc:.4} against {baseline:.4} for always {:?}; run in {out}",
        summary.epochs_run,
        char::from(top as u8)
    );
    if acc < 2.0 * baseline {
        return Err(format!("val_acc {acc:.4} is not twice the baseline {baseline:.4}").into());
    }
    Ok(())
}
