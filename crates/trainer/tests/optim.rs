//! Optimizers and schedules against trajectories recorded with torch.optim
//! (`scripts/torch_optim_reference.py`).

use candle_core::{DType, Device, Tensor, Var};
use trainer::optim::{learning_rate, Optimizer, OptimizerConfig, Schedule};

#[derive(serde::Deserialize)]
struct Fixture {
    p0: Vec<f64>,
    w: Vec<f64>,
    b: Vec<f64>,
    trajectories: std::collections::HashMap<String, Vec<Vec<f64>>>,
    schedules: std::collections::HashMap<String, Vec<f64>>,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/optim.json")).unwrap()
}

fn run(config: OptimizerConfig, lr: f64, steps: usize) -> Vec<Vec<f64>> {
    let f = fixture();
    let dev = Device::Cpu;
    let p = Var::from_tensor(&Tensor::new(f.p0.as_slice(), &dev).unwrap()).unwrap();
    let w = Tensor::new(f.w.as_slice(), &dev).unwrap();
    let b = Tensor::new(f.b.as_slice(), &dev).unwrap();
    let mut opt = Optimizer::new(config, vec![p.clone()]);
    let mut out = Vec::new();
    for _ in 0..steps {
        let x = p.as_tensor();
        let loss = ((&w * x.sqr().unwrap()).unwrap() + (&b * x).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let loss = (loss + (x.sin().unwrap().sum_all().unwrap() * 0.1).unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&grads, lr).unwrap();
        assert_eq!(p.dtype(), DType::F64);
        out.push(p.as_tensor().to_vec1::<f64>().unwrap());
    }
    out
}

fn assert_close(name: &str, ours: &[Vec<f64>], torch: &[Vec<f64>]) {
    assert_eq!(ours.len(), torch.len());
    for (step, (a, b)) in ours.iter().zip(torch).enumerate() {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() < 1e-9,
                "{name} step {step}: ours {a:?} torch {b:?}"
            );
        }
    }
}

#[test]
fn sgd_matches_torch() {
    let t = fixture().trajectories;
    let plain = OptimizerConfig::Sgd {
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    };
    assert_close("sgd", &run(plain, 0.1, 6), &t["sgd"]);
    let momentum = OptimizerConfig::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
    };
    assert_close(
        "sgd_momentum_wd",
        &run(momentum, 0.05, 6),
        &t["sgd_momentum_wd"],
    );
    let nesterov = OptimizerConfig::Sgd {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-3,
    };
    assert_close("sgd_nesterov", &run(nesterov, 0.05, 6), &t["sgd_nesterov"]);
}

#[test]
fn adamw_matches_torch() {
    let t = fixture().trajectories;
    let adamw = OptimizerConfig::AdamW {
        betas: (0.9, 0.999),
        eps: 1e-8,
        weight_decay: 0.01,
    };
    assert_close("adamw", &run(adamw, 0.1, 6), &t["adamw"]);
}

#[test]
fn schedules_match_torch() {
    let s = fixture().schedules;
    for (name, schedule, base) in [
        ("cosine", Schedule::Cosine, 0.1),
        ("one_cycle", Schedule::OneCycle, 0.1),
    ] {
        let torch = &s[name];
        for (step, want) in torch.iter().enumerate() {
            let got = learning_rate(schedule, base, step, torch.len(), 0);
            assert!(
                (got - want).abs() < 1e-12,
                "{name} step {step}: {got} vs {want}"
            );
        }
    }
    // Linear warm-up, then the schedule over the remaining steps.
    assert!((learning_rate(Schedule::Cosine, 0.1, 0, 10, 4) - 0.025).abs() < 1e-12);
    assert!((learning_rate(Schedule::Cosine, 0.1, 3, 10, 4) - 0.1).abs() < 1e-12);
    assert!((learning_rate(Schedule::Cosine, 0.1, 4, 10, 4) - 0.1).abs() < 1e-12);
    assert_eq!(learning_rate(Schedule::Constant, 0.3, 7, 10, 0), 0.3);
}
