//! The training protocol: learning, determinism, and every failure as a status.

use candle_core::Device;
use trainer::data::synthetic::brightest_quadrant;
use trainer::train::{train_text, Splits, Status, TrainConfig};

const SMALL_CNN: &str = "Sequential(Conv2d(3, 8, 3, padding=1), BatchNorm2d(8), ReLU(), MaxPool2d(2), Conv2d(8, 16, 3, padding=1), ReLU(), AdaptiveAvgPool2d(1), Flatten(), Linear(16, 4))";

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 32,
        lr: 0.05,
        augment: false,
        ..TrainConfig::proxy()
    }
}

#[test]
fn a_small_cnn_learns_and_reports_everything() {
    let (train, val, test) = (
        brightest_quadrant(512, 1),
        brightest_quadrant(128, 2),
        brightest_quadrant(128, 3),
    );
    let splits = Splits {
        train: &train,
        val: &val,
        test: Some(&test),
    };
    let report = train_text(SMALL_CNN, splits, &config(), &Device::Cpu);
    assert_eq!(report.status, Status::Ok, "{:?}", report.error);
    assert!(report.val_acc.unwrap() > 0.9, "{report:?}");
    assert!(report.test_acc.unwrap() > 0.9, "{report:?}");
    assert_eq!(report.steps, 3 * 16);
    assert_eq!(report.loss_curve.len(), 5);
    assert!(report.loss_curve.last() < report.loss_curve.first());
    assert_eq!(
        report.params,
        Some(3 * 8 * 9 + 8 + 16 + 8 * 16 * 9 + 16 + 16 * 4 + 4)
    );
    assert!(report.images_per_second.unwrap() > 0.0);
    assert!(report.peak_rss_bytes > 0);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "ok");
    for key in ["val_acc", "test_acc", "params", "flops", "seconds", "error"] {
        assert!(json.get(key).is_some(), "{key}");
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let (train, val) = (brightest_quadrant(256, 4), brightest_quadrant(64, 5));
    let splits = Splits {
        train: &train,
        val: &val,
        test: None,
    };
    let mut cfg = config();
    cfg.augment = true;
    let arch = "Sequential(Conv2d(3, 8, 3, padding=1), BatchNorm2d(8), ReLU(), Dropout(0.2), AvgPool2d(3, 1, 1), Flatten(), Linear(512, 4))";
    let a = train_text(arch, splits, &cfg, &Device::Cpu);
    let b = train_text(arch, splits, &cfg, &Device::Cpu);
    assert_eq!(a.status, Status::Ok, "{:?}", a.error);
    assert_eq!(a.loss_curve, b.loss_curve);
    assert_eq!(a.val_acc, b.val_acc);
    cfg.seed = 1;
    let c = train_text(arch, splits, &cfg, &Device::Cpu);
    assert_ne!(a.loss_curve, c.loss_curve);
}

#[test]
fn failures_are_statuses_with_messages() {
    let (train, val) = (brightest_quadrant(64, 6), brightest_quadrant(16, 7));
    let splits = Splits {
        train: &train,
        val: &val,
        test: None,
    };
    let run = |arch: &str, cfg: &TrainConfig| train_text(arch, splits, cfg, &Device::Cpu);

    let r = run("Sequential(\n  Conv2d(3, 8, 3),\n  Relu(),\n)", &config());
    assert_eq!(r.status, Status::Parse);
    assert!(
        r.error.as_deref().unwrap().starts_with("line 3, column 3"),
        "{r:?}"
    );

    let r = run(
        "Sequential(\n  Conv2d(3, 8, 3),\n  BatchNorm2d(16),\n  Flatten(), LazyLinear(4))",
        &config(),
    );
    assert_eq!(r.status, Status::Shape);
    assert!(
        r.error.as_deref().unwrap().starts_with("line 3, column 3"),
        "{r:?}"
    );

    let r = run(
        "Sequential(Conv2d(3, 8, 3), Flatten(), LazyLinear(10))",
        &config(),
    );
    assert_eq!(r.status, Status::Shape);
    assert!(r.error.as_deref().unwrap().contains("needs [4]"), "{r:?}");

    let r = run(
        "Sequential(Conv2d(3, 4, 3, dilation=(1, 2)), Flatten(), LazyLinear(4))",
        &config(),
    );
    assert_eq!(r.status, Status::Unsupported, "{r:?}");

    let mut diverging = config();
    diverging.lr = 1e30;
    let r = run(SMALL_CNN, &diverging);
    assert_eq!(r.status, Status::Divergence, "{r:?}");
    assert!(
        r.error.as_deref().unwrap().contains("the loss became"),
        "{r:?}"
    );
    assert!(r.val_acc.is_none());

    let mut no_time = config();
    no_time.time_limit_seconds = Some(0.0);
    let r = run(SMALL_CNN, &no_time);
    assert_eq!(r.status, Status::Timeout, "{r:?}");
    assert_eq!(r.steps, 0);

    let mut small_memory = config();
    small_memory.memory_limit_bytes = Some(1000);
    let r = run(SMALL_CNN, &small_memory);
    assert_eq!(r.status, Status::Oom, "{r:?}");
    assert!(r.params.is_none());
    assert_eq!(serde_json::to_value(&r).unwrap()["status"], "oom");
}
