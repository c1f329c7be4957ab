//! 3x3 convolution, stride 1, padding 1, no bias, on channels-last (NHWC) data, by
//! im2col and one gemm for the whole batch: forward, weight gradient and input
//! gradient (col2im) are all gemm work.

use super::gemm::{View, matmul};
use super::{Op, Param};

pub struct Conv3x3 {
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    /// `[cout, 9 * cin]`, column `(ky * 3 + kx) * cin + c` (our im2col order).
    weight: Param,
    /// The batch's im2col matrix, `[n * h * w, 9 * cin]`, kept for the backward pass.
    cols: Vec<f32>,
    /// Scratch for the gradient of `cols`.
    dcols: Vec<f32>,
}

impl Conv3x3 {
    pub fn new(h: usize, w: usize, cin: usize, cout: usize) -> Conv3x3 {
        Conv3x3 {
            h,
            w,
            cin,
            cout,
            weight: Param::zeros(cout * 9 * cin),
            cols: Vec::new(),
            dcols: Vec::new(),
        }
    }

    fn k(&self) -> usize {
        9 * self.cin
    }

    /// Maps torch's `[cout, cin, 3, 3]` order to ours and back.
    pub fn torch_index(&self, o: usize, col: usize) -> usize {
        let (tap, c) = (col / self.cin, col % self.cin);
        (o * self.cin + c) * 9 + tap
    }
}

impl Op for Conv3x3 {
    fn out_len(&self) -> usize {
        self.h * self.w * self.cout
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], _train: bool, threads: usize) {
        let (h, w, c, k) = (self.h, self.w, self.cin, self.k());
        let rows = n * h * w;
        if self.cols.len() < rows * k {
            self.cols.resize(rows * k, 0.0);
        }
        super::by_example(&mut self.cols, h * w * k, n, threads, |b0, cols| {
            for (r, dst) in cols.chunks_exact_mut(k).enumerate() {
                let (b, oy, ox) = (b0 + r / (h * w), r / w % h, r % w);
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = ((oy + ky).wrapping_sub(1), (ox + kx).wrapping_sub(1));
                        let d = &mut dst[(ky * 3 + kx) * c..(ky * 3 + kx + 1) * c];
                        if iy < h && ix < w {
                            let s = ((b * h + iy) * w + ix) * c;
                            d.copy_from_slice(&x[s..s + c]);
                        } else {
                            d.fill(0.0);
                        }
                    }
                }
            }
        });
        let wt = View::new(&self.weight.value, self.cout, k).t();
        matmul(
            &mut y[..rows * self.cout],
            View::new(&self.cols[..rows * k], rows, k),
            wt,
            false,
            threads,
        );
    }

    fn backward(
        &mut self,
        _x: &[f32],
        _y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        acc: bool,
        threads: usize,
    ) {
        let (h, w, c, k) = (self.h, self.w, self.cin, self.k());
        let rows = n * h * w;
        let dyv = View::new(&dy[..rows * self.cout], rows, self.cout);
        matmul(
            &mut self.weight.grad,
            dyv.t(),
            View::new(&self.cols[..rows * k], rows, k),
            acc,
            threads,
        );
        let Some(dx) = dx else { return };
        if self.dcols.len() < rows * k {
            self.dcols.resize(rows * k, 0.0);
        }
        matmul(
            &mut self.dcols[..rows * k],
            dyv,
            View::new(&self.weight.value, self.cout, k),
            false,
            threads,
        );
        let dcols = &self.dcols;
        super::by_example(dx, h * w * c, n, threads, |b0, dx| {
            dx.fill(0.0);
            let nb = dx.len() / (h * w * c);
            for r in 0..nb * h * w {
                let (b, oy, ox) = (r / (h * w), r / w % h, r % w);
                let src = &dcols[((b0 + b) * h * w + oy * w + ox) * k..][..k];
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = ((oy + ky).wrapping_sub(1), (ox + kx).wrapping_sub(1));
                        if iy < h && ix < w {
                            let s = ((b * h + iy) * w + ix) * c;
                            let g = &src[(ky * 3 + kx) * c..(ky * 3 + kx + 1) * c];
                            for (d, &v) in dx[s..s + c].iter_mut().zip(g) {
                                *d += v;
                            }
                        }
                    }
                }
            }
        });
    }

    fn params(&mut self) -> [Option<&mut Param>; 2] {
        [Some(&mut self.weight), None]
    }
}
