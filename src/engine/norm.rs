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
    /// Per-channel scratch sums.
    sum: Vec<f32>,
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
        if !train {
            for ch in 0..c {
                self.inv_std[ch] = 1.0 / (self.running_var[ch] + EPS).sqrt();
            }
            for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
                for ch in 0..c {
                    let v =
                        (xr[ch] - self.running_mean[ch]) * self.inv_std[ch] * self.gamma.value[ch]
                            + self.beta.value[ch];
                    yr[ch] = v.max(0.0);
                }
            }
            return;
        }
        self.sum.fill(0.0);
        for xr in x.chunks_exact(c) {
            for (s, &v) in self.sum.iter_mut().zip(xr) {
                *s += v;
            }
        }
        let mean: &mut [f32] = &mut self.sum;
        mean.iter_mut().for_each(|s| *s /= rows);
        self.sum2.fill(0.0);
        for xr in x.chunks_exact(c) {
            for ch in 0..c {
                let d = xr[ch] - mean[ch];
                self.sum2[ch] += d * d;
            }
        }
        for ch in 0..c {
            let var = self.sum2[ch] / rows;
            self.inv_std[ch] = 1.0 / (var + EPS).sqrt();
            let unbiased = var * rows / (rows - 1.0).max(1.0);
            self.running_mean[ch] = (1.0 - MOMENTUM) * self.running_mean[ch] + MOMENTUM * mean[ch];
            self.running_var[ch] = (1.0 - MOMENTUM) * self.running_var[ch] + MOMENTUM * unbiased;
        }
        if self.xhat.len() < total {
            self.xhat.resize(total, 0.0);
        }
        for ((xr, hr), yr) in x
            .chunks_exact(c)
            .zip(self.xhat.chunks_exact_mut(c))
            .zip(y.chunks_exact_mut(c))
        {
            for ch in 0..c {
                let h = (xr[ch] - mean[ch]) * self.inv_std[ch];
                hr[ch] = h;
                yr[ch] = (h * self.gamma.value[ch] + self.beta.value[ch]).max(0.0);
            }
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
        self.sum.fill(0.0);
        self.sum2.fill(0.0);
        for (i, (gr, hr)) in dy
            .chunks_exact_mut(c)
            .zip(self.xhat.chunks_exact(c))
            .enumerate()
        {
            let yr = &y[i * c..(i + 1) * c];
            for ch in 0..c {
                if yr[ch] <= 0.0 {
                    gr[ch] = 0.0;
                }
                self.sum[ch] += gr[ch];
                self.sum2[ch] += gr[ch] * hr[ch];
            }
        }
        if !acc {
            self.gamma.grad.fill(0.0);
            self.beta.grad.fill(0.0);
        }
        for ch in 0..c {
            self.beta.grad[ch] += self.sum[ch];
            self.gamma.grad[ch] += self.sum2[ch];
        }
        let Some(dx) = dx else { return };
        for ((dr, gr), hr) in dx[..total]
            .chunks_exact_mut(c)
            .zip(dy.chunks_exact(c))
            .zip(self.xhat.chunks_exact(c))
        {
            for ch in 0..c {
                let k = self.gamma.value[ch] * self.inv_std[ch] / rows;
                dr[ch] = k * (rows * gr[ch] - self.sum[ch] - hr[ch] * self.sum2[ch]);
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
