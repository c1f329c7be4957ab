//! 2-D convolution on channels-last (NHWC) data, square kernel (1, 3 or 5 in model
//! files), any stride and zero padding, with an optional bias: im2col and one gemm
//! for the whole batch, so forward, weight gradient and input gradient (col2im) are
//! all gemm work. The built-in CNN's layer is the 3x3, stride 1, padding 1 case
//! without bias.

use super::gemm::{View, matmul};
use super::{Op, Param};

/// A convolution's geometry: input `h x w x cin`, `cout` filters of `k x k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels (filters).
    pub cout: usize,
    /// The kernel's side.
    pub k: usize,
    /// The step between windows.
    pub stride: usize,
    /// Zeros added on each side.
    pub pad: usize,
}

impl Geometry {
    /// The built-in CNN's 3x3 convolution (stride 1, padding 1).
    pub fn same3x3(h: usize, w: usize, cin: usize, cout: usize) -> Geometry {
        Geometry {
            h,
            w,
            cin,
            cout,
            k: 3,
            stride: 1,
            pad: 1,
        }
    }

    /// The output's height and width (torch's formula).
    pub fn out_hw(&self) -> (usize, usize) {
        let f = |n: usize| (n + 2 * self.pad - self.k) / self.stride + 1;
        (f(self.h), f(self.w))
    }
}

/// A convolution layer; weight and bias start at zero (import sets them).
pub struct Conv {
    g: Geometry,
    /// `[cout, k * k * cin]`, column `(ky * k + kx) * cin + c` (our im2col order).
    weight: Param,
    bias: Option<Param>,
    /// The batch's im2col matrix, `[n * oh * ow, k * k * cin]`, kept for the backward
    /// pass.
    cols: Vec<f32>,
    /// Scratch for the gradient of `cols`.
    dcols: Vec<f32>,
}

impl Conv {
    /// A convolution of geometry `g`, with a bias if `bias`.
    pub fn new(g: Geometry, bias: bool) -> Conv {
        Conv {
            g,
            weight: Param::zeros(g.cout * g.k * g.k * g.cin),
            bias: bias.then(|| Param::zeros(g.cout)),
            cols: Vec::new(),
            dcols: Vec::new(),
        }
    }

    fn cols_width(&self) -> usize {
        self.g.k * self.g.k * self.g.cin
    }

    /// For each element of our weight, in order, its index in torch's
    /// `[cout, cin, k, k]` layout.
    pub fn torch_order(&self) -> Vec<usize> {
        let (kk, c) = (self.g.k * self.g.k, self.g.cin);
        (0..self.g.cout * kk * c)
            .map(|j| {
                let (o, col) = (j / (kk * c), j % (kk * c));
                let (tap, ch) = (col / c, col % c);
                (o * c + ch) * kk + tap
            })
            .collect()
    }
}

/// The input position `(y, x)` that output `(oy, ox)` reads through tap `(ky, kx)`,
/// or `None` in the padding.
#[inline(always)]
fn source(g: &Geometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
    let iy = (oy * g.stride + ky).wrapping_sub(g.pad);
    let ix = (ox * g.stride + kx).wrapping_sub(g.pad);
    (iy < g.h && ix < g.w).then_some((iy, ix))
}

/// The im2col rows of the examples from `b0` on (`cols` holds whole examples), for
/// a `k x k` kernel (inlined where `k` is a constant).
#[inline(always)]
fn im2col(g: &Geometry, k: usize, x: &[f32], b0: usize, cols: &mut [f32]) {
    let (h, w, c) = (g.h, g.w, g.cin);
    let (oh, ow) = g.out_hw();
    for (r, dst) in cols.chunks_exact_mut(k * k * c).enumerate() {
        let (b, oy, ox) = (b0 + r / (oh * ow), r / ow % oh, r % ow);
        for ky in 0..k {
            for kx in 0..k {
                let d = &mut dst[(ky * k + kx) * c..(ky * k + kx + 1) * c];
                match source(g, oy, ox, ky, kx) {
                    // One channel (a first layer): a store, not a copy call.
                    Some((iy, ix)) if c == 1 => d[0] = x[(b * h + iy) * w + ix],
                    Some((iy, ix)) => {
                        let s = ((b * h + iy) * w + ix) * c;
                        d.copy_from_slice(&x[s..s + c]);
                    }
                    None => d.fill(0.0),
                }
            }
        }
    }
}

/// Adds the im2col gradient `dcols` back onto the input gradient `dx` of the
/// examples from `b0` on (zeroed first).
#[inline(always)]
fn col2im(g: &Geometry, k: usize, dcols: &[f32], b0: usize, dx: &mut [f32]) {
    let (h, w, c) = (g.h, g.w, g.cin);
    let (oh, ow) = g.out_hw();
    let kw = k * k * c;
    dx.fill(0.0);
    let nb = dx.len() / (h * w * c);
    for r in 0..nb * oh * ow {
        let (b, oy, ox) = (r / (oh * ow), r / ow % oh, r % ow);
        let src = &dcols[((b0 + b) * oh * ow + oy * ow + ox) * kw..][..kw];
        for ky in 0..k {
            for kx in 0..k {
                if let Some((iy, ix)) = source(g, oy, ox, ky, kx) {
                    let s = ((b * h + iy) * w + ix) * c;
                    let g = &src[(ky * k + kx) * c..(ky * k + kx + 1) * c];
                    for (d, &v) in dx[s..s + c].iter_mut().zip(g) {
                        *d += v;
                    }
                }
            }
        }
    }
}

impl Op for Conv {
    fn out_len(&self) -> usize {
        let (oh, ow) = self.g.out_hw();
        oh * ow * self.g.cout
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], _train: bool, threads: usize) {
        let k = self.g.k;
        let (oh, ow) = self.g.out_hw();
        let kw = self.cols_width();
        let rows = n * oh * ow;
        if self.cols.len() < rows * kw {
            self.cols.resize(rows * kw, 0.0);
        }
        let mut cols = std::mem::take(&mut self.cols);
        let g = self.g;
        super::by_example(&mut cols, oh * ow * kw, n, threads, |b0, cols| {
            // Each kernel size compiled on its own, so its taps unroll.
            match k {
                1 => im2col(&g, 1, x, b0, cols),
                3 => im2col(&g, 3, x, b0, cols),
                5 => im2col(&g, 5, x, b0, cols),
                _ => im2col(&g, k, x, b0, cols),
            }
        });
        self.cols = cols;
        let cout = self.g.cout;
        let wt = View::new(&self.weight.value, cout, kw).t();
        let y = &mut y[..rows * cout];
        matmul(
            y,
            View::new(&self.cols[..rows * kw], rows, kw),
            wt,
            false,
            threads,
        );
        if let Some(b) = &self.bias {
            y.chunks_exact_mut(cout)
                .for_each(|r| r.iter_mut().zip(&b.value).for_each(|(v, &b)| *v += b));
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
        threads: usize,
    ) {
        let Geometry {
            h,
            w,
            cin: c,
            cout,
            k,
            ..
        } = self.g;
        let (oh, ow) = self.g.out_hw();
        let kw = self.cols_width();
        let rows = n * oh * ow;
        let dyv = View::new(&dy[..rows * cout], rows, cout);
        matmul(
            &mut self.weight.grad,
            dyv.t(),
            View::new(&self.cols[..rows * kw], rows, kw),
            acc,
            threads,
        );
        if let Some(b) = &mut self.bias {
            if !acc {
                b.grad.fill(0.0);
            }
            dy[..rows * cout]
                .chunks_exact(cout)
                .for_each(|r| b.grad.iter_mut().zip(r).for_each(|(g, &d)| *g += d));
        }
        let Some(dx) = dx else { return };
        if self.dcols.len() < rows * kw {
            self.dcols.resize(rows * kw, 0.0);
        }
        matmul(
            &mut self.dcols[..rows * kw],
            View::new(&dy[..rows * cout], rows, cout),
            View::new(&self.weight.value, cout, kw),
            false,
            threads,
        );
        let (g, dcols) = (self.g, &self.dcols);
        super::by_example(dx, h * w * c, n, threads, |b0, dx| match k {
            1 => col2im(&g, 1, dcols, b0, dx),
            3 => col2im(&g, 3, dcols, b0, dx),
            5 => col2im(&g, 5, dcols, b0, dx),
            _ => col2im(&g, k, dcols, b0, dx),
        });
    }

    fn params(&mut self) -> [Option<&mut Param>; 2] {
        [Some(&mut self.weight), self.bias.as_mut()]
    }
}
