//! The losses fused with their gradient: one pass over the logits gives the batch
//! mean loss, the number classified right, and d(mean loss)/d(logits); for a
//! regression, one pass over the predictions gives the mean loss and its gradient.

use rudder_nn::loss::Loss;

/// Returns `(mean loss, correct)`; writes the gradient of the mean into `grad`.
/// `scale` multiplies the gradient (1 / accumulation).
pub fn loss_and_grad(
    loss: Loss,
    logits: &[f32],
    y: &[u32],
    k: usize,
    grad: &mut [f32],
    scale: f32,
) -> (f64, usize) {
    let n = y.len();
    let (mut total, mut correct) = (0f64, 0usize);
    for (i, &label) in y.iter().enumerate() {
        let t = label as usize;
        let row = &logits[i * k..(i + 1) * k];
        let g = &mut grad[i * k..(i + 1) * k];
        if argmax(row) == t {
            correct += 1;
        }
        match loss {
            // `Net` sends a regression to `regress_and_grad`.
            Loss::Mae | Loss::Huber => unreachable!("a regression loss on class labels"),
            Loss::CrossEntropy => {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for (gj, &v) in g.iter_mut().zip(row) {
                    *gj = (v - max).exp();
                    sum += *gj;
                }
                total += (sum.ln() + max - row[t]) as f64;
                let s = scale / (sum * n as f32);
                g.iter_mut().for_each(|gj| *gj *= s);
                g[t] -= scale / n as f32;
            }
            Loss::Mse => {
                let s = 2.0 * scale / (n * k) as f32;
                let mut row_sum = 0f32;
                for (j, (gj, &v)) in g.iter_mut().zip(row).enumerate() {
                    let d = v - if j == t { 1.0 } else { 0.0 };
                    row_sum += d * d;
                    *gj = s * d;
                }
                total += row_sum as f64 / k as f64;
            }
            Loss::Hinge => {
                let s = scale / (n * k) as f32;
                let mut row_sum = 0f32;
                let mut active = 0f32;
                for (j, (gj, &v)) in g.iter_mut().zip(row).enumerate() {
                    let m = 1.0 - row[t] + v;
                    *gj = 0.0;
                    if j != t && m > 0.0 {
                        row_sum += m;
                        *gj = s;
                        active += 1.0;
                    }
                }
                g[t] = -s * active;
                total += row_sum as f64 / k as f64;
            }
        }
    }
    (total / n.max(1) as f64, correct)
}

/// A regression's loss on predictions against real targets (both `n x k`), the mean
/// over all `n * k` values as torch's `MSELoss`, `L1Loss` and `HuberLoss(delta)`;
/// writes `scale` times the gradient of the mean into `grad` and returns the mean.
/// (The gradient of |d| at 0 is 0, as torch's sign.)
pub fn regress_and_grad(
    loss: Loss,
    delta: f32,
    pred: &[f32],
    target: &[f32],
    grad: &mut [f32],
    scale: f32,
) -> f64 {
    let m = pred.len();
    let s = scale / m.max(1) as f32;
    let mut total = 0f64;
    for ((g, &p), &t) in grad[..m].iter_mut().zip(pred).zip(&target[..m]) {
        let d = p - t;
        let (value, slope) = match loss {
            Loss::Mae => (d.abs(), sign(d)),
            Loss::Huber if d.abs() <= delta => (0.5 * d * d, d),
            Loss::Huber => (delta * (d.abs() - 0.5 * delta), delta * sign(d)),
            _ => (d * d, 2.0 * d),
        };
        total += value as f64;
        *g = s * slope;
    }
    total / m.max(1) as f64
}

fn sign(d: f32) -> f32 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Index of the first largest value.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}
