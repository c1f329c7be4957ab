//! What a model file of images needs besides its layers: [`Transpose`], between the
//! engine's channels-last images and torch's `(c, h, w)` order (where a file
//! flattens, or an input has several channels), and [`Residual`], a block of engine
//! layers with its own buffers whose output is added to its input.

use super::{Op, Param, norm::BnRelu};

/// Each example's `[a, b]` matrix as `[b, a]`: `(h*w, c)` to torch's `(c, h*w)` and
/// back.
pub struct Transpose {
    a: usize,
    b: usize,
}

impl Transpose {
    /// Channels-last `h*w x c` to torch's order.
    pub fn to_torch(hw: usize, c: usize) -> Transpose {
        Transpose { a: hw, b: c }
    }

    /// Torch's `c x h*w` to channels-last.
    pub fn from_torch(c: usize, hw: usize) -> Transpose {
        Transpose { a: c, b: hw }
    }
}

fn transpose(x: &[f32], y: &mut [f32], a: usize, b: usize, n: usize) {
    let per = a * b;
    for (x, y) in x[..n * per]
        .chunks_exact(per)
        .zip(y[..n * per].chunks_exact_mut(per))
    {
        for i in 0..a {
            for j in 0..b {
                y[j * a + i] = x[i * b + j];
            }
        }
    }
}

impl Op for Transpose {
    fn out_len(&self) -> usize {
        self.a * self.b
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], _train: bool, _threads: usize) {
        transpose(x, y, self.a, self.b, n);
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
        if let Some(dx) = dx {
            transpose(dy, dx, self.b, self.a, n);
        }
    }
}

/// For each element of a channels-last `hw x c` example, its index in torch's
/// `(c, h, w)` order.
pub fn torch_order(hw: usize, c: usize) -> Vec<usize> {
    (0..hw * c).map(|e| (e % c) * hw + e / c).collect()
}

/// Layers in order with their activation and gradient buffers: a `Net`'s body, and
/// a residual block's.
pub struct Chain {
    /// The layers, in order.
    pub ops: Vec<Box<dyn Op>>,
    /// Each layer's output, and the gradient at it.
    pub acts: Vec<Vec<f32>>,
    /// The gradient at each layer's output.
    pub grads: Vec<Vec<f32>>,
}

impl Chain {
    /// A chain of `ops`, its buffers empty until the first pass.
    pub fn new(ops: Vec<Box<dyn Op>>) -> Chain {
        let n = ops.len();
        Chain {
            ops,
            acts: vec![Vec::new(); n],
            grads: vec![Vec::new(); n],
        }
    }

    /// Runs every layer on the `n` examples of `x`; the last one's output is
    /// [`Chain::output`].
    pub fn forward(&mut self, x: &[f32], n: usize, train: bool, threads: usize) {
        let Chain { ops, acts, .. } = self;
        for i in 0..ops.len() {
            let need = n * ops[i].out_len();
            if acts[i].len() < need {
                acts[i].resize(need, 0.0);
            }
            let (before, after) = acts.split_at_mut(i);
            let input: &[f32] = if i == 0 { x } else { &before[i - 1] };
            ops[i].forward(input, n, &mut after[0], train, threads);
        }
    }

    /// The last layer's output buffer and its gradient buffer (at least `len` long),
    /// for a loss or a block's skip to fill; `None` without layers.
    pub fn last(&mut self, len: usize) -> Option<(&[f32], &mut Vec<f32>)> {
        let (out, grad) = (self.acts.last()?, self.grads.last_mut()?);
        if grad.len() < len {
            grad.resize(len, 0.0);
        }
        Some((&out[..], grad))
    }

    /// From the gradient at the last layer's output back through every layer: the
    /// parameters' gradients (written, or added to when `acc`) and, when `dx` is
    /// given, the gradient at `x`.
    pub fn backward(
        &mut self,
        x: &[f32],
        n: usize,
        dx: Option<&mut [f32]>,
        acc: bool,
        threads: usize,
    ) {
        let Chain { ops, acts, grads } = self;
        let mut dx = dx;
        for i in (0..ops.len()).rev() {
            let input: &[f32] = if i == 0 { x } else { &acts[i - 1] };
            let (gb, ga) = grads.split_at_mut(i);
            let d_input = match gb.last_mut() {
                Some(g) => {
                    let need = n * ops[i - 1].out_len();
                    if g.len() < need {
                        g.resize(need, 0.0);
                    }
                    Some(&mut g[..])
                }
                None => dx.take(),
            };
            ops[i].backward(input, &acts[i], n, &mut ga[0], d_input, acc, threads);
        }
    }

    /// Calls `f` on each layer's parameters, in order.
    pub fn each_param(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.ops.iter_mut().for_each(|op| op.each_param(f));
    }

    /// Calls `f` on each batch-norm layer, in order.
    pub fn each_norm(&mut self, f: &mut dyn FnMut(&mut BnRelu)) {
        self.ops.iter_mut().for_each(|op| op.each_norm(f));
    }

    /// Tells each layer the step of the next training forward.
    pub fn set_step(&mut self, step: u64) {
        self.ops.iter_mut().for_each(|op| op.set_step(step));
    }
}

/// `y = x + block(x)`: the block's layers run on a [`Chain`] of their own; the
/// backward pass sends `dy` through the block and adds it to the skip's.
pub struct Residual {
    block: Chain,
    len: usize,
    /// The gradient at the block's input, through the block.
    inner_dx: Vec<f32>,
}

impl Residual {
    /// The block `ops` on examples of `len` values (the block must keep that length).
    pub fn new(ops: Vec<Box<dyn Op>>, len: usize) -> Residual {
        Residual {
            block: Chain::new(ops),
            len,
            inner_dx: Vec::new(),
        }
    }
}

impl Op for Residual {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], train: bool, threads: usize) {
        let total = n * self.len;
        self.block.forward(x, n, train, threads);
        let inner: &[f32] = self.block.acts.last().map_or(x, |a| &a[..]);
        y[..total]
            .iter_mut()
            .zip(&x[..total])
            .zip(&inner[..total])
            .for_each(|((o, &a), &b)| *o = a + b);
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
        let total = n * self.len;
        let Some((_, grad)) = self.block.last(total) else {
            // A block of nothing: x + x.
            if let Some(dx) = dx {
                dx[..total]
                    .iter_mut()
                    .zip(&dy[..total])
                    .for_each(|(d, &g)| *d = 2.0 * g);
            }
            return;
        };
        grad[..total].copy_from_slice(&dy[..total]);
        let Some(dx) = dx else {
            return self.block.backward(x, n, None, acc, threads);
        };
        if self.inner_dx.len() < total {
            self.inner_dx.resize(total, 0.0);
        }
        self.block
            .backward(x, n, Some(&mut self.inner_dx[..total]), acc, threads);
        dx[..total]
            .iter_mut()
            .zip(&dy[..total])
            .zip(&self.inner_dx[..total])
            .for_each(|((d, &g), &h)| *d = g + h);
    }

    fn each_param(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.block.each_param(f);
    }

    fn each_norm(&mut self, f: &mut dyn FnMut(&mut BnRelu)) {
        self.block.each_norm(f);
    }

    fn set_step(&mut self, step: u64) {
        self.block.set_step(step);
    }
}
