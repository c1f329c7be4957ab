//! The engine's element-wise layers for model files (the book's File formats page,
//! docs/src/reference/file-formats.md): activations (ReLU, GELU, tanh, sigmoid),
//! dropout and layer norm (batch norm is `norm::BnRelu::plain`), each with its backward
//! pass, on vectors or on channels-last images. They compute what `model::file`'s
//! candle layers compute (tested against candle's autograd in `engine::tests`).

use super::{Op, Param};

/// An activation without parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// max(0, x).
    Relu,
    /// GELU, the exact (erf) form.
    Gelu,
    /// The hyperbolic tangent.
    Tanh,
    /// The logistic function, 1 / (1 + e^-x).
    Sigmoid,
}

/// `y = f(x)` element by element, on `len` values per example.
pub struct Act {
    kind: Kind,
    len: usize,
}

impl Act {
    /// An activation of `kind` on `len` values per example.
    pub fn new(kind: Kind, len: usize) -> Act {
        Act { kind, len }
    }
}

const SQRT_2: f32 = std::f32::consts::SQRT_2;
/// 1 / sqrt(2 pi).
const INV_SQRT_2PI: f32 = 0.398_942_3;

impl Op for Act {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], _train: bool, _threads: usize) {
        let total = n * self.len;
        let (x, y) = (&x[..total], &mut y[..total]);
        match self.kind {
            Kind::Relu => y.iter_mut().zip(x).for_each(|(o, &v)| *o = v.max(0.0)),
            Kind::Gelu => y
                .iter_mut()
                .zip(x)
                .for_each(|(o, &v)| *o = 0.5 * v * (1.0 + libm::erff(v / SQRT_2))),
            Kind::Tanh => y.iter_mut().zip(x).for_each(|(o, &v)| *o = v.tanh()),
            Kind::Sigmoid => y
                .iter_mut()
                .zip(x)
                .for_each(|(o, &v)| *o = 1.0 / ((-v).exp() + 1.0)),
        }
    }

    fn backward(
        &mut self,
        x: &[f32],
        y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        _acc: bool,
        _threads: usize,
    ) {
        let Some(dx) = dx else {
            return;
        };
        let total = n * self.len;
        let (x, y, dy, dx) = (&x[..total], &y[..total], &dy[..total], &mut dx[..total]);
        for i in 0..total {
            let d = match self.kind {
                Kind::Relu => {
                    if y[i] > 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                Kind::Gelu => {
                    let v = x[i];
                    0.5 * (1.0 + libm::erff(v / SQRT_2)) + v * INV_SQRT_2PI * (-0.5 * v * v).exp()
                }
                Kind::Tanh => 1.0 - y[i] * y[i],
                Kind::Sigmoid => y[i] * (1.0 - y[i]),
            };
            dx[i] = dy[i] * d;
        }
    }
}

/// Inverted dropout with `model::file::Dropout`'s masks: the same seed, step and
/// draw order, so the engine and candle drop the same values.
/// On channels-last images the mask is drawn in torch's `(c, h, w)` order and read
/// through [`Dropout::on_image`]'s permutation, so it drops the values candle drops.
pub struct Dropout {
    p: f64,
    seed: u64,
    step: u64,
    len: usize,
    mask: Vec<f32>,
    /// For each engine element of an example, its torch index (images only).
    order: Option<Vec<usize>>,
    drawn: Vec<f32>,
}

impl Dropout {
    /// Dropout of probability `p` on `len` values per example, its masks drawn from
    /// `seed` and the step.
    pub fn new(p: f64, seed: u64, len: usize) -> Dropout {
        Dropout {
            p,
            seed,
            step: 0,
            len,
            mask: Vec::new(),
            order: None,
            drawn: Vec::new(),
        }
    }

    /// Dropout on channels-last `hw x c` images.
    pub fn on_image(p: f64, seed: u64, hw: usize, c: usize) -> Dropout {
        Dropout {
            order: (c > 1 && hw > 1).then(|| super::block::torch_order(hw, c)),
            ..Dropout::new(p, seed, hw * c)
        }
    }
}

impl Op for Dropout {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], train: bool, _threads: usize) {
        let total = n * self.len;
        let (x, y) = (&x[..total], &mut y[..total]);
        if !train || self.p == 0.0 {
            y.copy_from_slice(x);
            self.mask.clear();
            return;
        }
        match &self.order {
            None => rudder_nn::model::file::dropout_mask(
                self.seed,
                self.step,
                self.p,
                total,
                &mut self.mask,
            ),
            Some(order) => {
                let (d, seed, step, p) = (self.len, self.seed, self.step, self.p);
                rudder_nn::model::file::dropout_mask(seed, step, p, total, &mut self.drawn);
                self.mask.resize(total, 0.0);
                for (m, t) in self
                    .mask
                    .chunks_exact_mut(d)
                    .zip(self.drawn.chunks_exact(d))
                {
                    m.iter_mut().zip(order).for_each(|(m, &j)| *m = t[j]);
                }
            }
        }
        y.iter_mut()
            .zip(x)
            .zip(&self.mask)
            .for_each(|((o, &v), &m)| *o = v * m);
    }

    fn backward(
        &mut self,
        _x: &[f32],
        _y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        _acc: bool,
        _threads: usize,
    ) {
        let Some(dx) = dx else {
            return;
        };
        let total = n * self.len;
        let (dy, dx) = (&dy[..total], &mut dx[..total]);
        if self.mask.len() < total {
            dx.copy_from_slice(dy);
            return;
        }
        dx.iter_mut()
            .zip(dy)
            .zip(&self.mask)
            .for_each(|((o, &g), &m)| *o = g * m);
    }

    fn set_step(&mut self, step: u64) {
        self.step = step;
    }
}

/// Layer norm over an example's `len` values (eps 1e-5, biased variance), with a
/// weight and bias per value.
pub struct LayerNorm {
    len: usize,
    weight: Param,
    bias: Param,
    /// Normalised input and 1 / std per example, for the backward pass.
    xhat: Vec<f32>,
    rstd: Vec<f32>,
}

impl LayerNorm {
    /// Layer norm over `len` values: weight 1, bias 0.
    pub fn new(len: usize) -> LayerNorm {
        LayerNorm {
            len,
            weight: Param::filled(len, 1.0),
            bias: Param::zeros(len),
            xhat: Vec::new(),
            rstd: Vec::new(),
        }
    }
}

impl Op for LayerNorm {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], _train: bool, _threads: usize) {
        let d = self.len;
        self.xhat.resize(n * d, 0.0);
        self.rstd.resize(n, 0.0);
        for (i, ((xr, yr), hr)) in x[..n * d]
            .chunks_exact(d)
            .zip(y[..n * d].chunks_exact_mut(d))
            .zip(self.xhat.chunks_exact_mut(d))
            .enumerate()
        {
            let mean = xr.iter().sum::<f32>() / d as f32;
            let var = xr.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let r = 1.0 / (var + 1e-5).sqrt();
            self.rstd[i] = r;
            for j in 0..d {
                hr[j] = (xr[j] - mean) * r;
                yr[j] = hr[j] * self.weight.value[j] + self.bias.value[j];
            }
        }
    }

    fn backward(
        &mut self,
        _x: &[f32],
        _y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        acc: bool,
        _threads: usize,
    ) {
        let d = self.len;
        if !acc {
            self.weight.grad.fill(0.0);
            self.bias.grad.fill(0.0);
        }
        for (gr, hr) in dy[..n * d].chunks_exact(d).zip(self.xhat.chunks_exact(d)) {
            for j in 0..d {
                self.weight.grad[j] += gr[j] * hr[j];
                self.bias.grad[j] += gr[j];
            }
        }
        let Some(dx) = dx else {
            return;
        };
        for (i, ((gr, hr), dr)) in dy[..n * d]
            .chunks_exact(d)
            .zip(self.xhat.chunks_exact(d))
            .zip(dx[..n * d].chunks_exact_mut(d))
            .enumerate()
        {
            // dxhat = dy * w; dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)).
            let (mut m1, mut m2) = (0f32, 0f32);
            for j in 0..d {
                let g = gr[j] * self.weight.value[j];
                m1 += g;
                m2 += g * hr[j];
            }
            let (m1, m2) = (m1 / d as f32, m2 / d as f32);
            for j in 0..d {
                let g = gr[j] * self.weight.value[j];
                dr[j] = self.rstd[i] * (g - m1 - hr[j] * m2);
            }
        }
    }

    fn params(&mut self) -> [Option<&mut Param>; 2] {
        [Some(&mut self.weight), Some(&mut self.bias)]
    }
}
