//! GPU checks, for a build with `--features cuda` on a machine with a CUDA device
//! (`tools/gpu-check.sh` runs them there); anywhere else they say they were skipped.
//! The fused kernels' math is also checked without a GPU, in `optim::tests`.

/// Says a check was skipped on the real stderr (the harness captures `eprintln!`).
fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "test skipped: {why}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn gpu_checks_need_the_cuda_feature() {
    skip("the GPU checks: built without --features cuda (see tools/gpu-check.sh)");
}

#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::{DType, Device, Tensor, Var};
    use rudder_nn::optim::{AdamW, Hyper, Optimizer, Sgd};

    fn gpu() -> Option<Device> {
        match Device::new_cuda(0) {
            Ok(d) => Some(d),
            Err(e) => {
                let e = e.to_string();
                super::skip(&format!(
                    "no CUDA device ({})",
                    e.lines().next().unwrap_or_default()
                ));
                None
            }
        }
    }

    fn hyper(lr: f64, momentum: f64, nesterov: bool) -> Hyper {
        Hyper {
            lr,
            momentum,
            weight_decay: 0.01,
            nesterov,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// The fused CUDA kernels against candle's tensor expressions, on the GPU: 100
    /// steps over three tensors (one of 1M elements), the LR changed at step 50.
    #[test]
    fn fused_steps_equal_unfused_after_100_steps() {
        let Some(dev) = gpu() else { return };
        let shapes: [&[usize]; 3] = [&[1000, 1000], &[333], &[64, 3, 3, 3]];
        for (adamw, h) in [
            (true, hyper(1e-2, 0.9, false)),
            (false, hyper(0.05, 0.9, true)),
            (false, hyper(0.05, 0.9, false)),
            (false, hyper(0.05, 0.0, false)),
        ] {
            let make = || -> Vec<(String, Var)> {
                shapes
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let n: usize = s.iter().product();
                        let t = Tensor::arange(0u32, n as u32, &dev)
                            .unwrap()
                            .to_dtype(DType::F32)
                            .unwrap()
                            .affine(0.7, i as f64)
                            .unwrap()
                            .sin()
                            .unwrap()
                            .reshape(*s)
                            .unwrap();
                        (format!("p{i}"), Var::from_tensor(&t).unwrap())
                    })
                    .collect()
            };
            let (a, b) = (make(), make());
            let build = |ps: Vec<(String, Var)>, fused: bool| -> Box<dyn Optimizer> {
                if adamw {
                    let mut o = AdamW::new(ps, h).unwrap();
                    o.set_fused(fused);
                    Box::new(o)
                } else {
                    let mut o = Sgd::new(ps, h).unwrap();
                    o.set_fused(fused);
                    Box::new(o)
                }
            };
            let (mut fused, mut plain) = (build(a.clone(), true), build(b.clone(), false));
            for t in 0..100 {
                if t == 50 {
                    for o in [&mut fused, &mut plain] {
                        let mut h2 = o.hyper();
                        h2.lr *= 0.3;
                        o.set_hyper(h2);
                    }
                }
                let grads: Vec<Tensor> = shapes
                    .iter()
                    .map(|s| {
                        let n: usize = s.iter().product();
                        Tensor::arange(0u32, n as u32, &dev)
                            .unwrap()
                            .to_dtype(DType::F32)
                            .unwrap()
                            .affine(0.37, t as f64 * 0.11)
                            .unwrap()
                            .sin()
                            .unwrap()
                            .affine(0.2, 0.0)
                            .unwrap()
                            .reshape(*s)
                            .unwrap()
                    })
                    .collect();
                fused.step(&grads).unwrap();
                plain.step(&grads).unwrap();
            }
            for ((_, x), (_, y)) in a.iter().zip(&b) {
                let (x, y): (Vec<f32>, Vec<f32>) = (
                    x.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
                    y.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
                );
                let scale = y.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = x
                    .iter()
                    .zip(&y)
                    .map(|(p, q)| (p - q).abs() / scale)
                    .fold(0f32, f32::max);
                eprintln!("adamw={adamw} {h:?}: worst difference {worst:.2e}");
                assert!(worst <= 1e-6, "adamw={adamw} {h:?}: {worst}");
            }
        }
    }

    /// A short MNIST CNN run with `--device cuda` that learns.
    #[test]
    fn a_short_mnist_cnn_run_on_cuda_learns() {
        if gpu().is_none() {
            return;
        }
        // On the GPU machine the binary and the data come from tools/gpu-check.sh.
        let bin =
            std::env::var("RUDDER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rudder").into());
        let data =
            std::env::var("RUDDER_GPU_DATA").unwrap_or_else(|_| "data/mnist_5k.csv.gz".into());
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r");
        let o = std::process::Command::new(bin)
            .args([
                "train", "--device", "cuda", "--model", "cnn", "--epochs", "2", "--quiet",
                "--watch", "off", "--data",
            ])
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("rudder runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        eprintln!("cuda CNN on {data}: {last}");
        assert!(last["val_acc"].as_f64().unwrap() > 0.9, "{last}");
    }
}
