//! Batch normalisation with a fused ReLU on channels-last data: statistics per
//! channel over `n * h * w` rows, as torch's BatchNorm2d (momentum 0.1, eps 1e-5,
//! biased variance to normalise, unbiased in the running estimate). Without the ReLU
//! ([`BnRelu::plain`]) it is a model file's `batchnorm` (on vectors, BatchNorm1d).
//! The ReLU is a floor: 0, or minus infinity for none, so both forms run the same
//! instructions.

use super::{Op, Param};

const MOMENTUM: f32 = 0.1;
const EPS: f32 = 1e-5;

pub struct BnRelu {
    /// Elements per example (`h * w * channels`).
    len: usize,
    channels: usize,
    /// The output's floor: 0 with the ReLU, minus infinity without.
    floor: f32,
    pub gamma: Param,
    pub beta: Param,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    /// Normalised input of the last training batch, for the backward pass.
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    /// Per-channel scratch: sums, then coefficients.
    sum: Vec<f32>,
    /// Partial sums of each chunk of examples (threads x 2 x channels).
    part: Vec<f32>,
    coef: Vec<f32>,
    sum2: Vec<f32>,
}

impl BnRelu {
    pub fn new(len: usize, channels: usize) -> BnRelu {
        BnRelu {
            len,
            channels,
            floor: 0.0,
            gamma: Param::filled(channels, 1.0),
            beta: Param::zeros(channels),
            running_mean: vec![0.0; channels],
            running_var: vec![1.0; channels],
            xhat: Vec::new(),
            inv_std: vec![0.0; channels],
            sum: vec![0.0; channels],
            part: Vec::new(),
            coef: vec![0.0; channels],
            sum2: vec![0.0; channels],
        }
    }
}

impl BnRelu {
    /// Batch norm without the ReLU.
    pub fn plain(len: usize, channels: usize) -> BnRelu {
        BnRelu {
            floor: f32::NEG_INFINITY,
            ..BnRelu::new(len, channels)
        }
    }

    /// Per-chunk sums over rows of `x` (or of `(x - mean)^2` given `mean`), one block
    /// of `channels` per chunk of examples, in `self.part`.
    /// Returns how many chunks were used.
    fn partial_sums(&mut self, x: &[f32], n: usize, threads: usize, mean: Option<&[f32]>) -> usize {
        let (c, per) = (self.channels, self.len);
        let chunks = threads.clamp(1, n.max(1));
        let each = n.div_ceil(chunks);
        let used = n.div_ceil(each);
        self.part.resize(2 * c * chunks, 0.0);
        let sum_rows = |rows: &[f32], out: &mut [f32]| {
            out.fill(0.0);
            match mean {
                None => rows
                    .chunks_exact(c)
                    .for_each(|r| out.iter_mut().zip(r).for_each(|(s, &v)| *s += v)),
                Some(m) => rows.chunks_exact(c).for_each(|r| {
                    out.iter_mut()
                        .zip(r)
                        .zip(m)
                        .for_each(|((s, &v), &m)| *s += (v - m) * (v - m))
                }),
            }
        };
        let x = &x[..n * per];
        if used == 1 {
            sum_rows(x, &mut self.part[..c]);
        } else {
            use rayon::prelude::*;
            x.par_chunks(each * per)
                .zip(self.part.par_chunks_mut(c))
                .for_each(|(rows, out)| sum_rows(rows, out));
        }
        used
    }
}

impl Op for BnRelu {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], train: bool, threads: usize) {
        let c = self.channels;
        let per = self.len;
        let total = n * per;
        let (x, y) = (&x[..total], &mut y[..total]);
        let rows = (total / c) as f32;
        if !train {
            let (scale, shift) = (&mut self.sum, &mut self.sum2);
            for ch in 0..c {
                let inv = 1.0 / (self.running_var[ch] + EPS).sqrt();
                scale[ch] = inv * self.gamma.value[ch];
                shift[ch] = self.beta.value[ch] - self.running_mean[ch] * scale[ch];
            }
            let (scale, shift, floor) = (&*scale, &*shift, self.floor);
            super::by_example(y, per, n, threads, |b0, ys| {
                for (xr, yr) in x[b0 * per..].chunks_exact(c).zip(ys.chunks_exact_mut(c)) {
                    yr.iter_mut()
                        .zip(xr)
                        .zip(scale.iter().zip(shift))
                        .for_each(|((o, &v), (&a, &b))| *o = (v * a + b).max(floor));
                }
            });
            return;
        }
        // Mean, then variance, each from per-chunk partial sums combined in order.
        let used = self.partial_sums(x, n, threads, None);
        let mean = &mut self.sum;
        mean.fill(0.0);
        for p in self.part[..used * c].chunks_exact(c) {
            mean.iter_mut().zip(p).for_each(|(m, &v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= rows);
        let mean_copy = std::mem::take(&mut self.sum);
        let used = self.partial_sums(x, n, threads, Some(&mean_copy));
        let var = &mut self.sum2;
        var.fill(0.0);
        for p in self.part[..used * c].chunks_exact(c) {
            var.iter_mut().zip(p).for_each(|(m, &v)| *m += v);
        }
        self.sum = mean_copy;
        let mean = &self.sum;
        let stats = mean.iter().zip(&self.sum2).zip(&mut self.inv_std);
        for (((&m, &sq), inv), (rm, rv)) in
            stats.zip(self.running_mean.iter_mut().zip(&mut self.running_var))
        {
            let v = sq / rows;
            *inv = 1.0 / (v + EPS).sqrt();
            *rm = (1.0 - MOMENTUM) * *rm + MOMENTUM * m;
            *rv = (1.0 - MOMENTUM) * *rv + MOMENTUM * v * rows / (rows - 1.0).max(1.0);
        }
        if self.xhat.len() < total {
            self.xhat.resize(total, 0.0);
        }
        let (inv, g, b) = (&self.inv_std, &self.gamma.value, &self.beta.value);
        let floor = self.floor;
        super::by_example2(&mut self.xhat, per, y, per, n, threads, |b0, hs, ys| {
            for ((xr, hr), yr) in x[b0 * per..]
                .chunks_exact(c)
                .zip(hs.chunks_exact_mut(c))
                .zip(ys.chunks_exact_mut(c))
            {
                for ch in 0..c {
                    let h = (xr[ch] - mean[ch]) * inv[ch];
                    hr[ch] = h;
                    yr[ch] = (h * g[ch] + b[ch]).max(floor);
                }
            }
        });
    }

    fn backward(
        &mut self,
        _x: &[f32],
        y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        acc: bool,
        threads: usize,
    ) {
        let c = self.channels;
        let per = self.len;
        let total = n * per;
        let rows = (total / c) as f32;
        // Through the ReLU (in place), and per chunk the sums of dy and dy * xhat.
        let chunks = threads.clamp(1, n.max(1));
        self.part.resize(2 * c * chunks, 0.0);
        let each = n.div_ceil(chunks);
        let xhat = &self.xhat;
        let floor = self.floor;
        let mask_and_sum = |b0: usize, g: &mut [f32], part: &mut [f32]| {
            let (s, s2) = part.split_at_mut(c);
            s.fill(0.0);
            s2.fill(0.0);
            let start = b0 * per;
            for ((gr, hr), yr) in g
                .chunks_exact_mut(c)
                .zip(xhat[start..].chunks_exact(c))
                .zip(y[start..].chunks_exact(c))
            {
                for ((((g, &h), &o), s), s2) in gr
                    .iter_mut()
                    .zip(hr)
                    .zip(yr)
                    .zip(s.iter_mut())
                    .zip(s2.iter_mut())
                {
                    if o <= floor {
                        *g = 0.0;
                    }
                    *s += *g;
                    *s2 += *g * h;
                }
            }
        };
        if chunks == 1 {
            mask_and_sum(0, &mut dy[..total], &mut self.part);
        } else {
            use rayon::prelude::*;
            dy[..total]
                .par_chunks_mut(each * per)
                .zip(self.part.par_chunks_mut(2 * c))
                .enumerate()
                .for_each(|(i, (g, part))| mask_and_sum(i * each, g, part));
        }
        let (sum, sum2) = (&mut self.sum, &mut self.sum2);
        sum.fill(0.0);
        sum2.fill(0.0);
        for p in self.part.chunks_exact(2 * c).take(n.div_ceil(each)) {
            sum.iter_mut().zip(&p[..c]).for_each(|(s, &v)| *s += v);
            sum2.iter_mut().zip(&p[c..]).for_each(|(s, &v)| *s += v);
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
        let (a, b, c0, dy) = (&*a, &*sum2, &*sum, &*dy);
        super::by_example(dx, per, n, threads, |b0, dxs| {
            let start = b0 * per;
            for ((dr, gr), hr) in dxs
                .chunks_exact_mut(c)
                .zip(dy[start..].chunks_exact(c))
                .zip(xhat[start..].chunks_exact(c))
            {
                for (((((d, &g), &h), &a), &b), &c0) in
                    dr.iter_mut().zip(gr).zip(hr).zip(a).zip(b).zip(c0)
                {
                    *d = a * g + b * h + c0;
                }
            }
        });
    }

    fn params(&mut self) -> [Option<&mut Param>; 2] {
        [Some(&mut self.gamma), Some(&mut self.beta)]
    }

    fn as_norm(&mut self) -> Option<&mut BnRelu> {
        Some(self)
    }
}
