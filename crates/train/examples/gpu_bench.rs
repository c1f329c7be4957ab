//! The fused optimizer step on the GPU: time per step and achieved memory bandwidth
//! for a 10M-parameter model (ten 1M-element tensors), against our own unfused
//! tensor expressions and candle-nn's `AdamW`. Build with `--features cuda`;
//! `tools/gpu-check.sh` runs it on the GPU machine and compares with the peak.
//!
//! Bytes moved per parameter and step: AdamW reads p, g, m, v and writes p, m, v
//! (28 B); SGD with momentum reads p, g, b and writes p, b (20 B).

#[cfg(not(feature = "cuda"))]
fn main() {
    eprintln!("gpu_bench: built without --features cuda");
}

#[cfg(feature = "cuda")]
fn main() -> candle_core::Result<()> {
    bench::run()
}

#[cfg(feature = "cuda")]
mod bench {
    use std::time::Instant;

    use candle_core::{DType, Device, Tensor, Var};
    use candle_nn::Optimizer as _;
    use rudder_nn::optim::{AdamW, Hyper, Optimizer, Sgd};

    /// Tensors of the model, and elements each.
    const TENSORS: usize = 10;
    const EACH: usize = 1_000_000;

    const H: Hyper = Hyper {
        lr: 1e-3,
        momentum: 0.9,
        weight_decay: 0.01,
        nesterov: false,
        beta2: 0.999,
        eps: 1e-8,
    };

    pub(crate) fn run() -> candle_core::Result<()> {
        let dev = Device::new_cuda(0)?;
        let grads: Vec<Tensor> = (0..TENSORS)
            .map(|_| Tensor::randn(0f32, 0.01, EACH, &dev))
            .collect::<candle_core::Result<_>>()?;
        let mut fused = AdamW::new(params(&dev)?, H)?;
        report(
            "adamw fused (rudder, 1 kernel/tensor)",
            time(&dev, &mut || fused.step(&grads))?,
            28.0,
        );
        let mut plain = AdamW::new(params(&dev)?, H)?;
        plain.set_fused(false);
        report(
            "adamw unfused (rudder tensor expressions)",
            time(&dev, &mut || plain.step(&grads))?,
            28.0,
        );
        candle_adamw(&dev, &grads)?;
        let mut sgd = Sgd::new(params(&dev)?, H)?;
        report(
            "sgd momentum fused (rudder)",
            time(&dev, &mut || sgd.step(&grads))?,
            20.0,
        );
        let mut sgd_plain = Sgd::new(params(&dev)?, H)?;
        sgd_plain.set_fused(false);
        report(
            "sgd momentum unfused (rudder tensor expressions)",
            time(&dev, &mut || sgd_plain.step(&grads))?,
            20.0,
        );
        Ok(())
    }

    /// A fresh model: `TENSORS` tensors of `EACH` parameters.
    fn params(dev: &Device) -> candle_core::Result<Vec<(String, Var)>> {
        (0..TENSORS)
            .map(|i| {
                let t = Tensor::randn(0f32, 0.02, EACH, dev)?;
                Ok((format!("p{i}"), Var::from_tensor(&t)?))
            })
            .collect()
    }

    /// Seconds per call of `f`, after 10 calls to warm up, over 100.
    fn time(
        dev: &Device,
        f: &mut dyn FnMut() -> candle_core::Result<()>,
    ) -> candle_core::Result<f64> {
        for _ in 0..10 {
            f()?;
        }
        dev.synchronize()?;
        let reps = 100;
        let t0 = Instant::now();
        for _ in 0..reps {
            f()?;
        }
        dev.synchronize()?;
        Ok(t0.elapsed().as_secs_f64() / reps as f64)
    }

    fn report(name: &str, secs: f64, bytes_per_param: f64) {
        let n = (TENSORS * EACH) as f64;
        let gbs = n * bytes_per_param / secs / 1e9;
        println!("{name}: {:.3} ms/step, {gbs:.0} GB/s", secs * 1e3);
    }

    /// candle-nn's AdamW, which needs a GradStore: one from a backward pass whose
    /// gradient is the fixed `grads`.
    fn candle_adamw(dev: &Device, grads: &[Tensor]) -> candle_core::Result<()> {
        let vars = params(dev)?;
        let loss = vars
            .iter()
            .zip(grads)
            .map(|((_, v), g)| (v.as_tensor() * g)?.sum_all())
            .collect::<candle_core::Result<Vec<_>>>()?
            .into_iter()
            .try_fold(Tensor::zeros((), DType::F32, dev)?, |a, b| a + b)?;
        let store = loss.backward()?;
        let mut adamw = candle_nn::AdamW::new(
            vars.iter().map(|(_, v)| v.clone()).collect(),
            candle_nn::ParamsAdamW {
                lr: H.lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
            },
        )?;
        report(
            "adamw candle-nn",
            time(dev, &mut || adamw.step(&store))?,
            28.0,
        );
        Ok(())
    }
}
