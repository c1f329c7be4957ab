//! The layers our models are made of, initialised as PyTorch's defaults.

use candle_core::{D, Device, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::Layer;

/// The random source and device for initialising parameters.
pub struct Init<'a> {
    /// The stream the initial values are drawn from.
    pub rng: &'a mut ChaCha8Rng,
    /// Where the parameters live.
    pub device: &'a Device,
}

impl Init<'_> {
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default for Linear and Conv2d
    /// (kaiming_uniform with a = sqrt(5) for weights, the same bound for biases).
    pub fn uniform(&mut self, shape: &[usize], fan_in: usize) -> Result<Var> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| self.rng.random_range(-bound..bound))
            .collect();
        Var::from_tensor(&Tensor::from_vec(data, shape, self.device)?)
    }

    /// A parameter of `shape` with every value `value`.
    pub fn constant(&self, shape: &[usize], value: f32) -> Result<Var> {
        Var::from_tensor(&Tensor::full(value, shape, self.device)?)
    }
}

/// `y = x W^T + b`; flattens its input first.
pub struct Linear {
    weight: Var,
    bias: Var,
}

impl Linear {
    /// A layer of `inputs` to `outputs` features, weights and bias drawn from `init`.
    pub fn new(init: &mut Init, inputs: usize, outputs: usize) -> Result<Linear> {
        Ok(Linear {
            weight: init.uniform(&[outputs, inputs], inputs)?,
            bias: init.uniform(&[outputs], inputs)?,
        })
    }
}

impl Layer for Linear {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let x = if x.rank() > 2 {
            x.flatten_from(1)?
        } else {
            x.clone()
        };
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }

    fn params(&self) -> Vec<(String, &Var)> {
        vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)]
    }
}

/// 3x3 convolution, stride 1, padding 1, no bias (a batch norm follows).
pub struct Conv3x3 {
    weight: Var,
}

impl Conv3x3 {
    /// A convolution of `inputs` to `outputs` channels, its weights drawn from `init`.
    pub fn new(init: &mut Init, inputs: usize, outputs: usize) -> Result<Conv3x3> {
        Ok(Conv3x3 {
            weight: init.uniform(&[outputs, inputs, 3, 3], inputs * 9)?,
        })
    }
}

impl Layer for Conv3x3 {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        x.conv2d(&self.weight, 1, 1, 1, 1)
    }

    fn params(&self) -> Vec<(String, &Var)> {
        vec![("weight".into(), &self.weight)]
    }
}

/// Batch normalisation over `(N, H, W)` per channel, as torch `BatchNorm2d`
/// (momentum 0.1, eps 1e-5, unbiased variance in the running estimate).
pub struct BatchNorm2d {
    weight: Var,
    bias: Var,
    running_mean: Var,
    running_var: Var,
}

const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;

impl BatchNorm2d {
    /// Batch norm over `channels`: weight 1, bias 0, running mean 0, running variance 1.
    pub fn new(init: &mut Init, channels: usize) -> Result<BatchNorm2d> {
        Ok(BatchNorm2d {
            weight: init.constant(&[channels], 1.0)?,
            bias: init.constant(&[channels], 0.0)?,
            running_mean: init.constant(&[channels], 0.0)?,
            running_var: init.constant(&[channels], 1.0)?,
        })
    }
}

impl Layer for BatchNorm2d {
    /// Works on a `(C, N*H*W)` copy: candle's reductions (and the gradients of the
    /// broadcasts) are fast along the last, contiguous dimension and slow across
    /// strided ones, which dominated the CNN's time with NCHW reductions.
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let xt = x.transpose(0, 1)?.reshape((c, n * h * w))?;
        let col = (c, 1);
        let (centered, var) = if train {
            let mean = xt.mean_keepdim(1)?;
            let centered = xt.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(1)?;
            let count = (n * h * w) as f64;
            let unbiased = (count / (count - 1.0).max(1.0)) * BN_MOMENTUM;
            let (m, v) = (mean.detach().flatten_all()?, var.detach().flatten_all()?);
            self.running_mean.set(
                &((self.running_mean.as_tensor() * (1.0 - BN_MOMENTUM))? + (m * BN_MOMENTUM)?)?,
            )?;
            self.running_var
                .set(&((self.running_var.as_tensor() * (1.0 - BN_MOMENTUM))? + (v * unbiased)?)?)?;
            (centered, var)
        } else {
            let mean = self.running_mean.as_tensor().reshape(col)?;
            (
                xt.broadcast_sub(&mean)?,
                self.running_var.as_tensor().reshape(col)?,
            )
        };
        let scale = (var + BN_EPS)?
            .sqrt()?
            .recip()?
            .broadcast_mul(&self.weight.reshape(col)?)?;
        let y = centered
            .broadcast_mul(&scale)?
            .broadcast_add(&self.bias.reshape(col)?)?;
        y.reshape((c, n, h, w))?.transpose(0, 1)
    }

    fn params(&self) -> Vec<(String, &Var)> {
        vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)]
    }

    fn buffers(&self) -> Vec<(String, &Var)> {
        vec![
            ("running_mean".into(), &self.running_mean),
            ("running_var".into(), &self.running_var),
        ]
    }
}

/// max(x, 0).
pub struct Relu;

impl Layer for Relu {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        x.relu()
    }
}

/// 2x2 max pooling, stride 2 (odd sizes round down): [`max_pool`].
pub struct MaxPool2;

impl Layer for MaxPool2 {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        max_pool(x, 2)
    }
}

/// Max over `k` x `k` windows, stride `k` (a remainder of rows or columns dropped,
/// as torch does), whose gradient goes whole to the first maximum of each window in
/// row-major order, as torch's and the engine's do. candle's own reductions give it
/// to every tied maximum, and its `max_pool2d` scales it by 1/k^2: both differ from
/// torch on ties, which ReLU's zeros and images' flat regions make common. The
/// first maximum is found with device-neutral tensor ops (an argmax's tie order is
/// the backend's), so CUDA and the CPU agree.
pub fn max_pool(x: &Tensor, k: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / k, w / k);
    let x = if h % k != 0 || w % k != 0 {
        x.narrow(2, 0, k * oh)?.narrow(3, 0, k * ow)?
    } else {
        x.clone()
    };
    // (n, c, oh, ow, k * k): each window's values in row-major order.
    let win = x
        .reshape((n, c, oh, k, ow, k))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((n, c, oh, ow, k * k))?;
    let plain = win.detach();
    let hit = plain
        .broadcast_eq(&plain.max_keepdim(4)?)?
        .to_dtype(plain.dtype())?;
    // hit x (hits so far) is 1 at the first maximum only.
    let first = (&hit * hit.cumsum(4)?)?.eq(1.0)?;
    first.where_cond(&win, &win.zeros_like()?)?.sum(4)
}

/// Index of the largest logit per row.
pub fn argmax(logits: &Tensor) -> Result<Tensor> {
    logits.argmax(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    /// The gradient of `y.sum()` with respect to `x`, flattened.
    fn grad_of_sum(x: &Var, y: Tensor) -> Vec<f32> {
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().flatten_all().unwrap();
        g.to_vec1::<f32>().unwrap()
    }

    #[test]
    fn max_pool_passes_the_whole_gradient_to_the_maximum() {
        // torch: F.max_pool2d(x, 2).sum().backward() gives x.grad = [[0, 0], [0, 1]]
        // (and for the 3x3 input, the max of the top-left window only).
        let x =
            Var::from_tensor(&Tensor::new(&[[[[1f32, 2.0], [3.0, 4.0]]]], &Device::Cpu).unwrap())
                .unwrap();
        let g = grad_of_sum(&x, MaxPool2.forward(x.as_tensor(), true).unwrap());
        assert_eq!(g, [0.0, 0.0, 0.0, 1.0]);
        let x = Var::from_tensor(
            &Tensor::arange(0f32, 9.0, &Device::Cpu)
                .unwrap()
                .reshape((1, 1, 3, 3))
                .unwrap(),
        )
        .unwrap();
        let y = MaxPool2.forward(x.as_tensor(), true).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [4.0]);
        let g = grad_of_sum(&x, y);
        assert_eq!(g, [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn tied_maxima_give_the_gradient_to_the_first_as_torch_does() {
        // torch: x = zeros(1,1,4,4); x[0,0,1,1] = x[0,0,0,1] = 1 (two tied in the
        // first window); F.max_pool2d(x, 2).sum().backward() gives 1 at (0,1) of the
        // first window (the first maximum in row-major order) and at (0,0) of each
        // all-zero window.
        let mut v = vec![0f32; 16];
        v[1] = 1.0;
        v[5] = 1.0;
        let x =
            Var::from_tensor(&Tensor::from_vec(v, (1, 1, 4, 4), &Device::Cpu).unwrap()).unwrap();
        let y = max_pool(x.as_tensor(), 2).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [1.0, 0.0, 0.0, 0.0]
        );
        let g = grad_of_sum(&x, y);
        let mut want = vec![0f32; 16];
        for i in [1, 2, 8, 10] {
            want[i] = 1.0;
        }
        assert_eq!(g, want);
        // A 3x3 window of nine equal values: the whole gradient to its first.
        let x = Var::from_tensor(&Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        let g = grad_of_sum(&x, max_pool(x.as_tensor(), 3).unwrap());
        assert_eq!(g, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
