//! Batch normalisation with a fused ReLU on channels-last data: statistics per
//! channel over `n * h * w` rows, as torch's BatchNorm2d (momentum 0.1, eps 1e-5,
//! biased variance to normalise, unbiased in the running estimate).

use super::{Op, Param};

const MOMENTUM: f32 = 0.1;
const EPS: f32 = 1e-5;

pub struct BnRelu {
    /// Elements per example (`h * w * channels`).
    len: usize,
    channels: usize,
    pub gamma: Param,
    pub beta: Param,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    /// Normalised input of the last training batch, for the backward pass.
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    /// Per-channel scratch: sums, then coefficients.
    sum: Vec<f32>,
    coef: Vec<f32>,
    sum2: Vec<f32>,
}

impl BnRelu {
    pub fn new(len: usize, channels: usize) -> BnRelu {
        BnRelu {
            len,
            channels,
            gamma: Param::filled(channels, 1.0),
            beta: Param::zeros(channels),
            running_mean: vec![0.0; channels],
            running_var: vec![1.0; channels],
            xhat: Vec::new(),
            inv_std: vec![0.0; channels],
            sum: vec![0.0; channels],
            coef: vec![0.0; channels],
            sum2: vec![0.0; channels],
        }
    }
}

impl Op for BnRelu {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], train: bool, _threads: usize) {
        let c = self.channels;
        let total = n * self.len;
        let (x, y) = (&x[..total], &mut y[..total]);
        let rows = (total / c) as f32;
        // Per channel: y = max(0, x * scale + shift).
        let (scale, shift) = (&mut self.sum, &mut self.sum2);
        if train {
            let mean = &mut *scale;
            mean.fill(0.0);
            for xr in x.chunks_exact(c) {
                mean.iter_mut().zip(xr).for_each(|(s, &v)| *s += v);
            }
            mean.iter_mut().for_each(|s| *s /= rows);
            let var = &mut *shift;
            var.fill(0.0);
            for xr in x.chunks_exact(c) {
                var.iter_mut()
                    .zip(xr)
                    .zip(mean.iter())
                    .for_each(|((s, &v), &m)| *s += (v - m) * (v - m));
            }
            for ch in 0..c {
                let v = var[ch] / rows;
                self.inv_std[ch] = 1.0 / (v + EPS).sqrt();
                let unbiased = v * rows / (rows - 1.0).max(1.0);
                self.running_mean[ch] =
                    (1.0 - MOMENTUM) * self.running_mean[ch] + MOMENTUM * mean[ch];
                self.running_var[ch] =
                    (1.0 - MOMENTUM) * self.running_var[ch] + MOMENTUM * unbiased;
            }
            if self.xhat.len() < total {
                self.xhat.resize(total, 0.0);
            }
            let inv = &self.inv_std;
            for (xr, hr) in x.chunks_exact(c).zip(self.xhat.chunks_exact_mut(c)) {
                hr.iter_mut()
                    .zip(xr)
                    .zip(mean.iter().zip(inv))
                    .for_each(|((h, &v), (&m, &i))| *h = (v - m) * i);
            }
            let (g, b) = (&self.gamma.value, &self.beta.value);
            for (hr, yr) in self.xhat.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
                yr.iter_mut()
                    .zip(hr)
                    .zip(g.iter().zip(b))
                    .for_each(|((o, &h), (&g, &b))| *o = (h * g + b).max(0.0));
            }
            return;
        }
        for ch in 0..c {
            let inv = 1.0 / (self.running_var[ch] + EPS).sqrt();
            scale[ch] = inv * self.gamma.value[ch];
            shift[ch] = self.beta.value[ch] - self.running_mean[ch] * scale[ch];
        }
        for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
            yr.iter_mut()
                .zip(xr)
                .zip(scale.iter().zip(shift.iter()))
                .for_each(|((o, &v), (&a, &b))| *o = (v * a + b).max(0.0));
        }
    }

    fn backward(
        &mut self,
        _x: &[f32],
        y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        acc: bool,
        _threads: usize,
    ) {
        let c = self.channels;
        let total = n * self.len;
        let rows = (total / c) as f32;
        let dy = &mut dy[..total];
        // Through the ReLU, then the per-channel sums of dy and dy * xhat.
        let (sum, sum2) = (&mut self.sum, &mut self.sum2);
        sum.fill(0.0);
        sum2.fill(0.0);
        for ((gr, hr), yr) in dy
            .chunks_exact_mut(c)
            .zip(self.xhat.chunks_exact(c))
            .zip(y[..total].chunks_exact(c))
        {
            for ((((g, &h), &o), s), s2) in gr
                .iter_mut()
                .zip(hr)
                .zip(yr)
                .zip(sum.iter_mut())
                .zip(sum2.iter_mut())
            {
                if o <= 0.0 {
                    *g = 0.0;
                }
                *s += *g;
                *s2 += *g * h;
            }
        }
        if !acc {
            self.gamma.grad.fill(0.0);
            self.beta.grad.fill(0.0);
        }
        for ch in 0..c {
            self.beta.grad[ch] += sum[ch];
            self.gamma.grad[ch] += sum2[ch];
        }
        let Some(dx) = dx else { return };
        // dx = k (rows dy - sum - xhat sum2), k = gamma inv_std / rows; folded per
        // channel into dx = a dy + b xhat + c0.
        let a = &mut self.coef;
        for ch in 0..c {
            let k = self.gamma.value[ch] * self.inv_std[ch] / rows;
            sum[ch] *= -k;
            sum2[ch] *= -k;
            a[ch] = k * rows;
        }
        for ((dr, gr), hr) in dx[..total]
            .chunks_exact_mut(c)
            .zip(dy.chunks_exact(c))
            .zip(self.xhat.chunks_exact(c))
        {
            for (((((d, &g), &h), &a), &b), &c0) in dr
                .iter_mut()
                .zip(gr)
                .zip(hr)
                .zip(a.iter())
                .zip(sum2.iter())
                .zip(sum.iter())
            {
                *d = a * g + b * h + c0;
            }
        }
    }

    fn params(&mut self) -> [Option<&mut Param>; 2] {
        [Some(&mut self.gamma), Some(&mut self.beta)]
    }

    fn as_norm(&mut self) -> Option<&mut BnRelu> {
        Some(self)
    }
}
