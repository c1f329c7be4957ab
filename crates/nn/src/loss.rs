//! Loss functions over logits `(n, classes)` and class numbers `(n,)` as u32; each is
//! the batch mean, as PyTorch's default `reduction="mean"`.

use candle_core::{D, DType, Result, Tensor};

pub use rudder_core::Loss;

/// A regression loss of predictions `pred` against real targets of the same shape:
/// the mean over all elements, as torch's `MSELoss`, `L1Loss`, `HuberLoss(delta)`.
pub fn regress(loss: Loss, pred: &Tensor, target: &Tensor, delta: f64) -> Result<Tensor> {
    let d = (pred - target)?;
    match loss {
        Loss::Mae => d.abs()?.mean_all(),
        Loss::Huber => {
            // 0.5 d^2 where |d| <= delta, else delta (|d| - 0.5 delta).
            let a = d.abs()?;
            let quad = (d.sqr()? * 0.5)?;
            let lin = ((&a - 0.5 * delta)? * delta)?;
            a.le(delta)?.where_cond(&quad, &lin)?.mean_all()
        }
        _ => d.sqr()?.mean_all(),
    }
}

/// A classification loss of `logits` against class numbers `target`.
pub fn classify(loss: Loss, logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    match loss {
        Loss::CrossEntropy => cross_entropy(logits, target),
        Loss::Mse => mse(logits, target),
        Loss::Hinge => hinge(logits, target),
        Loss::Mae | Loss::Huber => candle_core::bail!("{} is a regression loss", loss.name()),
    }
}

/// `mean_i( logsumexp(x_i) - x_i[y_i] )`.
pub fn cross_entropy(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let picked = shifted.gather(&target.unsqueeze(1)?, 1)?;
    (log_sum - picked)?.mean_all()
}

fn one_hot(target: &Tensor, classes: usize) -> Result<Tensor> {
    let n = target.dim(0)?;
    let ids = Tensor::arange(0u32, classes as u32, target.device())?.unsqueeze(0)?;
    target
        .unsqueeze(1)?
        .broadcast_as((n, classes))?
        .eq(&ids.broadcast_as((n, classes))?)?
        .to_dtype(DType::F32)
}

/// `mean over i, c of (x_ic - onehot(y_i)_c)^2`.
pub fn mse(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let t = one_hot(target, logits.dim(1)?)?;
    (logits - t)?.sqr()?.mean_all()
}

/// `mean_i( sum_{c != y_i} max(0, 1 - x_i[y_i] + x_ic) / classes )`.
pub fn hinge(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let classes = logits.dim(1)?;
    let picked = logits.gather(&target.unsqueeze(1)?, 1)?;
    let margins = (logits.broadcast_sub(&picked)? + 1.0)?.relu()?;
    // The c == y term is max(0, 1) = 1 for every row: take it back out.
    let per_row = (margins.sum(1)? - 1.0)?;
    (per_row / classes as f64)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    // Computed with PyTorch 2.x:
    //   x = torch.tensor([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]], requires_grad=True)
    //   y = torch.tensor([0, 2])
    fn inputs() -> (Var, Tensor) {
        let x = Tensor::new(&[[1.0f32, 2.0, 0.5], [0.1, -1.0, 3.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
        (Var::from_tensor(&x).unwrap(), y)
    }

    fn check(loss: Loss, want: f32, want_grad: [[f32; 3]; 2]) {
        let (x, y) = inputs();
        let l = classify(loss, x.as_tensor(), &y).unwrap();
        let got = l.to_scalar::<f32>().unwrap();
        assert!((got - want).abs() < 1e-6, "{loss:?}: {got} vs {want}");
        let g = l.backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        for (r, wr) in g.iter().zip(want_grad) {
            for (a, b) in r.iter().zip(wr) {
                assert!((a - b).abs() < 1e-6, "{loss:?} grad {g:?} vs {want_grad:?}");
            }
        }
    }

    #[test]
    fn cross_entropy_matches_torch() {
        // F.cross_entropy(x, y) -> 0.7675715088844299
        // x.grad -> [[-0.38438806, 0.31426585, 0.07012219], [0.02563180, 0.00853209, -0.03416389]]
        check(
            Loss::CrossEntropy,
            0.767_571_5,
            [
                [-0.384_388_06, 0.314_265_85, 0.070_122_19],
                [0.025_631_8, 0.008_532_09, -0.034_163_89],
            ],
        );
    }

    #[test]
    fn mse_matches_torch() {
        // F.mse_loss(x, F.one_hot(y, 3).float()) -> 1.5433334112167358
        // x.grad -> [[0.0, 0.66666669, 0.16666667], [0.03333334, -0.33333334, 0.66666669]]
        check(
            Loss::Mse,
            1.543_333_4,
            [
                [0.0, 0.666_666_7, 0.166_666_67],
                [0.033_333_335, -0.333_333_34, 0.666_666_7],
            ],
        );
    }

    // Computed with PyTorch 2.x:
    //   p = torch.tensor([[0.5, -1.0], [2.0, 0.25], [-3.0, 1.5]], requires_grad=True)
    //   t = torch.tensor([[0.0, 0.5], [0.5, 0.0], [-1.0, 1.25]])
    fn check_regression(loss: Loss, delta: f64, want: f32, want_grad: [[f32; 2]; 3]) {
        let p = Var::from_tensor(
            &Tensor::new(&[[0.5f32, -1.0], [2.0, 0.25], [-3.0, 1.5]], &Device::Cpu).unwrap(),
        )
        .unwrap();
        let t = Tensor::new(&[[0.0f32, 0.5], [0.5, 0.0], [-1.0, 1.25]], &Device::Cpu).unwrap();
        let l = regress(loss, p.as_tensor(), &t, delta).unwrap();
        let got = l.to_scalar::<f32>().unwrap();
        assert!((got - want).abs() < 1e-6, "{loss:?}: {got} vs {want}");
        let g = l.backward().unwrap();
        let g = g.get(p.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        for (r, wr) in g.iter().zip(want_grad) {
            for (a, b) in r.iter().zip(wr) {
                assert!((a - b).abs() < 1e-6, "{loss:?} grad {g:?} vs {want_grad:?}");
            }
        }
    }

    #[test]
    fn regression_mse_matches_torch() {
        // F.mse_loss(p, t) -> 1.4791666269302368
        // p.grad -> [[0.16666667, -0.5], [0.5, 0.08333334], [-0.66666669, 0.08333334]]
        check_regression(
            Loss::Mse,
            1.0,
            1.479_166_6,
            [
                [0.166_666_67, -0.5],
                [0.5, 0.083_333_34],
                [-0.666_666_7, 0.083_333_34],
            ],
        );
    }

    #[test]
    fn mae_matches_torch() {
        // F.l1_loss(p, t) -> 1.0
        // p.grad -> [[0.16666667, -0.16666667], [0.16666667, 0.16666667], [-0.16666667, 0.16666667]]
        check_regression(
            Loss::Mae,
            1.0,
            1.0,
            [
                [0.166_666_67, -0.166_666_67],
                [0.166_666_67, 0.166_666_67],
                [-0.166_666_67, 0.166_666_67],
            ],
        );
    }

    #[test]
    fn huber_matches_torch() {
        // nn.HuberLoss(delta=0.75)(p, t) -> 0.515625
        // p.grad -> [[0.08333334, -0.125], [0.125, 0.04166667], [-0.125, 0.04166667]]
        check_regression(
            Loss::Huber,
            0.75,
            0.515_625,
            [
                [0.083_333_34, -0.125],
                [0.125, 0.041_666_67],
                [-0.125, 0.041_666_67],
            ],
        );
    }

    #[test]
    fn hinge_matches_torch() {
        // nn.MultiMarginLoss()(x, y) -> 0.4166666567325592
        // x.grad -> [[-0.33333334, 0.16666667, 0.16666667], [0.0, 0.0, 0.0]]
        check(
            Loss::Hinge,
            0.416_666_66,
            [[-0.333_333_34, 0.166_666_67, 0.166_666_67], [0.0, 0.0, 0.0]],
        );
    }
}
