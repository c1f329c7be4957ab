//! Max or mean pooling over `k x k` windows, stride `k`, on channels-last data (a
//! remainder of rows or columns is dropped, as torch does). The max's backward pass
//! routes each gradient to the input that won (the first of equals, as torch); the
//! mean's spreads it evenly. The built-in CNN's layer is the 2x2 max.

use super::Op;

/// Max or mean pooling over `k x k` windows, stride `k`.
pub struct Pool {
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    max: bool,
    /// Which input of its window won, per output element (`ky * k + kx`).
    arg: Vec<u8>,
}

impl Pool {
    /// `k x k` windows over `h x w x c` (`k` at most 15, so a tap fits a byte).
    pub fn new(h: usize, w: usize, c: usize, k: usize, max: bool) -> Pool {
        assert!((1..16).contains(&k), "pool windows are 1x1 to 15x15");
        Pool {
            h,
            w,
            c,
            k,
            max,
            arg: Vec::new(),
        }
    }

    fn out_hw(&self) -> (usize, usize) {
        (self.h / self.k, self.w / self.k)
    }
}

impl Op for Pool {
    fn out_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        oh * ow * self.c
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], _train: bool, threads: usize) {
        let (h, w, c, k, max) = (self.h, self.w, self.c, self.k, self.max);
        let (oh, ow) = self.out_hw();
        let per = self.out_len();
        // (The mean leaves its taps unused: one buffer keeps the split simple.)
        if self.arg.len() < n * per {
            self.arg.resize(n * per, 0);
        }
        let scale = 1.0 / (k * k) as f32;
        super::by_example2(y, per, &mut self.arg, per, n, threads, |b0, ys, args| {
            let mut taps = [0usize; 225];
            for (i, (y, arg)) in ys
                .chunks_exact_mut(per)
                .zip(args.chunks_exact_mut(per))
                .enumerate()
            {
                let b = b0 + i;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = (oy * ow + ox) * c;
                        let taps = window(&mut taps, k, |dy, dx| {
                            ((b * h + k * oy + dy) * w + k * ox + dx) * c
                        });
                        if max {
                            let (y, arg) = (&mut y[o..o + c], &mut arg[o..o + c]);
                            // The window's size known to the compiler where it is
                            // common (the CNN's 2x2), so the taps unroll.
                            match taps.len() {
                                4 => max_of(x, &<[usize; 4]>::try_from(taps).unwrap(), y, arg),
                                9 => max_of(x, &<[usize; 9]>::try_from(taps).unwrap(), y, arg),
                                _ => max_of(x, taps, y, arg),
                            }
                        } else {
                            for ch in 0..c {
                                let sum: f32 = taps.iter().map(|&s| x[s + ch]).sum();
                                y[o + ch] = sum * scale;
                            }
                        }
                    }
                }
            }
        });
    }

    fn backward(
        &mut self,
        _x: &[f32],
        _y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        _acc: bool,
        threads: usize,
    ) {
        let Some(dx) = dx else { return };
        let (h, w, c, k, max) = (self.h, self.w, self.c, self.k, self.max);
        let (oh, ow) = self.out_hw();
        let per = self.out_len();
        let scale = 1.0 / (k * k) as f32;
        let (dy, arg) = (&*dy, &self.arg);
        // Every input inside a window is written below; only a remainder of rows or
        // columns outside all windows needs zeroing first.
        let whole = h % k == 0 && w % k == 0;
        super::by_example(dx, h * w * c, n, threads, |b0, dx| {
            if !whole {
                dx.fill(0.0);
            }
            let mut taps = [0usize; 225];
            for b in 0..dx.len() / (h * w * c) {
                let o0 = (b0 + b) * per;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = o0 + (oy * ow + ox) * c;
                        let taps = window(&mut taps, k, |dy, dx| {
                            ((b * h + k * oy + dy) * w + k * ox + dx) * c
                        });
                        if max {
                            let (arg, dy) = (&arg[o..o + c], &dy[o..o + c]);
                            for (t, &s) in taps.iter().enumerate() {
                                let t = t as u8;
                                for ((d, &a), &g) in dx[s..s + c].iter_mut().zip(arg).zip(dy) {
                                    *d = if a == t { g } else { 0.0 };
                                }
                            }
                        } else {
                            for &s in taps.iter() {
                                dx[s..s + c]
                                    .iter_mut()
                                    .zip(&dy[o..o + c])
                                    .for_each(|(d, &g)| *d = g * scale);
                            }
                        }
                    }
                }
            }
        });
    }
}

/// The offsets of a `k x k` window's taps (`ky * k + kx` order) into `buf`.
#[inline]
fn window(buf: &mut [usize; 225], k: usize, at: impl Fn(usize, usize) -> usize) -> &[usize] {
    for ky in 0..k {
        for kx in 0..k {
            buf[ky * k + kx] = at(ky, kx);
        }
    }
    &buf[..k * k]
}

/// Each channel's largest value over the taps, and which tap gave it (the first of
/// equals; a NaN wins). Inlined into callers that know the window's size, so the
/// taps unroll.
#[inline(always)]
fn max_of(x: &[f32], taps: &[usize], y: &mut [f32], arg: &mut [u8]) {
    for (ch, (y, arg)) in y.iter_mut().zip(arg.iter_mut()).enumerate() {
        let (mut best, mut which) = (x[taps[0] + ch], 0u8);
        for (t, &s) in taps.iter().enumerate().skip(1) {
            let v = x[s + ch];
            if v > best || v.is_nan() {
                (best, which) = (v, t as u8);
            }
        }
        (*y, *arg) = (best, which);
    }
}
