//! The engine against candle's autograd on the same weights and batch: logits, loss,
//! every parameter gradient and the batch-norm running statistics; and a finite-
//! difference check of the input gradient through every layer kind.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use rudder_nn::loss::Loss;
use rudder_nn::model::{self, Arch, Io};

fn batch(n: usize, d: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * d).map(|_| rng.random_range(-1.5f32..1.5)).collect();
    let y = (0..n)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    (x, y)
}

/// Engine gradients in the candle model's layout, by name.
fn engine_grads(net: &mut Net) -> Vec<(String, Vec<f32>)> {
    let maps: Vec<(String, Option<Vec<usize>>)> = net
        .mappings
        .iter()
        .map(|m| (m.name.clone(), m.perm.clone()))
        .collect();
    let mut grads: Vec<Vec<f32>> = Vec::new();
    net.visit(&mut |_, p| grads.push(p.grad.clone()));
    maps.into_iter()
        .zip(grads)
        .map(|((name, perm), g)| match perm {
            Some(perm) => {
                let mut out = vec![0f32; g.len()];
                perm.iter().zip(&g).for_each(|(&j, &v)| out[j] = v);
                (name, out)
            }
            None => (name, g),
        })
        .collect()
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 2e-4 * scale,
            "{what}[{i}]: engine {x} vs candle {y} (scale {scale})"
        );
    }
}

fn check_against_candle(arch: Arch, io: Io, loss: Loss) {
    check_against_candle_threads(arch, io, loss, 1)
}

fn check_against_candle_threads(arch: Arch, io: Io, loss: Loss, threads: usize) {
    let n = 7;
    let model = model::build(&arch, io, 3, &Device::Cpu).unwrap();
    let mut net = Net::from_model(&arch, io, &model, threads).unwrap();
    let (x, y) = batch(n, io.features, io.classes, 9);
    let shape: Vec<usize> = match io.image {
        Some((c, h, w)) => vec![n, c, h, w],
        None => vec![n, io.features],
    };
    let xt = Tensor::from_vec(x.clone(), shape, &Device::Cpu).unwrap();
    let yt = Tensor::from_vec(y.clone(), n, &Device::Cpu).unwrap();
    let logits = model.forward(&xt, true).unwrap();
    let l = rudder_nn::loss::classify(loss, &logits, &yt).unwrap();
    let grads = l.backward().unwrap();

    net.gather_range(&x, &y, 0, n);
    let (engine_loss, _) = net.train_batch(loss, false, 1.0);
    close(
        net.logits(),
        &logits.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        "logits",
    );
    assert!(
        (engine_loss - l.to_scalar::<f32>().unwrap() as f64).abs() < 1e-5,
        "{loss:?} loss"
    );
    let named: std::collections::HashMap<String, candle_core::Var> =
        model.params().into_iter().collect();
    for (name, g) in engine_grads(&mut net) {
        let want = grads
            .get(named[&name].as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        close(&g, &want, &format!("{arch:?} {loss:?} grad {name}"));
    }
    // Running statistics moved the same way.
    let exported = model::build(&arch, io, 3, &Device::Cpu).unwrap();
    net.export(&exported).unwrap();
    for ((name, a), (_, b)) in exported.buffers().iter().zip(model.buffers()) {
        close(
            &a.as_tensor().to_vec1::<f32>().unwrap(),
            &b.as_tensor().to_vec1::<f32>().unwrap(),
            name,
        );
    }
}

#[test]
fn mlp_matches_candle_autograd_for_every_loss() {
    let io = Io {
        features: 12,
        image: None,
        classes: 4,
    };
    for loss in [Loss::CrossEntropy, Loss::Mse, Loss::Hinge] {
        check_against_candle(
            Arch::Mlp {
                hidden: vec![16, 8],
            },
            io,
            loss,
        );
    }
}

#[test]
fn cnn_matches_candle_autograd_for_every_loss() {
    let io = Io {
        features: 64,
        image: Some((1, 8, 8)),
        classes: 5,
    };
    for loss in [Loss::CrossEntropy, Loss::Mse, Loss::Hinge] {
        check_against_candle(
            Arch::Cnn {
                channels: vec![4, 6],
            },
            io,
            loss,
        );
    }
    // Split over threads by example (7 examples: uneven chunks).
    for threads in [2, 3] {
        check_against_candle_threads(
            Arch::Cnn {
                channels: vec![4, 6],
            },
            io,
            Loss::CrossEntropy,
            threads,
        );
    }
    // Odd sizes: pooling rounds down.
    let io = Io {
        features: 49,
        image: Some((1, 7, 7)),
        classes: 3,
    };
    check_against_candle(
        Arch::Cnn {
            channels: vec![3, 2],
        },
        io,
        Loss::CrossEntropy,
    );
}

#[test]
fn export_then_import_is_the_identity() {
    let arch = Arch::Cnn {
        channels: vec![4, 6],
    };
    let io = Io {
        features: 64,
        image: Some((1, 8, 8)),
        classes: 5,
    };
    let model = model::build(&arch, io, 1, &Device::Cpu).unwrap();
    let mut net = Net::from_model(&arch, io, &model, 1).unwrap();
    let other = model::build(&arch, io, 2, &Device::Cpu).unwrap();
    net.export(&other).unwrap();
    for ((n, a), (_, b)) in model.params().iter().zip(other.params()) {
        assert_eq!(
            a.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            b.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            "{n}"
        );
    }
}

#[test]
fn accumulation_adds_gradients() {
    let arch = Arch::Mlp { hidden: vec![8] };
    let io = Io {
        features: 5,
        image: None,
        classes: 3,
    };
    let model = model::build(&arch, io, 1, &Device::Cpu).unwrap();
    let mut net = Net::from_model(&arch, io, &model, 1).unwrap();
    let (x, y) = batch(8, 5, 3, 1);
    net.gather_range(&x, &y, 0, 4);
    net.train_batch(Loss::CrossEntropy, false, 1.0);
    let first = engine_grads(&mut net);
    net.gather_range(&x, &y, 4, 4);
    net.train_batch(Loss::CrossEntropy, false, 1.0);
    let second = engine_grads(&mut net);
    net.gather_range(&x, &y, 0, 4);
    net.train_batch(Loss::CrossEntropy, false, 1.0);
    net.gather_range(&x, &y, 4, 4);
    net.train_batch(Loss::CrossEntropy, true, 1.0);
    for ((name, sum), ((_, a), (_, b))) in
        engine_grads(&mut net).iter().zip(first.iter().zip(&second))
    {
        let want: Vec<f32> = a.iter().zip(b).map(|(x, y)| x + y).collect();
        close(sum, &want, name);
    }
}

#[test]
fn input_gradients_match_finite_differences() {
    // Through conv, batch norm + ReLU, pooling and the dense head, with f64 sums of
    // the f32 loss: d loss / d (first layer's weight) by central differences.
    let arch = Arch::Cnn { channels: vec![2] };
    let io = Io {
        features: 16,
        image: Some((1, 4, 4)),
        classes: 3,
    };
    let model = model::build(&arch, io, 5, &Device::Cpu).unwrap();
    let mut net = Net::from_model(&arch, io, &model, 1).unwrap();
    let (x, y) = batch(4, 16, 3, 2);
    finite_differences(&mut net, &x, &y, 1e-2, &|k, _| match k {
        0 => vec![0, 5, 11, 17],
        _ => vec![],
    });
}

/// Central differences (step `h`) of the loss on `(x, y)` (4 examples) against the
/// engine's gradient, for the elements `pick(k, len)` of each parameter `k`.
fn finite_differences(
    net: &mut Net,
    x: &[f32],
    y: &[u32],
    h: f32,
    pick: &dyn Fn(usize, usize) -> Vec<usize>,
) {
    let loss_at = |net: &mut Net| {
        net.gather_range(x, y, 0, 4);
        net.train_batch(Loss::CrossEntropy, false, 1.0).0
    };
    loss_at(net);
    let mut analytic: Vec<Vec<f32>> = Vec::new();
    net.visit(&mut |_, p| analytic.push(p.grad.clone()));
    for (k, grad) in analytic.iter().enumerate() {
        for j in pick(k, grad.len()) {
            let mut at = |delta: f32| {
                net.visit(&mut |i, p| {
                    if i == k {
                        p.value[j] += delta
                    }
                });
                let l = loss_at(net);
                net.visit(&mut |i, p| {
                    if i == k {
                        p.value[j] -= delta
                    }
                });
                l
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h as f64);
            assert!(
                (numeric - grad[j] as f64).abs() < 2e-3 + 0.02 * numeric.abs(),
                "parameter {k}[{j}]: numeric {numeric} vs analytic {}",
                grad[j]
            );
        }
    }
}

#[test]
fn evaluation_matches_candle_after_training_steps() {
    use crate::flat::Flat;
    use rudder_nn::optim::{Hyper, OptimizerKind as Kind};
    let arch = Arch::Cnn {
        channels: vec![4, 6],
    };
    let io = Io {
        features: 64,
        image: Some((1, 8, 8)),
        classes: 5,
    };
    let model = model::build(&arch, io, 3, &Device::Cpu).unwrap();
    let mut net = Net::from_model(&arch, io, &model, 1).unwrap();
    let mut opt = Flat::new(
        Kind::Sgd,
        Hyper {
            lr: 0.5,
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            beta2: 0.999,
            eps: 1e-8,
        },
    );
    let (x, y) = batch(40, 64, 5, 4);
    for s in 0..5 {
        net.gather_range(&x, &y, s * 8, 8);
        net.train_batch(Loss::CrossEntropy, false, 1.0);
        let c = opt.begin();
        net.visit(&mut |i, p| opt.update(&c, i, &mut p.value, &p.grad));
    }
    net.export(&model).unwrap();
    net.gather_range(&x, &y, 0, 40);
    net.eval_batch(Loss::CrossEntropy);
    let xt = Tensor::from_vec(x.clone(), (40, 1, 8, 8), &Device::Cpu).unwrap();
    let want = model
        .forward(&xt, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    close(net.logits(), &want, "eval logits");
}

/// A 1->2 channel CNN on 4x4 inputs with fixed weights, against PyTorch:
///
/// ```python
/// conv = nn.Conv2d(1, 2, 3, padding=1, bias=False); bn = nn.BatchNorm2d(2); head = nn.Linear(8, 3)
/// conv.weight = [0.1 * (k % 7) - 0.3 for k in range(18)]; bn.weight = [1.0, 0.5]; bn.bias = [0.1, -0.1]
/// head.weight = [0.05 * (k % 11) - 0.25 for k in range(24)]; head.bias = [0.0, 0.1, -0.1]
/// x = [((k * 37) % 19) / 10 - 0.9 for k in range(48)] as (3, 1, 4, 4); y = [0, 2, 1]
/// F.cross_entropy(head(F.max_pool2d(F.relu(bn(conv(x))), 2).flatten(1)), y).backward()
/// ```
#[test]
fn cnn_gradients_match_pytorch() {
    let arch = Arch::Cnn { channels: vec![2] };
    let io = Io {
        features: 16,
        image: Some((1, 4, 4)),
        classes: 3,
    };
    let model = model::build(&arch, io, 0, &Device::Cpu).unwrap();
    let set = |name: &str, v: Vec<f32>| {
        let (_, var) = model.params().into_iter().find(|(n, _)| n == name).unwrap();
        var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    };
    set(
        "conv1.weight",
        (0..18).map(|k| 0.1 * (k % 7) as f32 - 0.3).collect(),
    );
    set("bn1.weight", vec![1.0, 0.5]);
    set("bn1.bias", vec![0.1, -0.1]);
    set(
        "head.weight",
        (0..24).map(|k| 0.05 * (k % 11) as f32 - 0.25).collect(),
    );
    set("head.bias", vec![0.0, 0.1, -0.1]);
    let mut net = Net::from_model(&arch, io, &model, 1).unwrap();
    let x: Vec<f32> = (0..48)
        .map(|k| ((k * 37) % 19) as f32 / 10.0 - 0.9)
        .collect();
    net.gather_range(&x, &[0, 2, 1], 0, 3);
    let (loss, _) = net.train_batch(Loss::CrossEntropy, false, 1.0);
    assert!((loss - 1.170_195_7).abs() < 1e-5, "loss {loss}");
    let want: [(&str, &[f32]); 5] = [
        (
            "conv1.weight",
            &[
                0.037_717_07,
                0.154_333_34,
                0.340_776,
                0.123_207_29,
                0.334_628_5,
                0.401_516_77,
                0.131_185_44,
                0.139_444_17,
                0.175_052_76,
                0.210_193_37,
                0.304_614_4,
                0.206_366_54,
                -0.315_385_8,
                -0.259_770_45,
                -0.203_929_54,
                -0.276_899_04,
                -0.248_263_69,
                0.032_587_99,
            ],
        ),
        ("bn1.weight", &[0.185_813_05, -0.070_408_58]),
        ("bn1.bias", &[0.269_881_5, -0.096_575_66]),
        (
            "head.weight",
            &[
                -0.126_226_25,
                -0.099_233_22,
                0.012_607_55,
                0.015_028_31,
                -0.117_111_25,
                -0.091_731_44,
                -0.038_497_1,
                -0.030_061_3,
                0.345_835_2,
                0.298_313_3,
                -0.380_753_1,
                -0.309_589_9,
                0.016_528_94,
                0.118_915_11,
                0.027_479_6,
                -0.047_561_34,
                -0.219_608_87,
                -0.199_080_04,
                0.368_145_6,
                0.294_561_6,
                0.100_582_34,
                -0.027_183_62,
                0.011_017_52,
                0.077_622_67,
            ],
        ),
        ("head.bias", &[-0.195_708, 0.154_009_7, 0.041_698_37]),
    ];
    let got = engine_grads(&mut net);
    for ((name, g), (want_name, w)) in got.iter().zip(want) {
        assert_eq!(name, want_name);
        close(g, w, name);
    }
    // bn.running_mean / running_var after the step, as torch.
    net.each_norm(&mut |_, bn| {
        close(
            &bn.running_mean,
            &[-0.005_145_834, -0.001_75],
            "running_mean",
        );
        close(&bn.running_var, &[0.910_202_5, 0.906_040_6], "running_var");
    });
}

/// A model file of vectors (every layer the engine has for them) trains on the
/// engine with candle's numbers: logits, loss, every gradient, dropout's mask
/// included.
#[test]
fn vector_model_files_match_candle_autograd() {
    let spec: rudder_nn::model::spec::Spec = serde_json::from_str(
        r#"[{"type":"linear","out":16},{"type":"gelu"},{"type":"layernorm"},{"type":"batchnorm"},
            {"type":"dropout","p":0.3},{"type":"linear","out":8},{"type":"tanh"},
            {"type":"linear","out":8},{"type":"sigmoid"},{"type":"linear","out":6},
            {"type":"relu"},{"type":"flatten"},{"type":"linear"}]"#,
    )
    .unwrap();
    let io = Io {
        features: 12,
        image: None,
        classes: 4,
    };
    for loss in [Loss::CrossEntropy, Loss::Mse, Loss::Hinge] {
        check_against_candle(
            Arch::File {
                name: "vector.json".into(),
                spec: spec.clone(),
            },
            io,
            loss,
        );
    }
    // Images flattened first are vectors too; a convolution is candle's.
    let image = Io {
        features: 16,
        image: Some((1, 4, 4)),
        classes: 3,
    };
    let flat: rudder_nn::model::spec::Spec = serde_json::from_str(
        r#"[{"type":"flatten"},{"type":"linear","out":5},{"type":"tanh"},{"type":"linear"}]"#,
    )
    .unwrap();
    let arch = Arch::File {
        name: "flat.json".into(),
        spec: flat,
    };
    check_against_candle(arch, image, Loss::CrossEntropy);
    // A first `linear` flattens as the built-in MLP does.
    let arch = Arch::File {
        name: "mlp-dropout".into(),
        spec: rudder_nn::model::spec::Spec::mlp(&[6], 0.5),
    };
    check_against_candle(arch, image, Loss::CrossEntropy);
}

fn file(json: &str) -> Arch {
    Arch::File {
        name: "file.json".into(),
        spec: serde_json::from_str(json).unwrap(),
    }
}

/// A model file of images with every image layer (convolutions of each kernel size
/// with stride, padding and bias; batch norm, layer norm and dropout on images;
/// max and mean pools of 2 and 3; a residual block holding a convolution, a batch
/// norm and a dropout; both ways to flatten) trains on the engine with candle's
/// numbers, at 1 and 3 threads, on one- and three-channel input.
#[test]
fn image_model_files_match_candle_autograd() {
    let arch = file(
        r#"[{"type":"conv2d","out":4,"kernel":5,"padding":1},{"type":"batchnorm"},{"type":"relu"},
            {"type":"residual","layers":[
                {"type":"conv2d","out":4,"kernel":3,"bias":false},{"type":"batchnorm"},
                {"type":"gelu"},{"type":"dropout","p":0.3}]},
            {"type":"maxpool2d","kernel":3},
            {"type":"conv2d","out":6,"kernel":1,"stride":2,"padding":0},
            {"type":"layernorm"},{"type":"dropout","p":0.2},{"type":"tanh"},
            {"type":"conv2d","out":5,"kernel":3,"stride":2,"padding":2},{"type":"sigmoid"},
            {"type":"avgpool2d","kernel":2},
            {"type":"flatten"},{"type":"linear","out":7},{"type":"relu"},{"type":"linear"}]"#,
    );
    for (c, threads) in [(1, 1), (1, 3), (3, 1), (3, 2)] {
        let io = Io {
            features: c * 11 * 11,
            image: Some((c, 11, 11)),
            classes: 3,
        };
        check_against_candle_threads(arch.clone(), io, Loss::CrossEntropy, threads);
    }
    // A linear straight on several channels flattens them in torch's order; an
    // average pool of 3 drops the remainder; a block of nothing doubles its input.
    let arch = file(
        r#"[{"type":"conv2d","out":3,"kernel":3},{"type":"avgpool2d","kernel":3},
            {"type":"residual","layers":[]},{"type":"maxpool2d","kernel":2},
            {"type":"linear"}]"#,
    );
    let io = Io {
        features: 2 * 8 * 8,
        image: Some((2, 8, 8)),
        classes: 4,
    };
    for loss in [Loss::CrossEntropy, Loss::Mse, Loss::Hinge] {
        check_against_candle(arch.clone(), io, loss);
    }
}

/// Every parameter of an image model file (through a residual block, both pools,
/// layer norm and a strided, padded convolution) by central differences.
#[test]
fn image_model_file_gradients_match_finite_differences() {
    let arch = file(
        r#"[{"type":"conv2d","out":3,"kernel":3},{"type":"batchnorm"},{"type":"tanh"},
            {"type":"residual","layers":[{"type":"conv2d","out":3,"kernel":1},{"type":"gelu"}]},
            {"type":"maxpool2d","kernel":2},{"type":"layernorm"},
            {"type":"conv2d","out":2,"kernel":5,"stride":2,"padding":2},
            {"type":"avgpool2d","kernel":2},{"type":"linear"}]"#,
    );
    let io = Io {
        features: 2 * 8 * 8,
        image: Some((2, 8, 8)),
        classes: 3,
    };
    let model = model::build(&arch, io, 5, &Device::Cpu).unwrap();
    let mut net = Net::from_model(&arch, io, &model, 1).unwrap();
    let (x, y) = batch(4, io.features, 3, 2);
    let mut count = 0;
    net.visit(&mut |_, _| count += 1);
    assert_eq!(count, 12, "every parameter visited");
    finite_differences(&mut net, &x, &y, 1e-3, &|_, len| vec![0, len / 2, len - 1]);
}

/// A strided, padded convolution with bias, batch norm, a residual block of a 1x1
/// convolution and layer norm on images, an average pool and the head, on
/// two-channel input, against torch on the same weights (each parameter's element
/// `i` of the `k`-th is `0.5 sin(1.3 i + 0.7 k + 0.1)`, input element `i` is
/// `cos(0.37 i)`): the loss, each gradient's L1 norm and first elements, and the
/// running statistics (the script's numbers are in the comments).
#[test]
fn image_model_file_matches_pytorch() {
    let arch = file(
        r#"[{"type":"conv2d","out":3,"kernel":3,"stride":2,"padding":2},{"type":"batchnorm"},
            {"type":"relu"},
            {"type":"residual","layers":[{"type":"conv2d","out":3,"kernel":1},{"type":"layernorm"}]},
            {"type":"avgpool2d","kernel":2},{"type":"flatten"},{"type":"linear"}]"#,
    );
    let io = Io {
        features: 2 * 7 * 7,
        image: Some((2, 7, 7)),
        classes: 3,
    };
    let model = model::build(&arch, io, 1, &Device::Cpu).unwrap();
    for (k, (_, var)) in model.params().iter().enumerate() {
        let v: Vec<f32> = (0..var.elem_count())
            .map(|i| 0.5 * (1.3 * i as f32 + 0.7 * k as f32 + 0.1).sin())
            .collect();
        var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
    let mut net = Net::from_model(&arch, io, &model, 2).unwrap();
    let x: Vec<f32> = (0..2 * 98).map(|i| (0.37 * i as f32).cos()).collect();
    net.gather_range(&x, &[2, 0], 0, 2);
    let (loss, _) = net.train_batch(Loss::CrossEntropy, false, 1.0);
    // torch: cross_entropy -> 1.359053611755371
    assert!((loss - 1.359_053_6).abs() < 1e-5, "loss {loss}");
    // torch, per parameter: |grad|_1 and grad[:3] (the first bias's gradient is ~0:
    // batch norm follows it).
    let want: [(f32, [f32; 3]); 10] = [
        (1.333_196_6, [-0.061_955_05, -0.102_018_6, -0.109_956_2]),
        (0.0, [0.0, 0.0, 0.0]),
        (0.885_597_6, [-0.184_633_27, 0.333_400_6, -0.367_563_7]),
        (0.955_484_5, [-0.496_299_15, 0.283_437_7, 0.175_747_6]),
        (1.771_954_8, [-1.007_274_9, -0.006_694_239, -0.088_999_99]),
        (2.000_715_3, [-1.000_357_6, 0.287_110_18, 0.713_247_4]),
        (2.996_567_7, [0.044_626_71, 0.054_694_95, -0.052_875_56]),
        (3.583_251_2, [0.074_587_87, 0.074_587_87, -0.067_209_73]),
        (5.243_674_3, [0.094_048_05, -0.322_485_63, 0.021_942_278]),
        (0.940_686_2, [-0.242_194_06, 0.470_343_1, -0.228_149_06]),
    ];
    let got = engine_grads(&mut net);
    assert_eq!(got.len(), want.len());
    for ((name, g), (l1, first)) in got.iter().zip(want) {
        let sum: f32 = g.iter().map(|v| v.abs()).sum();
        assert!(
            (sum - l1).abs() < 1e-4 * l1.max(1.0),
            "{name}: |g|_1 {sum} vs {l1}"
        );
        close(&g[..3], &first, name);
    }
    // torch: running_mean, running_var
    net.each_norm(&mut |_, bn| {
        close(
            &bn.running_mean,
            &[0.032_557_37, 0.050_421_92, -0.011_808_264],
            "running_mean",
        );
        close(
            &bn.running_var,
            &[1.035_621_4, 0.966_850_76, 1.035_403_6],
            "running_var",
        );
    });
}

/// A regression on the engine (the MLP, and a model file with layer norm and
/// dropout) with candle's numbers for each regression loss: predictions, loss and
/// every gradient.
#[test]
fn regression_matches_candle_autograd_for_every_loss() {
    let io = Io {
        features: 5,
        image: None,
        classes: 2,
    };
    let archs = [
        Arch::Mlp { hidden: vec![8, 6] },
        file(
            r#"[{"type":"linear","out":8},{"type":"layernorm"},{"type":"gelu"},
                {"type":"dropout","p":0.25},{"type":"linear"}]"#,
        ),
    ];
    let n = 9;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x: Vec<f32> = (0..n * 5).map(|_| rng.random_range(-1.5f32..1.5)).collect();
    let t: Vec<f32> = (0..n * 2).map(|_| rng.random_range(-2f32..2.0)).collect();
    let xt = Tensor::from_vec(x.clone(), (n, 5), &Device::Cpu).unwrap();
    let tt = Tensor::from_vec(t.clone(), (n, 2), &Device::Cpu).unwrap();
    for arch in archs {
        for (loss, delta) in [(Loss::Mse, 1.0), (Loss::Mae, 1.0), (Loss::Huber, 0.4)] {
            let model = model::build(&arch, io, 3, &Device::Cpu).unwrap();
            let mut net = Net::from_model(&arch, io, &model, 1).unwrap();
            net.regression(delta as f32);
            let pred = model.forward(&xt, true).unwrap();
            let l = rudder_nn::loss::regress(loss, &pred, &tt, delta).unwrap();
            let grads = l.backward().unwrap();
            net.gather_values_range(&x, &t, 0, n);
            let (engine_loss, correct) = net.train_batch(loss, false, 1.0);
            assert_eq!(correct, 0);
            close(
                net.logits(),
                &pred.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "predictions",
            );
            let want = l.to_scalar::<f32>().unwrap() as f64;
            assert!(
                (engine_loss - want).abs() < 1e-5 * want.max(1.0),
                "{loss:?} loss"
            );
            let named: std::collections::HashMap<String, candle_core::Var> =
                model.params().into_iter().collect();
            for (name, g) in engine_grads(&mut net) {
                let want = grads.get(named[&name].as_tensor()).unwrap();
                let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                close(&g, &want, &format!("{arch:?} {loss:?} grad {name}"));
            }
            // Evaluation gives the same loss without dropout's masks.
            let eval =
                rudder_nn::loss::regress(loss, &model.forward(&xt, false).unwrap(), &tt, delta);
            let want = eval.unwrap().to_scalar::<f32>().unwrap() as f64;
            net.gather_values_range(&x, &t, 0, n);
            let (engine_eval, _) = net.eval_batch(loss);
            assert!(
                (engine_eval - want).abs() < 1e-5 * want.max(1.0),
                "{loss:?} eval"
            );
        }
    }
}
