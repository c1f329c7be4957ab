//! 2x2 max pooling, stride 2, on channels-last data (odd sizes round down); the
//! backward pass routes each gradient to the input that won.

use super::Op;

pub struct MaxPool2 {
    h: usize,
    w: usize,
    c: usize,
    /// Which of the four inputs won, per output element (0..4).
    arg: Vec<u8>,
}

impl MaxPool2 {
    pub fn new(h: usize, w: usize, c: usize) -> MaxPool2 {
        MaxPool2 {
            h,
            w,
            c,
            arg: Vec::new(),
        }
    }

    fn out_hw(&self) -> (usize, usize) {
        (self.h / 2, self.w / 2)
    }
}

impl Op for MaxPool2 {
    fn out_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        oh * ow * self.c
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], _train: bool, threads: usize) {
        let (h, w, c) = (self.h, self.w, self.c);
        let (oh, ow) = self.out_hw();
        let per = self.out_len();
        if self.arg.len() < n * per {
            self.arg.resize(n * per, 0);
        }
        super::by_example2(y, per, &mut self.arg, per, n, threads, |b0, ys, args| {
            for (i, (y, arg)) in ys
                .chunks_exact_mut(per)
                .zip(args.chunks_exact_mut(per))
                .enumerate()
            {
                let b = b0 + i;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = (oy * ow + ox) * c;
                        let at =
                            |dy: usize, dx: usize| ((b * h + 2 * oy + dy) * w + 2 * ox + dx) * c;
                        let taps = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                        for ch in 0..c {
                            let (mut best, mut which) = (x[taps[0] + ch], 0u8);
                            for (t, &s) in taps.iter().enumerate().skip(1) {
                                let v = x[s + ch];
                                if v > best || v.is_nan() {
                                    (best, which) = (v, t as u8);
                                }
                            }
                            y[o + ch] = best;
                            arg[o + ch] = which;
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
        let (h, w, c) = (self.h, self.w, self.c);
        let (oh, ow) = self.out_hw();
        let per = self.out_len();
        let (dy, arg) = (&*dy, &self.arg);
        super::by_example(dx, h * w * c, n, threads, |b0, dx| {
            dx.fill(0.0);
            for b in 0..dx.len() / (h * w * c) {
                let o0 = (b0 + b) * per;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = o0 + (oy * ow + ox) * c;
                        for ch in 0..c {
                            let t = arg[o + ch] as usize;
                            let s = ((b * h + 2 * oy + t / 2) * w + 2 * ox + t % 2) * c + ch;
                            dx[s] = dy[o + ch];
                        }
                    }
                }
            }
        });
    }
}
