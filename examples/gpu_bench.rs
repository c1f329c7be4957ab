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
    use std::time::Instant;

    use candle_core::{DType, Device, Tensor, Var};
    use candle_nn::Optimizer as _;
    use rudder::optim::{AdamW, Hyper, Optimizer, Sgd};

    let dev = Device::new_cuda(0)?;
    let (tensors, each) = (10usize, 1_000_000usize);
    let params = || -> candle_core::Result<Vec<(String, Var)>> {
        (0..tensors)
            .map(|i| {
                let t = Tensor::randn(0f32, 0.02, each, &dev)?;
                Ok((format!("p{i}"), Var::from_tensor(&t)?))
            })
            .collect()
    };
    let grads: Vec<Tensor> = (0..tensors)
        .map(|_| Tensor::randn(0f32, 0.01, each, &dev))
        .collect::<candle_core::Result<_>>()?;
    let h = Hyper {
        lr: 1e-3,
        momentum: 0.9,
        weight_decay: 0.01,
        nesterov: false,
        beta2: 0.999,
        eps: 1e-8,
    };
    let n = (tensors * each) as f64;
    let time = |f: &mut dyn FnMut() -> candle_core::Result<()>| -> candle_core::Result<f64> {
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
    };
    let report = |name: &str, secs: f64, bytes_per_param: f64| {
        let gbs = n * bytes_per_param / secs / 1e9;
        println!("{name}: {:.3} ms/step, {gbs:.0} GB/s", secs * 1e3);
    };

    let mut fused = AdamW::new(params()?, h)?;
    report(
        "adamw fused (rudder, 1 kernel/tensor)",
        time(&mut || fused.step(&grads))?,
        28.0,
    );
    let mut plain = AdamW::new(params()?, h)?;
    plain.set_fused(false);
    report(
        "adamw unfused (rudder tensor expressions)",
        time(&mut || plain.step(&grads))?,
        28.0,
    );

    // candle-nn's AdamW needs a GradStore: take one from a backward pass whose
    // gradient is the fixed `grads`.
    let vars = params()?;
    let loss = vars
        .iter()
        .zip(&grads)
        .map(|((_, v), g)| (v.as_tensor() * g)?.sum_all())
        .collect::<candle_core::Result<Vec<_>>>()?
        .into_iter()
        .try_fold(Tensor::zeros((), DType::F32, &dev)?, |a, b| a + b)?;
    let store = loss.backward()?;
    let mut candle_adamw = candle_nn::AdamW::new(
        vars.iter().map(|(_, v)| v.clone()).collect(),
        candle_nn::ParamsAdamW {
            lr: h.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
    )?;
    report(
        "adamw candle-nn",
        time(&mut || candle_adamw.step(&store))?,
        28.0,
    );

    let mut sgd = Sgd::new(params()?, h)?;
    report(
        "sgd momentum fused (rudder)",
        time(&mut || sgd.step(&grads))?,
        20.0,
    );
    let mut sgd_plain = Sgd::new(params()?, h)?;
    sgd_plain.set_fused(false);
    report(
        "sgd momentum unfused (rudder tensor expressions)",
        time(&mut || sgd_plain.step(&grads))?,
        20.0,
    );
    Ok(())
}
