//! Several steps against torch.optim, with the LR halved between steps 2 and 3.
//!
//! Reference (PyTorch 2.x):
//!   p = nn.Parameter(torch.tensor([0.5, -1.0, 2.0, 0.25])); opt = make([p])
//!   for t in range(4):
//!       if t == 2: opt.param_groups[0]['lr'] *= 0.5
//!       p.grad = p.detach() ** 2 - 0.3 * t; opt.step()

use candle_core::{Device, Tensor, Var};

use super::*;

fn run(kind: OptimizerKind, h: Hyper, fused: bool) -> Vec<f32> {
    let p =
        Var::from_tensor(&Tensor::new(&[0.5f32, -1.0, 2.0, 0.25], &Device::Cpu).unwrap()).unwrap();
    let params = vec![("p".to_string(), p.clone())];
    let mut opt: Box<dyn Optimizer> = match kind {
        OptimizerKind::Sgd => {
            let mut o = Sgd::new(params, h).unwrap();
            o.fused = fused;
            Box::new(o)
        }
        OptimizerKind::Adamw => {
            let mut o = AdamW::new(params, h).unwrap();
            o.fused = fused;
            Box::new(o)
        }
    };
    for t in 0..4 {
        if t == 2 {
            let mut h = opt.hyper();
            h.lr *= 0.5;
            opt.set_hyper(h);
        }
        let g = (p.as_tensor().sqr().unwrap() - 0.3 * t as f64).unwrap();
        opt.step(&[g]).unwrap();
    }
    assert_eq!(opt.steps(), 4);
    p.as_tensor().to_vec1().unwrap()
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

fn check(kind: OptimizerKind, h: Hyper, want: [f32; 4]) {
    for fused in [true, false] {
        let got = run(kind, h, fused);
        for (a, b) in got.iter().zip(want) {
            assert!(
                (a - b).abs() <= 2e-6 * b.abs().max(1.0),
                "{kind:?} fused={fused}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn sgd_matches_torch() {
    // SGD(lr=0.1, weight_decay=0.01)
    check(
        OptimizerKind::Sgd,
        hyper(0.1, 0.0, false),
        [0.531_943_44, -1.258_610_1, 1.265_385_3, 0.334_162_98],
    );
}

#[test]
fn sgd_momentum_matches_torch() {
    // SGD(lr=0.1, momentum=0.9, weight_decay=0.01)
    check(
        OptimizerKind::Sgd,
        hyper(0.1, 0.9, false),
        [0.515_209_5, -1.581_125_7, 0.483_642_16, 0.367_574_93],
    );
}

#[test]
fn sgd_nesterov_matches_torch() {
    // SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    check(
        OptimizerKind::Sgd,
        hyper(0.1, 0.9, true),
        [0.554_283_5, -2.032_424, 0.381_793_2, 0.437_214_6],
    );
}

#[test]
fn adamw_matches_torch() {
    // AdamW(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    check(
        OptimizerKind::Adamw,
        hyper(0.01, 0.9, false),
        [0.489_739_03, -1.028_221_1, 1.969_573_3, 0.253_427_3],
    );
}

#[test]
fn state_is_named_per_parameter() {
    let p = Var::from_tensor(&Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    let mut o = AdamW::new(vec![("fc1.weight".into(), p)], hyper(0.01, 0.9, false)).unwrap();
    o.step(&[Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap()])
        .unwrap();
    let names: Vec<String> = o.state().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["fc1.weight.exp_avg", "fc1.weight.exp_avg_sq"]);
}
