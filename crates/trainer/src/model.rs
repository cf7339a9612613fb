//! Candle networks built from the architecture IR.
//!
//! [`Network::build`] checks the module statically (every width resolved, every shape known),
//! then allocates parameters with PyTorch's default initialisation (weights and biases of
//! convolutions and linear layers uniform in `±1/sqrt(fan_in)`, BatchNorm scale 1 and shift 0,
//! running mean 0 and variance 1), drawn from a seeded generator so a build is reproducible.

use std::sync::atomic::{AtomicI64, Ordering};

use arch_space::lang::{
    check, state_dict, Activation, Analysis, CheckError, InputSpec, Join, Layer, Module, Squeeze,
    StateEntry,
};
use candle_core::{backprop::GradStore, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ops::{self, ConvGeometry, Kernels, PoolGeometry};

mod state;
mod tape;

/// Why a module could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The static check failed (shapes, output, budget).
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The module uses something the trainer cannot run (named in the message).
    #[error("not supported by the trainer: {0}")]
    Unsupported(String),
    /// The tensor library failed while allocating.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

enum Block {
    Conv {
        weight: Var,
        bias: Option<Var>,
        geometry: ConvGeometry,
    },
    BatchNorm {
        weight: Option<Var>,
        bias: Option<Var>,
        stats: RunningStats,
        eps: f64,
        momentum: f64,
        track: bool,
    },
    Linear {
        weight: Var,
        bias: Option<Var>,
    },
    MaxPool(PoolGeometry),
    AvgPool(PoolGeometry, bool),
    AdaptiveAvgPool([usize; 2]),
    Dropout {
        p: f64,
        channels: bool,
    },
    Flatten {
        start: i64,
        end: i64,
    },
    Activation(Activation),
    Identity,
    Zero,
    SqueezeExcitation {
        reduce: (Var, Var),
        expand: (Var, Var),
    },
    Sequential(Vec<Block>),
    Parallel(Join, Vec<Block>),
    /// Nodes in order; each edge reads value 0 (the input) or value `i + 1` (node `i`).
    Graph(Vec<(Join, Vec<(usize, Block)>)>),
}

/// Per-forward state: training or evaluation, and the generator for dropout masks.
pub struct Mode<'a> {
    /// Whether BatchNorm uses batch statistics (and updates running ones) and dropout is active.
    pub train: bool,
    /// Source of dropout masks.
    pub rng: &'a mut ChaCha8Rng,
}

/// A trainable network.
pub struct Network {
    root: Block,
    params: Vec<Var>,
    device: Device,
    kernels: Kernels,
    module: Module,
    input: InputSpec,
    state: Vec<StateEntry>,
}

struct Builder<'a> {
    rng: ChaCha8Rng,
    device: &'a Device,
    params: Vec<Var>,
}

impl Builder<'_> {
    fn uniform(&mut self, shape: &[usize], fan_in: usize) -> Result<Var> {
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect();
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, self.device)?)?;
        self.params.push(var.clone());
        Ok(var)
    }

    fn constant(&mut self, value: f32, n: usize, trainable: bool) -> Result<Var> {
        let var = Var::from_tensor(&Tensor::full(value, n, self.device)?)?;
        if trainable {
            self.params.push(var.clone());
        }
        Ok(var)
    }

    fn block(&mut self, module: &Module) -> std::result::Result<Block, BuildError> {
        Ok(match module {
            Module::Layer(layer) => self.layer(layer)?,
            Module::Sequential(items) => Block::Sequential(
                items
                    .iter()
                    .map(|m| self.block(m))
                    .collect::<std::result::Result<_, _>>()?,
            ),
            Module::Parallel { join, branches } => Block::Parallel(
                *join,
                branches
                    .iter()
                    .map(|m| self.block(m))
                    .collect::<std::result::Result<_, _>>()?,
            ),
            Module::Graph(graph) => {
                let mut names = vec![arch_space::lang::GRAPH_INPUT.to_string()];
                let mut nodes = Vec::new();
                for node in &graph.nodes {
                    let mut edges = Vec::new();
                    for edge in &node.edges {
                        let source =
                            names.iter().position(|n| *n == edge.from).ok_or_else(|| {
                                BuildError::Unsupported(format!(
                                    "edge from unknown node `{}`",
                                    edge.from
                                ))
                            })?;
                        edges.push((source, self.block(&edge.module)?));
                    }
                    names.push(node.name.clone());
                    nodes.push((node.join, edges));
                }
                Block::Graph(nodes)
            }
        })
    }

    fn layer(&mut self, layer: &Layer) -> std::result::Result<Block, BuildError> {
        let unresolved = || {
            BuildError::Unsupported(
                "a lazy width was not resolved (build from a checked module)".into(),
            )
        };
        Ok(match layer {
            Layer::Conv2d(c) => {
                if c.dilation[0] != c.dilation[1] {
                    return Err(BuildError::Unsupported(format!(
                        "different dilations {:?}",
                        c.dilation
                    )));
                }
                let cin = c.in_channels.ok_or_else(unresolved)?;
                let fan_in = cin / c.groups * c.kernel_size[0] * c.kernel_size[1];
                let weight = self.uniform(
                    &[
                        c.out_channels,
                        cin / c.groups,
                        c.kernel_size[0],
                        c.kernel_size[1],
                    ],
                    fan_in,
                )?;
                let bias = if c.bias {
                    Some(self.uniform(&[c.out_channels], fan_in)?)
                } else {
                    None
                };
                let geometry = ConvGeometry {
                    kernel: c.kernel_size,
                    stride: c.stride,
                    padding: c.padding,
                    dilation: c.dilation[0],
                    groups: c.groups,
                };
                Block::Conv {
                    weight,
                    bias,
                    geometry,
                }
            }
            Layer::BatchNorm2d(bn) => {
                let n = bn.num_features.ok_or_else(unresolved)?;
                let (weight, bias) = if bn.affine {
                    (
                        Some(self.constant(1.0, n, true)?),
                        Some(self.constant(0.0, n, true)?),
                    )
                } else {
                    (None, None)
                };
                Block::BatchNorm {
                    weight,
                    bias,
                    stats: RunningStats {
                        mean: self.constant(0.0, n, false)?,
                        var: self.constant(1.0, n, false)?,
                        batches: AtomicI64::new(0),
                    },
                    eps: bn.eps,
                    momentum: bn.momentum,
                    track: bn.track_running_stats,
                }
            }
            Layer::Linear(l) => {
                let n = l.in_features.ok_or_else(unresolved)?;
                let weight = self.uniform(&[l.out_features, n], n)?;
                let bias = if l.bias {
                    Some(self.uniform(&[l.out_features], n)?)
                } else {
                    None
                };
                Block::Linear { weight, bias }
            }
            Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
                let geometry = PoolGeometry {
                    kernel: p.kernel_size,
                    stride: p.stride,
                    padding: p.padding,
                    ceil_mode: p.ceil_mode,
                };
                if matches!(layer, Layer::MaxPool2d(_)) {
                    if p.dilation != [1, 1] {
                        return Err(BuildError::Unsupported("max pooling with dilation".into()));
                    }
                    Block::MaxPool(geometry)
                } else {
                    Block::AvgPool(geometry, p.count_include_pad)
                }
            }
            Layer::AdaptiveAvgPool2d { output_size } => Block::AdaptiveAvgPool(*output_size),
            Layer::Dropout { p, channels } => Block::Dropout {
                p: *p,
                channels: *channels,
            },
            Layer::Flatten { start_dim, end_dim } => Block::Flatten {
                start: *start_dim,
                end: *end_dim,
            },
            Layer::Activation(a) => Block::Activation(a.clone()),
            Layer::Identity => Block::Identity,
            Layer::Zero => Block::Zero,
            Layer::SqueezeExcitation(se) => {
                let c = se.input_channels.ok_or_else(unresolved)?;
                let Squeeze::Channels(s) = se.squeeze else {
                    return Err(unresolved());
                };
                let reduce = (self.uniform(&[s, c, 1, 1], c)?, self.uniform(&[s], c)?);
                let expand = (self.uniform(&[c, s, 1, 1], s)?, self.uniform(&[c], s)?);
                Block::SqueezeExcitation { reduce, expand }
            }
        })
    }
}

fn join(join: Join, outs: Vec<Tensor>) -> Result<Tensor> {
    match join {
        Join::Concat if outs.len() > 1 => Tensor::cat(&outs, 1),
        _ => {
            let mut it = outs.into_iter();
            let first = it
                .next()
                .ok_or_else(|| candle_core::Error::Msg("a join with no inputs".into()))?;
            it.try_fold(first, |acc, t| acc + t)
        }
    }
}

fn dropout(x: &Tensor, p: f64, channels: bool, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let dims = x.dims();
    let mask_shape: Vec<usize> = if channels && dims.len() == 4 {
        vec![dims[0], dims[1], 1, 1]
    } else {
        dims.to_vec()
    };
    let n: usize = mask_shape.iter().product();
    let scale = if p < 1.0 {
        (1.0 / (1.0 - p)) as f32
    } else {
        0.0
    };
    let mask: Vec<f32> = (0..n)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { scale })
        .collect();
    x.broadcast_mul(&Tensor::from_vec(mask, mask_shape, x.device())?)
}

/// BatchNorm's running statistics and the number of training batches they have seen.
struct RunningStats {
    mean: Var,
    var: Var,
    batches: AtomicI64,
}

impl RunningStats {
    /// Folds a training batch's statistics in as PyTorch does (`running = (1 - momentum) *
    /// running + momentum * batch`) and counts the batch (`num_batches_tracked`).
    fn update(&self, batch_mean: &Tensor, batch_var: &Tensor, momentum: f64) -> Result<()> {
        for (running, batch) in [(&self.mean, batch_mean), (&self.var, batch_var)] {
            running.set(
                &((running.as_tensor() * (1.0 - momentum))? + (batch.detach() * momentum)?)?,
            )?;
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A parameter's tensor: tracked for gradients in training, detached in evaluation so that an
/// evaluation forward does not keep its whole graph alive.
fn tensor(var: &Var, track: bool) -> Tensor {
    if track {
        var.as_tensor().clone()
    } else {
        var.as_tensor().detach()
    }
}

fn optional(var: &Option<Var>, track: bool) -> Option<Tensor> {
    var.as_ref().map(|v| tensor(v, track))
}

impl Block {
    fn forward(&self, x: &Tensor, mode: &mut Mode<'_>, k: Kernels) -> Result<Tensor> {
        let track = mode.train;
        match self {
            Block::Conv {
                weight,
                bias,
                geometry,
            } => k.conv2d(
                x,
                &tensor(weight, track),
                optional(bias, track).as_ref(),
                geometry,
            ),
            Block::BatchNorm {
                weight,
                bias,
                stats,
                eps,
                momentum,
                track: keeps_stats,
            } => {
                let (w, b) = (optional(weight, track), optional(bias, track));
                let (w, b) = (w.as_ref(), b.as_ref());
                if mode.train || !keeps_stats {
                    let (y, batch_mean, batch_var) = k.batch_norm_train(x, w, b, *eps)?;
                    if mode.train && *keeps_stats {
                        stats.update(&batch_mean, &batch_var, *momentum)?;
                    }
                    Ok(y)
                } else {
                    let (mean, var) = (tensor(&stats.mean, track), tensor(&stats.var, track));
                    k.batch_norm_eval(x, &mean, &var, w, b, *eps)
                }
            }
            Block::Linear { weight, bias } => {
                k.linear(x, &tensor(weight, track), optional(bias, track).as_ref())
            }
            Block::MaxPool(g) => k.max_pool2d(x, g),
            Block::AvgPool(g, count_pad) => k.avg_pool2d(x, g, *count_pad),
            Block::AdaptiveAvgPool(size) => k.adaptive_avg_pool2d(x, *size),
            Block::Dropout { p, channels } if mode.train => dropout(x, *p, *channels, mode.rng),
            Block::Dropout { .. } | Block::Identity => Ok(x.clone()),
            Block::Flatten { start, end } => {
                let rank = x.rank() as i64;
                let norm = |d: i64| (if d < 0 { d + rank } else { d }) as usize;
                x.flatten(norm(*start), norm(*end))
            }
            Block::Activation(a) => k.activation(x, a),
            Block::Zero => x.zeros_like(),
            Block::SqueezeExcitation { reduce, expand } => {
                let (b, c, _, _) = x.dims4()?;
                let pooled = x.mean_keepdim((2, 3))?.reshape((b, c))?;
                let flat = |w: &Var| tensor(w, track).flatten_from(1);
                let s = k
                    .linear(&pooled, &flat(&reduce.0)?, Some(&tensor(&reduce.1, track)))?
                    .relu()?;
                let scale = candle_nn::ops::sigmoid(&k.linear(
                    &s,
                    &flat(&expand.0)?,
                    Some(&tensor(&expand.1, track)),
                )?)?;
                x.broadcast_mul(&scale.reshape((b, c, 1, 1))?)
            }
            Block::Sequential(items) => items
                .iter()
                .try_fold(x.clone(), |h, b| b.forward(&h, mode, k)),
            Block::Parallel(j, branches) => {
                let outs = branches
                    .iter()
                    .map(|b| b.forward(x, mode, k))
                    .collect::<Result<Vec<_>>>()?;
                join(*j, outs)
            }
            Block::Graph(nodes) => {
                let mut values = vec![x.clone()];
                for (j, edges) in nodes {
                    let outs = edges
                        .iter()
                        .map(|(src, b)| b.forward(&values[*src], mode, k))
                        .collect::<Result<Vec<_>>>()?;
                    values.push(join(*j, outs)?);
                }
                values
                    .pop()
                    .ok_or_else(|| candle_core::Error::Msg("an empty graph".into()))
            }
        }
    }
}

impl Network {
    /// Checks `module` for `input` and builds it with parameters drawn from `seed`.
    pub fn build(
        module: &Module,
        input: &InputSpec,
        seed: u64,
        device: &Device,
    ) -> std::result::Result<(Network, Analysis), BuildError> {
        let analysis = check(module, input)?;
        let mut builder = Builder {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
            params: Vec::new(),
        };
        let root = builder.block(&analysis.resolved)?;
        let state = state_dict(&analysis.resolved, input)?;
        state::verify(&root, &state)?;
        Ok((
            Network {
                root,
                params: builder.params,
                device: device.clone(),
                kernels: Kernels::default(),
                module: analysis.resolved.clone(),
                input: *input,
                state,
            },
            analysis,
        ))
    }

    /// Logits `[B, classes]` of a batch `[B, C, H, W]`.
    pub fn forward(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        self.root.forward(x, mode, self.kernels)
    }

    /// The mean cross-entropy of a training batch against `labels` and the gradients of the
    /// parameters.
    ///
    /// With native kernels on the CPU the step runs on the network's own tape (see
    /// `model/tape.rs`), otherwise through candle's autograd; both give the same gradients.
    pub fn loss_and_gradients(
        &self,
        x: &Tensor,
        labels: &Tensor,
        mode: &mut Mode<'_>,
    ) -> Result<(f32, GradStore)> {
        if mode.train && self.kernels.native_for(x) {
            let mut tape = tape::Tape::new();
            let (logits, id) = self.root.forward_traced(x, tape::INPUT, mode, &mut tape)?;
            let (loss, dlogits) = ops::cross_entropy_and_gradient(&logits, labels)?;
            Ok((loss, tape.backward(id, dlogits)?))
        } else {
            let loss = ops::cross_entropy(&self.forward(x, mode)?, labels)?;
            Ok((loss.to_scalar::<f32>()?, loss.backward()?))
        }
    }

    /// The same network running on `kernels` (default [`Kernels::Native`]).
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// The kernels the network runs on.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The trainable parameters, in build order.
    pub fn params(&self) -> &[Var] {
        &self.params
    }

    /// Number of trainable scalars.
    pub fn param_count(&self) -> usize {
        self.params.iter().map(|v| v.elem_count()).sum()
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The architecture, every width resolved.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The input the network was built for.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }
}
