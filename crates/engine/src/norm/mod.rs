//! Batch normalisation with a fused ReLU on channels-last data: statistics per
//! channel over `n * h * w` rows, as torch's BatchNorm2d (momentum 0.1, eps 1e-5,
//! biased variance to normalise, unbiased in the running estimate). Without the ReLU
//! ([`BnRelu::plain`]) it is a model file's `batchnorm` (on vectors, BatchNorm1d).
//! The ReLU is a floor: 0, or minus infinity for none, so both forms run the same
//! instructions.
//!
//! Memory traffic is the cost here, so each direction reads its input as few times
//! as it can: the forward pass one read for both statistics (sums in f64, shifted by
//! the batch's first row) and one read and write to apply them; nothing else is kept
//! for the backward pass, which recomputes the normalised input and the ReLU's mask
//! from the layer's input (the same arithmetic as the forward pass, so the same mask)
//! in one pass for the sums and one for the input gradient.

mod pooled;

use super::{Op, Param};

pub use pooled::BnReluPool;

const MOMENTUM: f32 = 0.1;
const EPS: f32 = 1e-5;

/// Batch norm with a fused ReLU (or without, [`BnRelu::plain`]) on channels-last data.
pub struct BnRelu {
    /// Elements per example (`h * w * channels`).
    len: usize,
    channels: usize,
    /// The output's floor: 0 with the ReLU, minus infinity without.
    floor: f32,
    /// The scale per channel.
    pub gamma: Param,
    /// The shift per channel.
    pub beta: Param,
    /// The running mean per channel, for evaluation.
    pub running_mean: Vec<f32>,
    /// The running (unbiased) variance per channel, for evaluation.
    pub running_var: Vec<f32>,
    /// The last training batch's mean and 1 / std per channel.
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// `y = max(x scale + shift, floor)`, per channel, as the last forward applied it.
    scale: Vec<f32>,
    shift: Vec<f32>,
    /// Per chunk of examples, the statistics' partial sums (threads x 2 x channels).
    stats: Vec<f64>,
    /// Per chunk of examples, the gradient's partial sums.
    part: Vec<f32>,
    /// Per channel: the sums of the gradient and of the gradient times the normalised
    /// input, then the input gradient's coefficients.
    sum: Vec<f32>,
    sum2: Vec<f32>,
    coef: Vec<f32>,
}

impl BnRelu {
    /// Batch norm with a ReLU over `channels`, on `len` values per example; weight 1,
    /// bias 0, running mean 0, running variance 1.
    pub fn new(len: usize, channels: usize) -> BnRelu {
        let zeros = || vec![0.0; channels];
        BnRelu {
            len,
            channels,
            floor: 0.0,
            gamma: Param::filled(channels, 1.0),
            beta: Param::zeros(channels),
            running_mean: zeros(),
            running_var: vec![1.0; channels],
            mean: zeros(),
            inv_std: zeros(),
            scale: zeros(),
            shift: zeros(),
            stats: Vec::new(),
            part: Vec::new(),
            sum: zeros(),
            sum2: zeros(),
            coef: zeros(),
        }
    }

    /// Batch norm without the ReLU.
    pub fn plain(len: usize, channels: usize) -> BnRelu {
        BnRelu {
            floor: f32::NEG_INFINITY,
            ..BnRelu::new(len, channels)
        }
    }

    /// How the first `n` examples split into chunks: (examples per chunk, chunks).
    fn chunks(n: usize, threads: usize) -> (usize, usize) {
        let each = n.div_ceil(threads.clamp(1, n.max(1))).max(1);
        (each, n.div_ceil(each).max(1))
    }

    /// `scale` and `shift` for a forward pass: from the running statistics in
    /// evaluation; in training from the batch's statistics (one read of `x`), which
    /// also move the running ones.
    fn coefficients(&mut self, x: &[f32], n: usize, train: bool, threads: usize) {
        let (c, per) = (self.channels, self.len);
        let total = n * per;
        let x = &x[..total];
        if !train {
            for ch in 0..c {
                let inv = 1.0 / (self.running_var[ch] + EPS).sqrt();
                self.scale[ch] = inv * self.gamma.value[ch];
                self.shift[ch] = self.beta.value[ch] - self.running_mean[ch] * self.scale[ch];
            }
            return;
        }
        if n == 0 {
            return;
        }

        // One read for both statistics: per chunk, sums shifted by the first row
        // (against cancellation), combined in order.
        let rows = total / c;
        let (each, used) = BnRelu::chunks(n, threads);
        self.stats.resize(2 * c * used, 0.0);
        let k = &x[..c];
        if used == 1 {
            shifted_sums(x, k, &mut self.stats);
        } else {
            super::team::chunks_mut(&mut self.stats, 2 * c, |i, out| {
                let start = i * each * per;
                shifted_sums(&x[start..(start + each * per).min(total)], k, out)
            });
        }
        let nr = rows as f64;
        for ch in 0..c {
            let (mut s1, mut s2) = (0f64, 0f64);
            for p in self.stats.chunks_exact(2 * c) {
                (s1, s2) = (s1 + p[ch], s2 + p[c + ch]);
            }
            let d = s1 / nr;
            let var = (s2 / nr - d * d).max(0.0);
            let mean = k[ch] as f64 + d;
            let (mean, var) = (mean as f32, var as f32);
            self.mean[ch] = mean;
            self.inv_std[ch] = 1.0 / (var + EPS).sqrt();
            self.scale[ch] = self.inv_std[ch] * self.gamma.value[ch];
            self.shift[ch] = self.beta.value[ch] - mean * self.scale[ch];
            let rm = &mut self.running_mean[ch];
            *rm = (1.0 - MOMENTUM) * *rm + MOMENTUM * mean;
            let rv = &mut self.running_var[ch];
            let unbiased = var * rows as f32 / (rows as f32 - 1.0).max(1.0);
            *rv = (1.0 - MOMENTUM) * *rv + MOMENTUM * unbiased;
        }
    }

    /// From the per-chunk partial sums in `part` (of the gradient through the ReLU,
    /// and of it times the normalised input, over `rows` rows): gamma's and beta's
    /// gradients (written, or added to when `acc`), then the input gradient's
    /// coefficients, `dx = coef g + sum2 xhat + sum` per channel.
    fn gradients(&mut self, rows: f32, acc: bool) {
        let c = self.channels;
        let (sum, sum2) = (&mut self.sum, &mut self.sum2);
        sum.fill(0.0);
        sum2.fill(0.0);
        for p in self.part.chunks_exact(2 * c) {
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
            // dx = k (rows g - sum - xhat sum2), k = gamma inv_std / rows.
            let k = self.gamma.value[ch] * self.inv_std[ch] / rows;
            sum[ch] *= -k;
            sum2[ch] *= -k;
            self.coef[ch] = k * rows;
        }
    }

    /// `y = max(x scale + shift, floor)` over the first `n` examples.
    fn apply(&self, x: &[f32], n: usize, y: &mut [f32], threads: usize) {
        let (c, per, floor) = (self.channels, self.len, self.floor);
        let (scale, shift) = (&self.scale[..], &self.shift[..]);
        super::by_example(y, per, n, threads, |b0, ys| {
            for (xr, yr) in x[b0 * per..].chunks_exact(c).zip(ys.chunks_exact_mut(c)) {
                let (xr, scale, shift) = (&xr[..c], &scale[..c], &shift[..c]);
                for j in 0..c {
                    yr[j] = (xr[j] * scale[j] + shift[j]).max(floor);
                }
            }
        });
    }
}

/// Sums of `x - k` and `(x - k)^2` per channel over `rows` (f64, so a batch of
/// thousands of rows loses nothing).
fn shifted_sums(rows: &[f32], k: &[f32], out: &mut [f64]) {
    let c = k.len();
    let (s1, s2) = out.split_at_mut(c);
    s1.fill(0.0);
    s2.fill(0.0);
    for r in rows.chunks_exact(c) {
        let (s2, r) = (&mut s2[..c], &r[..c]);
        for j in 0..c {
            let d = (r[j] - k[j]) as f64;
            s1[j] += d;
            s2[j] += d * d;
        }
    }
}

impl Op for BnRelu {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], train: bool, threads: usize) {
        self.coefficients(x, n, train, threads);
        self.apply(&x[..n * self.len], n, y, threads);
    }

    fn backward(
        &mut self,
        x: &[f32],
        _y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        acc: bool,
        threads: usize,
    ) {
        let (c, per) = (self.channels, self.len);
        let total = n * per;
        let rows = (total / c) as f32;
        let (x, dy) = (&x[..total], &dy[..total]);
        // Per chunk, the sums of the gradient through the ReLU (its mask recomputed
        // as the forward pass computed the output) and of it times the normalised
        // input.
        let (each, used) = BnRelu::chunks(n, threads);
        let mut part = std::mem::take(&mut self.part);
        part.resize(2 * c * used, 0.0);
        let k = Channels::of(self);
        let sums = |b0: usize, part: &mut [f32]| {
            let (s, s2) = part.split_at_mut(c);
            s.fill(0.0);
            s2.fill(0.0);
            let end = ((b0 + each).min(n)) * per;
            for (xr, gr) in x[b0 * per..end]
                .chunks_exact(c)
                .zip(dy[b0 * per..end].chunks_exact(c))
            {
                k.add_sums(xr, gr, s, s2);
            }
        };
        if used == 1 {
            sums(0, &mut part);
        } else {
            super::team::chunks_mut(&mut part, 2 * c, |i, part| sums(i * each, part));
        }
        self.part = part;
        self.gradients(rows, acc);
        let Some(dx) = dx else { return };
        let k = Channels::of(self);
        let coef = [&self.coef[..], &self.sum2[..], &self.sum[..]];
        super::by_example(dx, per, n, threads, |b0, dxs| {
            let start = b0 * per;
            for ((dr, gr), xr) in dxs
                .chunks_exact_mut(c)
                .zip(dy[start..].chunks_exact(c))
                .zip(x[start..].chunks_exact(c))
            {
                k.input_gradient(xr, gr, dr, coef);
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

/// `g` if `pass`, else 0: as a bit mask, so the loops around it stay branch-free and
/// vectorise (a NaN gradient that does not pass still gives 0, as a select would).
#[inline(always)]
fn keep(pass: bool, g: f32) -> f32 {
    f32::from_bits(g.to_bits() & 0u32.wrapping_sub(u32::from(pass)))
}

/// One layer's per-channel statistics and affine, borrowed for a backward pass; its
/// kernels run across the channels of one row (of [`BnRelu`], or of one pool tap
/// of [`pooled::BnReluPool`]). Plain index loops over slices cut to the channel
/// count, branch-free, so they vectorise wherever they are inlined (zipped
/// iterators six deep did not, once this code moved crates).
#[derive(Clone, Copy)]
struct Channels<'a> {
    mean: &'a [f32],
    inv: &'a [f32],
    scale: &'a [f32],
    shift: &'a [f32],
    floor: f32,
}

impl<'a> Channels<'a> {
    fn of(bn: &'a BnRelu) -> Channels<'a> {
        Channels {
            mean: &bn.mean,
            inv: &bn.inv_std,
            scale: &bn.scale,
            shift: &bn.shift,
            floor: bn.floor,
        }
    }

    /// Adds one row's statistic sums: `s` of the gradient through the ReLU, `s2`
    /// of it times the normalised input.
    #[inline(always)]
    fn add_sums(&self, x: &[f32], dy: &[f32], s: &mut [f32], s2: &mut [f32]) {
        self.sums_where(x, dy, s, s2, |_| true);
    }

    /// [`Channels::add_sums`] for pool tap `t`: only where `t` won its window
    /// (`arg`), as every other input's gradient is 0.
    #[inline(always)]
    fn add_tap_sums(
        &self,
        t: u8,
        arg: &[u8],
        x: &[f32],
        dy: &[f32],
        s: &mut [f32],
        s2: &mut [f32],
    ) {
        let arg = &arg[..s.len()];
        self.sums_where(x, dy, s, s2, |j| arg[j] == t);
    }

    /// One row's input gradient `d`, with `coef` the backward coefficients
    /// (`coef`, `sum2` and `sum` of [`BnRelu`]).
    #[inline(always)]
    fn input_gradient(&self, x: &[f32], dy: &[f32], d: &mut [f32], coef: [&[f32]; 3]) {
        self.input_gradient_where(x, dy, d, coef, |_| true);
    }

    /// [`Channels::input_gradient`] for pool tap `t` (`arg` as in
    /// [`Channels::add_tap_sums`]).
    #[inline(always)]
    fn tap_input_gradient(
        &self,
        t: u8,
        arg: &[u8],
        x: &[f32],
        dy: &[f32],
        d: &mut [f32],
        coef: [&[f32]; 3],
    ) {
        let arg = &arg[..d.len()];
        self.input_gradient_where(x, dy, d, coef, |j| arg[j] == t);
    }

    #[inline(always)]
    fn sums_where(
        &self,
        x: &[f32],
        dy: &[f32],
        s: &mut [f32],
        s2: &mut [f32],
        won: impl Fn(usize) -> bool,
    ) {
        let c = s.len();
        let (x, dy, s2) = (&x[..c], &dy[..c], &mut s2[..c]);
        let (mean, inv) = (&self.mean[..c], &self.inv[..c]);
        let (scale, shift, floor) = (&self.scale[..c], &self.shift[..c], self.floor);
        for j in 0..c {
            let v = x[j];
            let g = keep(won(j) & (v * scale[j] + shift[j] > floor), dy[j]);
            s[j] += g;
            s2[j] += g * ((v - mean[j]) * inv[j]);
        }
    }

    #[inline(always)]
    fn input_gradient_where(
        &self,
        x: &[f32],
        dy: &[f32],
        d: &mut [f32],
        coef: [&[f32]; 3],
        won: impl Fn(usize) -> bool,
    ) {
        let c = d.len();
        let (x, dy) = (&x[..c], &dy[..c]);
        let (ka, kb, kc) = (&coef[0][..c], &coef[1][..c], &coef[2][..c]);
        let (mean, inv) = (&self.mean[..c], &self.inv[..c]);
        let (scale, shift, floor) = (&self.scale[..c], &self.shift[..c], self.floor);
        for j in 0..c {
            let v = x[j];
            let g = keep(won(j) & (v * scale[j] + shift[j] > floor), dy[j]);
            d[j] = ka[j] * g + kb[j] * ((v - mean[j]) * inv[j]) + kc[j];
        }
    }
}
