//! [`BnReluPool`]: the built-in CNN's batch norm, ReLU and 2x2 max pool as one
//! layer.

use super::{BnRelu, Channels};
use crate::{Op, Param};

/// The built-in CNN's batch norm, ReLU and 2x2 max pool as one layer, so the
/// full-size activation between them is never written or read: the forward pass
/// reads the convolution's output once for the statistics and once to normalise,
/// rectify and pool it, writing only the pooled output and which input won; the
/// backward pass reads the pooled gradient and the winners instead of a full-size
/// gradient. Same arithmetic as [`BnRelu`] then `pool::Pool` (the same outputs and
/// winners; the gradient sums add the same terms in another order).
pub struct BnReluPool {
    bn: BnRelu,
    h: usize,
    w: usize,
    /// Which of its window's four inputs won, per output element.
    arg: Vec<u8>,
}

impl BnReluPool {
    /// The layer for `h x w` images of `channels` channels.
    pub fn new(h: usize, w: usize, channels: usize) -> BnReluPool {
        BnReluPool {
            bn: BnRelu::new(h * w * channels, channels),
            h,
            w,
            arg: Vec::new(),
        }
    }

    /// The input offsets (within an example) of output `(oy, ox)`'s window.
    #[inline(always)]
    fn taps(&self, oy: usize, ox: usize) -> [usize; 4] {
        let (w, c) = (self.w, self.bn.channels);
        let at = |dy: usize, dx: usize| ((2 * oy + dy) * w + 2 * ox + dx) * c;
        [at(0, 0), at(0, 1), at(1, 0), at(1, 1)]
    }
}

impl Op for BnReluPool {
    fn out_len(&self) -> usize {
        (self.h / 2) * (self.w / 2) * self.bn.channels
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], train: bool, threads: usize) {
        self.bn.coefficients(x, n, train, threads);
        let (per_in, per, c) = (self.bn.len, self.out_len(), self.bn.channels);
        let (ow, oh) = (self.w / 2, self.h / 2);
        if self.arg.len() < n * per {
            self.arg.resize(n * per, 0);
        }
        let mut arg = std::mem::take(&mut self.arg);
        let this = &*self;
        let (scale, shift, floor) = (&this.bn.scale[..], &this.bn.shift[..], this.bn.floor);
        crate::by_example2(y, per, &mut arg, per, n, threads, |b0, ys, args| {
            for (i, (y, arg)) in ys
                .chunks_exact_mut(per)
                .zip(args.chunks_exact_mut(per))
                .enumerate()
            {
                let x = &x[(b0 + i) * per_in..][..per_in];
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = (oy * ow + ox) * c;
                        let taps = this.taps(oy, ox);
                        for ch in 0..c {
                            let (a, b) = (scale[ch], shift[ch]);
                            let (mut best, mut which) = ((x[taps[0] + ch] * a + b).max(floor), 0u8);
                            for (t, &s) in taps.iter().enumerate().skip(1) {
                                let v = (x[s + ch] * a + b).max(floor);
                                let take = (v > best) | v.is_nan();
                                best = if take { v } else { best };
                                which = if take { t as u8 } else { which };
                            }
                            y[o + ch] = best;
                            arg[o + ch] = which;
                        }
                    }
                }
            }
        });
        self.arg = arg;
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
        let rows = (n * self.bn.len / self.bn.channels) as f32;
        self.statistic_sums(x, dy, n, threads);
        self.bn.gradients(rows, acc);
        if let Some(dx) = dx {
            self.input_gradient(x, dy, dx, n, threads);
        }
    }

    fn params(&mut self) -> [Option<&mut Param>; 2] {
        self.bn.params()
    }

    fn as_norm(&mut self) -> Option<&mut BnRelu> {
        Some(&mut self.bn)
    }
}

impl BnReluPool {
    /// The backward pass's first read: per chunk of examples, the sums over the pool
    /// winners whose ReLU passed (every other input's gradient is 0), into
    /// `bn.part`.
    fn statistic_sums(&mut self, x: &[f32], dy: &[f32], n: usize, threads: usize) {
        let (per_in, per, c) = (self.bn.len, self.out_len(), self.bn.channels);
        let (ow, oh) = (self.w / 2, self.h / 2);
        // Per chunk, the sums over the winners whose ReLU passed (every other input's
        // gradient is 0).
        let (each, used) = BnRelu::chunks(n, threads);
        let mut part = std::mem::take(&mut self.bn.part);
        part.resize(2 * c * used, 0.0);
        {
            let this = &*self;
            let k = Channels::of(&this.bn);
            let (dy, arg) = (&dy[..n * per], &this.arg);
            let sums = |b0: usize, part: &mut [f32]| {
                let (s, s2) = part.split_at_mut(c);
                s.fill(0.0);
                s2.fill(0.0);
                for b in b0..(b0 + each).min(n) {
                    let x = &x[b * per_in..][..per_in];
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let o = b * per + (oy * ow + ox) * c;
                            let (arg, dy) = (&arg[o..o + c], &dy[o..o + c]);
                            // Tap by tap across the channels (selects, so they
                            // vectorise): only the winner whose ReLU passed adds.
                            for (t, &at) in this.taps(oy, ox).iter().enumerate() {
                                k.add_tap_sums(t as u8, arg, &x[at..at + c], dy, s, s2);
                            }
                        }
                    }
                }
            };
            if used == 1 {
                sums(0, &mut part);
            } else {
                crate::team::chunks_mut(&mut part, 2 * c, |i, p| sums(i * each, p));
            }
        }
        self.bn.part = part;
    }

    /// The input's gradient: through the winners whose ReLU passed, and through the
    /// batch statistics for every input.
    fn input_gradient(&self, x: &[f32], dy: &[f32], dx: &mut [f32], n: usize, threads: usize) {
        let (per_in, per, c) = (self.bn.len, self.out_len(), self.bn.channels);
        let (h, w, ow, oh) = (self.h, self.w, self.w / 2, self.h / 2);
        let this = self;
        let bn = &this.bn;
        let k = Channels::of(bn);
        let (mean, inv) = (&bn.mean, &bn.inv_std);
        let (cb, cc) = (&bn.sum2, &bn.sum);
        let coef = [&bn.coef[..], &bn.sum2[..], &bn.sum[..]];
        let (dy, arg) = (&dy[..n * per], &this.arg);
        crate::by_example(dx, per_in, n, threads, |b0, dxs| {
            for (i, dxe) in dxs.chunks_exact_mut(per_in).enumerate() {
                let b = b0 + i;
                let x = &x[b * per_in..][..per_in];
                // Inputs outside every window (odd sizes): no gradient through the
                // pool, only through the statistics.
                if h % 2 == 1 || w % 2 == 1 {
                    for (d, (&v, ch)) in dxe.iter_mut().zip(x.iter().zip((0..c).cycle())) {
                        *d = cb[ch] * ((v - mean[ch]) * inv[ch]) + cc[ch];
                    }
                }
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = b * per + (oy * ow + ox) * c;
                        let (arg, dy) = (&arg[o..o + c], &dy[o..o + c]);
                        for (t, &at) in this.taps(oy, ox).iter().enumerate() {
                            let d = &mut dxe[at..at + c];
                            k.tap_input_gradient(t as u8, arg, &x[at..at + c], dy, d, coef);
                        }
                    }
                }
            }
        });
    }
}
