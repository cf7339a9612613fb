//! The network's state dict under PyTorch's names ([`arch_space::lang::state_dict`]'s scheme):
//! parameters, BatchNorm running statistics and `num_batches_tracked`, saved to and loaded from
//! safetensors files that `model.py`'s `load_state_dict(..., strict=True)` accepts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use arch_space::lang::{StateEntry, StateKind};
use candle_core::{DType, Device, Tensor, Var};

use super::{Block, BuildError, Network};
use crate::TrainError;

/// Where one state-dict entry lives in the blocks.
enum Slot<'a> {
    /// A float32 parameter or running statistic.
    Float(&'a Var),
    /// BatchNorm's batch counter.
    Counter(&'a AtomicI64),
}

impl Block {
    /// The block's slots in PyTorch's `state_dict()` order.
    fn slots<'a>(&'a self, out: &mut Vec<Slot<'a>>) {
        let floats = |vars: &[&'a Option<Var>], out: &mut Vec<Slot<'a>>| {
            out.extend(vars.iter().filter_map(|v| v.as_ref()).map(Slot::Float));
        };
        match self {
            Block::Conv { weight, bias, .. } | Block::Linear { weight, bias } => {
                out.push(Slot::Float(weight));
                floats(&[bias], out);
            }
            Block::BatchNorm {
                weight,
                bias,
                stats,
                track,
                ..
            } => {
                floats(&[weight, bias], out);
                if *track {
                    out.extend([
                        Slot::Float(&stats.mean),
                        Slot::Float(&stats.var),
                        Slot::Counter(&stats.batches),
                    ]);
                }
            }
            Block::SqueezeExcitation { reduce, expand } => {
                out.extend([&reduce.0, &reduce.1, &expand.0, &expand.1].map(Slot::Float));
            }
            Block::Sequential(blocks) | Block::Parallel(_, blocks) => {
                blocks.iter().for_each(|b| b.slots(out));
            }
            Block::Graph(nodes) => nodes
                .iter()
                .flat_map(|(_, edges)| edges)
                .for_each(|(_, b)| b.slots(out)),
            Block::MaxPool(_)
            | Block::AvgPool(..)
            | Block::AdaptiveAvgPool(_)
            | Block::Dropout { .. }
            | Block::Flatten { .. }
            | Block::Activation(_)
            | Block::Identity
            | Block::Zero => {}
        }
    }
}

impl Slot<'_> {
    fn matches(&self, entry: &StateEntry) -> bool {
        match self {
            Slot::Float(v) => entry.kind != StateKind::Counter && v.dims() == entry.shape,
            Slot::Counter(_) => entry.kind == StateKind::Counter && entry.shape.is_empty(),
        }
    }

    fn tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        match self {
            Slot::Float(v) => Ok(v.as_tensor().detach()),
            Slot::Counter(c) => Tensor::new(c.load(Ordering::Relaxed), device),
        }
    }
}

/// Checks that the blocks hold exactly `entries`, in order (a mismatch is a bug of the scheme).
pub(super) fn verify(root: &Block, entries: &[StateEntry]) -> Result<(), BuildError> {
    let mut slots = Vec::new();
    root.slots(&mut slots);
    let bad = (slots.len() != entries.len())
        .then(|| format!("{} tensors for {} names", slots.len(), entries.len()))
        .or_else(|| {
            slots
                .iter()
                .zip(entries)
                .find(|(s, e)| !s.matches(e))
                .map(|(_, e)| format!("`{}` has another shape or kind", e.name))
        });
    match bad {
        Some(why) => Err(BuildError::Unsupported(format!(
            "state dict mismatch: {why}"
        ))),
        None => Ok(()),
    }
}

impl Network {
    /// The state-dict entries (names, shapes, kinds) in PyTorch's order.
    pub fn state_entries(&self) -> &[StateEntry] {
        &self.state
    }

    /// Every state-dict entry with its current value: float32 tensors, and int64 scalars for
    /// `num_batches_tracked`, as PyTorch's `state_dict()` holds them.
    pub fn state_dict(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut slots = Vec::new();
        self.root.slots(&mut slots);
        self.state
            .iter()
            .zip(&slots)
            .map(|(e, s)| Ok((e.name.clone(), s.tensor(&self.device)?)))
            .collect()
    }

    /// Writes [`Network::state_dict`] as a safetensors file.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), TrainError> {
        let tensors: HashMap<String, Tensor> = self.state_dict()?.into_iter().collect();
        candle_core::safetensors::save(&tensors, path).map_err(|e| state_error(path, e))
    }

    /// Loads a safetensors file written by [`Network::save_safetensors`] (or by PyTorch from
    /// the same `model.py`): every name must be present with its shape and no other, as
    /// PyTorch's `load_state_dict(strict=True)` demands. Nothing changes on an error.
    pub fn load_safetensors(&self, path: &Path) -> Result<(), TrainError> {
        let mut tensors =
            candle_core::safetensors::load(path, &self.device).map_err(|e| state_error(path, e))?;
        let mut slots = Vec::new();
        self.root.slots(&mut slots);
        let mut values = Vec::with_capacity(slots.len());
        for (entry, slot) in self.state.iter().zip(&slots) {
            let tensor = tensors
                .remove(&entry.name)
                .ok_or_else(|| state_error(path, format!("`{}` is missing", entry.name)))?;
            let dtype = match slot {
                Slot::Float(_) => DType::F32,
                Slot::Counter(_) => DType::I64,
            };
            if tensor.dims() != entry.shape || tensor.dtype() != dtype {
                return Err(state_error(
                    path,
                    format!(
                        "`{}` is {:?} {:?}, the network needs {dtype:?} {:?}",
                        entry.name,
                        tensor.dtype(),
                        tensor.dims(),
                        entry.shape
                    ),
                ));
            }
            values.push(tensor);
        }
        if let Some(extra) = tensors.keys().min() {
            return Err(state_error(
                path,
                format!("`{extra}` is not part of the network"),
            ));
        }
        for (slot, value) in slots.iter().zip(values) {
            match slot {
                Slot::Float(v) => v.set(&value)?,
                Slot::Counter(c) => c.store(value.to_scalar::<i64>()?, Ordering::Relaxed),
            }
        }
        Ok(())
    }
}

fn state_error(path: &Path, reason: impl ToString) -> TrainError {
    TrainError::State {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
