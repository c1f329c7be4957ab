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

/// 2x2 max pooling, stride 2 (odd sizes round down), as a reshape and two max
/// reductions: candle 0.11's own `max_pool2d` backward scales the gradient of a
/// unique maximum by 1/4 (torch passes it whole), see the test below.
pub struct MaxPool2;

impl Layer for MaxPool2 {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let (oh, ow) = (h / 2, w / 2);
        let x = if h % 2 == 1 || w % 2 == 1 {
            x.narrow(2, 0, 2 * oh)?.narrow(3, 0, 2 * ow)?
        } else {
            x.clone()
        };
        x.reshape((n, c, oh, 2, ow, 2))?.max(5)?.max(3)
    }
}

/// Index of the largest logit per row.
pub fn argmax(logits: &Tensor) -> Result<Tensor> {
    logits.argmax(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_passes_the_whole_gradient_to_the_maximum() {
        // torch: F.max_pool2d(x, 2).sum().backward() gives x.grad = [[0, 0], [0, 1]]
        // (and for the 3x3 input, the max of the top-left window only).
        let x =
            Var::from_tensor(&Tensor::new(&[[[[1f32, 2.0], [3.0, 4.0]]]], &Device::Cpu).unwrap())
                .unwrap();
        let g = MaxPool2
            .forward(x.as_tensor(), true)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
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
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(g, [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
