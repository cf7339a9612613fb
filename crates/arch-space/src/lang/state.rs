//! The state-dict naming scheme of exported networks, shared by the PyTorch code generator
//! ([`super::to_pytorch`]) and the trainer's safetensors writer and reader.
//!
//! Names are those PyTorch gives the modules that `model.py` builds: the network is an
//! `nn.Sequential` of the top-level modules (the items of a root `Sequential`, or the root
//! itself); a `Sequential` child, a branch of `Add`/`Concat` and a graph node are numbered from
//! 0, and edge `e` of graph node `n` is `n.e`. A layer's tensors follow, in PyTorch's
//! `state_dict()` order: `weight`, `bias` (convolutions, linear layers, affine BatchNorm),
//! `running_mean`, `running_var`, `num_batches_tracked` (BatchNorm that tracks statistics) and
//! `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias` (squeeze-excitation, torchvision's names).
//! So `Sequential(Conv2d(3, 8, 3), Residual(Conv2d(8, 8, 3, padding=1), BatchNorm2d(8)), ...)`
//! has `0.weight`, `0.bias`, `1.0.0.weight`, `1.0.1.weight`, `1.0.1.running_mean`, ...

use serde::{Deserialize, Serialize};

use super::check::{check, squeeze_width, CheckError, InputSpec};
use super::ir::*;

/// What a state-dict entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// A trainable float32 parameter.
    Parameter,
    /// A float32 buffer (BatchNorm's running mean and variance).
    Buffer,
    /// An int64 scalar counter (BatchNorm's `num_batches_tracked`).
    Counter,
}

/// One entry of an exported network's state dict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    /// PyTorch's name, e.g. `3.0.1.running_mean`.
    pub name: String,
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// What the tensor holds.
    pub kind: StateKind,
}

/// The modules of the exported `nn.Sequential`: a root `Sequential`'s items, else the root.
pub(super) fn top_level(module: &Module) -> &[Module] {
    match module {
        Module::Sequential(items) => items,
        other => std::slice::from_ref(other),
    }
}

/// The name prefix of child `index` of the module named by `prefix`.
fn child(prefix: &str, index: usize) -> String {
    format!("{prefix}{index}.")
}

/// The state dict of `module` built for `input`, in PyTorch's order (see the module docs).
pub fn state_dict(module: &Module, input: &InputSpec) -> Result<Vec<StateEntry>, CheckError> {
    let resolved = check(module, input)?.resolved;
    let mut out = Vec::new();
    for (i, m) in top_level(&resolved).iter().enumerate() {
        walk(m, &child("", i), &mut out);
    }
    Ok(out)
}

fn walk(module: &Module, prefix: &str, out: &mut Vec<StateEntry>) {
    match module {
        Module::Layer(layer) => {
            out.extend(
                layer_state(layer)
                    .into_iter()
                    .map(|(name, shape, kind)| StateEntry {
                        name: format!("{prefix}{name}"),
                        shape,
                        kind,
                    }),
            );
        }
        Module::Sequential(items)
        | Module::Parallel {
            branches: items, ..
        } => {
            for (i, m) in items.iter().enumerate() {
                walk(m, &child(prefix, i), out);
            }
        }
        Module::Graph(graph) => {
            for (n, node) in graph.nodes.iter().enumerate() {
                let node_prefix = child(prefix, n);
                for (e, edge) in node.edges.iter().enumerate() {
                    walk(&edge.module, &child(&node_prefix, e), out);
                }
            }
        }
    }
}

/// The tensors of one resolved layer: name within the layer, shape, kind.
fn layer_state(layer: &Layer) -> Vec<(&'static str, Vec<usize>, StateKind)> {
    use StateKind::*;
    let width = |w: Option<usize>| w.unwrap_or(0);
    match layer {
        Layer::Conv2d(c) => {
            let cin = width(c.in_channels) / c.groups.max(1);
            let mut v = vec![(
                "weight",
                vec![c.out_channels, cin, c.kernel_size[0], c.kernel_size[1]],
                Parameter,
            )];
            if c.bias {
                v.push(("bias", vec![c.out_channels], Parameter));
            }
            v
        }
        Layer::BatchNorm2d(bn) => {
            let n = width(bn.num_features);
            let mut v = Vec::new();
            if bn.affine {
                v.extend([("weight", vec![n], Parameter), ("bias", vec![n], Parameter)]);
            }
            if bn.track_running_stats {
                v.extend([
                    ("running_mean", vec![n], Buffer),
                    ("running_var", vec![n], Buffer),
                    ("num_batches_tracked", vec![], Counter),
                ]);
            }
            v
        }
        Layer::Linear(l) => {
            let mut v = vec![(
                "weight",
                vec![l.out_features, width(l.in_features)],
                Parameter,
            )];
            if l.bias {
                v.push(("bias", vec![l.out_features], Parameter));
            }
            v
        }
        Layer::SqueezeExcitation(se) => {
            let c = width(se.input_channels);
            let s = squeeze_width(se.squeeze, c);
            vec![
                ("fc1.weight", vec![s, c, 1, 1], Parameter),
                ("fc1.bias", vec![s], Parameter),
                ("fc2.weight", vec![c, s, 1, 1], Parameter),
                ("fc2.bias", vec![c], Parameter),
            ]
        }
        Layer::MaxPool2d(_)
        | Layer::AvgPool2d(_)
        | Layer::AdaptiveAvgPool2d { .. }
        | Layer::Dropout { .. }
        | Layer::Flatten { .. }
        | Layer::Activation(_)
        | Layer::Identity
        | Layer::Zero => Vec::new(),
    }
}
