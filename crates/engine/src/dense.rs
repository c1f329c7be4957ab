//! Fully connected layer with an optional fused ReLU: one gemm forward; backward
//! computes the weight gradient straight into the weight's layout and the input
//! gradient only when asked.

use super::gemm::{View, matmul};
use super::{Op, Param};

/// A fully connected layer, `y = x W^T + b`, with ReLU after when asked; weight and
/// bias start at zero (import sets them).
pub struct Dense {
    inputs: usize,
    outputs: usize,
    relu: bool,
    /// `[outputs, inputs]`, as torch's Linear.
    weight: Param,
    bias: Param,
}

impl Dense {
    /// A layer of `inputs` to `outputs` features, with a fused ReLU if `relu`.
    pub fn new(inputs: usize, outputs: usize, relu: bool) -> Dense {
        Dense {
            inputs,
            outputs,
            relu,
            weight: Param::zeros(outputs * inputs),
            bias: Param::zeros(outputs),
        }
    }
}

impl Op for Dense {
    fn out_len(&self) -> usize {
        self.outputs
    }

    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], _train: bool, threads: usize) {
        let y = &mut y[..n * self.outputs];
        for row in y.chunks_exact_mut(self.outputs) {
            row.copy_from_slice(&self.bias.value);
        }
        let w = View::new(&self.weight.value, self.outputs, self.inputs).t();
        matmul(
            y,
            View::new(&x[..n * self.inputs], n, self.inputs),
            w,
            true,
            threads,
        );
        if self.relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }

    fn backward(
        &mut self,
        x: &[f32],
        y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        acc: bool,
        threads: usize,
    ) {
        let dy = &mut dy[..n * self.outputs];
        if self.relu {
            for (g, &o) in dy.iter_mut().zip(&y[..n * self.outputs]) {
                if o <= 0.0 {
                    *g = 0.0;
                }
            }
        }
        let dyv = View::new(dy, n, self.outputs);
        matmul(
            &mut self.weight.grad,
            dyv.t(),
            View::new(&x[..n * self.inputs], n, self.inputs),
            acc,
            threads,
        );
        let gb = &mut self.bias.grad;
        if !acc {
            gb.fill(0.0);
        }
        for row in dy.chunks_exact(self.outputs) {
            for (g, &d) in gb.iter_mut().zip(row) {
                *g += d;
            }
        }
        if let Some(dx) = dx {
            let w = View::new(&self.weight.value, self.outputs, self.inputs);
            matmul(&mut dx[..n * self.inputs], dyv, w, false, threads);
        }
    }

    fn params(&mut self) -> [Option<&mut Param>; 2] {
        [Some(&mut self.weight), Some(&mut self.bias)]
    }
}
