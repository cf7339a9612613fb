//! Optimizers and learning-rate schedules, with PyTorch's update rules.
//!
//! candle-nn's SGD has no momentum, so both optimizers are written here; the tests hold them
//! against trajectories recorded with `torch.optim` (`scripts/torch_optim_reference.py`).

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// Which optimizer, with its hyper-parameters (the learning rate comes from the schedule).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// `torch.optim.SGD(momentum, nesterov, weight_decay)` (dampening 0).
    Sgd {
        /// Momentum factor (0 for plain SGD).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
    },
    /// `torch.optim.AdamW`.
    AdamW {
        /// Coefficients of the running averages.
        betas: (f64, f64),
        /// Added to the denominator.
        eps: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
}

/// An optimizer over a fixed list of variables.
pub struct Optimizer {
    config: OptimizerConfig,
    vars: Vec<Var>,
    /// Momentum buffers (SGD) or first moments (AdamW).
    first: Vec<Option<Tensor>>,
    /// Second moments (AdamW).
    second: Vec<Option<Tensor>>,
    steps: u64,
}

impl Optimizer {
    /// An optimizer for `vars`.
    pub fn new(config: OptimizerConfig, vars: Vec<Var>) -> Self {
        let n = vars.len();
        Optimizer {
            config,
            vars,
            first: vec![None; n],
            second: vec![None; n],
            steps: 0,
        }
    }

    /// One update with learning rate `lr`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.steps += 1;
        for i in 0..self.vars.len() {
            let var = &self.vars[i];
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Detached, so that the optimizer state does not keep this step's graph alive.
            let (grad, p) = (&grad.detach(), &var.as_tensor().detach());
            let updated = match self.config {
                OptimizerConfig::Sgd {
                    momentum,
                    nesterov,
                    weight_decay,
                } => {
                    let mut g = if weight_decay != 0.0 {
                        (grad + (p * weight_decay)?)?
                    } else {
                        grad.clone()
                    };
                    if momentum != 0.0 {
                        let buf = match &self.first[i] {
                            Some(b) => ((b * momentum)? + &g)?,
                            None => g.clone(),
                        };
                        g = if nesterov {
                            (g + (&buf * momentum)?)?
                        } else {
                            buf.clone()
                        };
                        self.first[i] = Some(buf);
                    }
                    (p - (g * lr)?)?
                }
                OptimizerConfig::AdamW {
                    betas: (b1, b2),
                    eps,
                    weight_decay,
                } => {
                    let decayed = (p * (1.0 - lr * weight_decay))?;
                    let m = match &self.first[i] {
                        Some(m) => ((m * b1)? + (grad * (1.0 - b1))?)?,
                        None => (grad * (1.0 - b1))?,
                    };
                    let v = match &self.second[i] {
                        Some(v) => ((v * b2)? + (grad.sqr()? * (1.0 - b2))?)?,
                        None => (grad.sqr()? * (1.0 - b2))?,
                    };
                    let t = self.steps as i32;
                    let m_hat = (&m / (1.0 - b1.powi(t)))?;
                    let v_hat = (&v / (1.0 - b2.powi(t)))?;
                    self.first[i] = Some(m);
                    self.second[i] = Some(v);
                    (decayed - ((m_hat / (v_hat.sqrt()? + eps)?)? * lr)?)?
                }
            };
            var.set(&updated.detach())?;
        }
        Ok(())
    }
}

/// A learning-rate schedule over a known number of steps (PyTorch's formulas, per step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `CosineAnnealingLR` to 0 over the run.
    Cosine,
    /// `OneCycleLR` (cosine annealing, 30% warm-up, start at max/25, end at max/25/1e4).
    OneCycle,
}

/// The learning rate at `step` (0-based) of `total` steps: `warmup` linear warm-up steps from
/// `base / warmup` to `base`, then the schedule over the remaining steps.
pub fn learning_rate(
    schedule: Schedule,
    base: f64,
    step: usize,
    total: usize,
    warmup: usize,
) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let (t, n) = (
        (step - warmup) as f64,
        total.saturating_sub(warmup).max(1) as f64,
    );
    let cos = |from: f64, to: f64, frac: f64| {
        to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
    };
    match schedule {
        Schedule::Constant => base,
        Schedule::Cosine => cos(base, 0.0, t / n),
        Schedule::OneCycle => {
            let (start, end) = (base / 25.0, base / 25.0 / 1e4);
            let up = (0.3 * n - 1.0).max(1.0);
            if t <= up {
                cos(start, base, t / up)
            } else {
                cos(base, end, ((t - up) / ((n - 1.0) - up).max(1.0)).min(1.0))
            }
        }
    }
}
