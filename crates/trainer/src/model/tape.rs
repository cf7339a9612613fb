//! A training step that records its own backward pass instead of building candle's graph.
//!
//! candle's backward pass gives every intermediate tensor a zero-filled gradient buffer and adds
//! each contribution into it (`GradStore::or_insert`, then `add`): two more passes over every
//! activation of the network, and more page faults, on top of the gradient work itself. The
//! tape records the forward pass in order: each op, the values (by id) and parameters it read,
//! and its backward pass. Walking it backwards hands each gradient straight to the op that made
//! the value, adds only where a value fed several ops (residual and cell joins), and frees each
//! record's saved tensors as soon as it has run.
//!
//! Native kernels run traced ([`cpu`]); joins, flattening and identities are bookkeeping; any
//! other layer (linear, squeeze-excitation, dropout, the other activations, adaptive pooling)
//! runs under candle's autograd on a copy of its input, and its record backpropagates through
//! that small graph.

use candle_core::{backprop::GradStore, Result, Shape, Tensor, Var};

use super::{join, optional, Block, Mode};
use crate::ops::cpu::{self, Rectifier, Traced};
use crate::ops::Kernels;
use arch_space::lang::Join;

/// The id of a value of the forward pass.
pub(super) type ValueId = usize;

/// The network's input: data, which needs no gradient.
pub(super) const INPUT: ValueId = 0;

/// Where a native op's argument came from.
enum Arg {
    /// A value of the forward pass.
    Value(ValueId),
    /// A trainable parameter.
    Param(Var),
    /// A constant (ones and zeros standing in for absent BatchNorm parameters).
    Constant,
}

/// How to backpropagate through one recorded op.
enum Backward {
    /// A native kernel, applied to `args`.
    Native { traced: Traced, args: Vec<Arg> },
    /// A layer run under candle's autograd: its output (with its graph), the variable that
    /// stood for its input (none for data) and its parameters.
    Autograd {
        output: Tensor,
        input: Option<(ValueId, Var)>,
        params: Vec<Var>,
    },
    /// The sum of values.
    Sum(Vec<ValueId>),
    /// Values concatenated along the channels: each value and its channel count.
    Concat(Vec<(ValueId, usize)>),
    /// A value reshaped (flattened) from this shape.
    Reshape(ValueId, Shape),
}

/// The record of a training forward pass.
pub(super) struct Tape {
    records: Vec<(ValueId, Backward)>,
    values: usize,
}

impl Tape {
    pub(super) fn new() -> Self {
        Tape {
            records: Vec::new(),
            values: INPUT + 1,
        }
    }

    /// A fresh value id.
    fn value(&mut self) -> ValueId {
        self.values += 1;
        self.values - 1
    }

    /// Records `backward` as the way to the inputs of a new value, and returns its id.
    fn push(&mut self, backward: Backward) -> ValueId {
        let id = self.value();
        self.records.push((id, backward));
        id
    }

    fn native(&mut self, traced: Traced, args: Vec<Arg>) -> (Tensor, ValueId) {
        let output = traced.output.clone();
        (output, self.push(Backward::Native { traced, args }))
    }

    /// Runs the backward pass from the gradient of value `output`; returns the parameters'
    /// gradients.
    pub(super) fn backward(mut self, output: ValueId, grad: Tensor) -> Result<GradStore> {
        let mut grads: Vec<Option<Tensor>> = vec![None; self.values];
        grads[output] = Some(grad);
        let mut params = GradStore::default();
        while let Some((id, backward)) = self.records.pop() {
            let Some(dy) = grads[id].take() else {
                continue;
            };
            match backward {
                Backward::Native { traced, args } => {
                    let need: Vec<bool> = args
                        .iter()
                        .map(|a| match a {
                            Arg::Value(v) => *v != INPUT,
                            Arg::Param(_) => true,
                            Arg::Constant => false,
                        })
                        .collect();
                    for (arg, g) in args.iter().zip(traced.gradients(&need, &dy)?) {
                        match (arg, g) {
                            (Arg::Value(v), Some(g)) => add_value(&mut grads, *v, g)?,
                            (Arg::Param(p), Some(g)) => add_param(&mut params, p, g)?,
                            _ => {}
                        }
                    }
                }
                Backward::Autograd {
                    output,
                    input,
                    params: vars,
                } => {
                    let local = (output * &dy)?.sum_all()?.backward()?;
                    if let Some((v, var)) = input {
                        if let Some(g) = local.get(var.as_tensor()) {
                            add_value(&mut grads, v, g.clone())?;
                        }
                    }
                    for var in &vars {
                        if let Some(g) = local.get(var.as_tensor()) {
                            add_param(&mut params, var, g.clone())?;
                        }
                    }
                }
                Backward::Sum(ids) => {
                    for v in ids {
                        add_value(&mut grads, v, dy.clone())?;
                    }
                }
                Backward::Concat(parts) => {
                    let mut start = 0;
                    for (v, channels) in parts {
                        add_value(&mut grads, v, dy.narrow(1, start, channels)?)?;
                        start += channels;
                    }
                }
                Backward::Reshape(v, shape) => add_value(&mut grads, v, dy.reshape(shape)?)?,
            }
        }
        Ok(params)
    }
}

/// Adds `g` to the gradient of value `id` (the input's is dropped).
fn add_value(grads: &mut [Option<Tensor>], id: ValueId, g: Tensor) -> Result<()> {
    if id == INPUT {
        return Ok(());
    }
    grads[id] = Some(match grads[id].take() {
        Some(existing) => cpu::add_traced(&existing, &g)?,
        None => g,
    });
    Ok(())
}

/// Adds `g` to the gradient of parameter `var`.
fn add_param(params: &mut GradStore, var: &Var, g: Tensor) -> Result<()> {
    let total = match params.remove(var.as_tensor()) {
        Some(existing) => cpu::add_traced(&existing, &g)?,
        None => g,
    };
    params.insert(var.as_tensor(), total);
    Ok(())
}

fn param(var: &Option<Var>) -> Arg {
    var.clone().map_or(Arg::Constant, Arg::Param)
}

impl Block {
    /// The training forward pass of this block on value `id`, recorded on `tape`.
    pub(super) fn forward_traced(
        &self,
        x: &Tensor,
        id: ValueId,
        mode: &mut Mode<'_>,
        tape: &mut Tape,
    ) -> Result<(Tensor, ValueId)> {
        match self {
            Block::Conv { .. } => self.conv_traced(x, id, None, tape),
            Block::BatchNorm { .. } => self.batch_norm_traced(x, id, None, tape),
            Block::MaxPool(g) => {
                Ok(tape.native(cpu::pool2d_traced(x, g, None)?, vec![Arg::Value(id)]))
            }
            Block::AvgPool(g, count_pad) => Ok(tape.native(
                cpu::pool2d_traced(x, g, Some(*count_pad))?,
                vec![Arg::Value(id)],
            )),
            Block::Activation(_) => match self.rectifier() {
                Some(r) => Ok(tape.native(cpu::rectify_traced(x, r)?, vec![Arg::Value(id)])),
                None => self.forward_autograd(x, id, mode, tape),
            },
            Block::Flatten { .. } => {
                let y = self.forward(x, mode, Kernels::Native)?;
                Ok((y, tape.push(Backward::Reshape(id, x.shape().clone()))))
            }
            Block::Identity => Ok((x.clone(), id)),
            Block::Zero => Ok((x.zeros_like()?, tape.value())),
            Block::Sequential(items) => {
                let (mut h, mut v) = (x.clone(), id);
                let mut rest = &items[..];
                while let Some((block, after)) = rest.split_first() {
                    // BatchNorm then a rectifier: one pass each way; a rectifier then a
                    // convolution: the rectified input is never stored.
                    let next = after.first();
                    let fused = next.and_then(Block::rectifier);
                    (h, v, rest) = match (block, fused, block.rectifier(), next) {
                        (Block::BatchNorm { .. }, Some(r), _, _) => {
                            let (h, v) = block.batch_norm_traced(&h, v, Some(r), tape)?;
                            (h, v, &after[1..])
                        }
                        (_, _, Some(r), Some(conv @ Block::Conv { .. })) => {
                            let (h, v) = conv.conv_traced(&h, v, Some(r), tape)?;
                            (h, v, &after[1..])
                        }
                        _ => {
                            let (h, v) = block.forward_traced(&h, v, mode, tape)?;
                            (h, v, after)
                        }
                    };
                }
                Ok((h, v))
            }
            Block::Parallel(j, branches) => {
                let outs = branches
                    .iter()
                    .map(|b| b.forward_traced(x, id, mode, tape))
                    .collect::<Result<Vec<_>>>()?;
                join_traced(*j, outs, tape)
            }
            Block::Graph(nodes) => {
                let mut values = vec![(x.clone(), id)];
                for (j, edges) in nodes {
                    let outs = edges
                        .iter()
                        .map(|(src, b)| {
                            let (value, v) = &values[*src];
                            b.forward_traced(value, *v, mode, tape)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    values.push(join_traced(*j, outs, tape)?);
                }
                values
                    .pop()
                    .ok_or_else(|| candle_core::Error::Msg("an empty graph".into()))
            }
            Block::Linear { .. }
            | Block::AdaptiveAvgPool(_)
            | Block::Dropout { .. }
            | Block::SqueezeExcitation { .. } => self.forward_autograd(x, id, mode, tape),
        }
    }

    /// The native rectifier of an activation block.
    fn rectifier(&self) -> Option<Rectifier> {
        match self {
            Block::Activation(a) => Rectifier::of(a),
            _ => None,
        }
    }

    /// A convolution block, of `before(x)` if a rectifier is given (in the same op).
    fn conv_traced(
        &self,
        x: &Tensor,
        id: ValueId,
        before: Option<Rectifier>,
        tape: &mut Tape,
    ) -> Result<(Tensor, ValueId)> {
        let Block::Conv {
            weight,
            bias,
            geometry,
        } = self
        else {
            candle_core::bail!("conv_traced on another block")
        };
        let bias_tensor = optional(bias, true);
        let traced = cpu::conv2d_traced(
            x,
            weight.as_tensor(),
            bias_tensor.as_ref(),
            geometry,
            before,
        )?;
        let mut args = vec![Arg::Value(id), Arg::Param(weight.clone())];
        args.extend(bias.clone().map(Arg::Param));
        Ok(tape.native(traced, args))
    }

    /// A BatchNorm block in training, optionally followed by rectifier `then` in the same op;
    /// updates the running statistics.
    fn batch_norm_traced(
        &self,
        x: &Tensor,
        id: ValueId,
        then: Option<Rectifier>,
        tape: &mut Tape,
    ) -> Result<(Tensor, ValueId)> {
        let Block::BatchNorm {
            weight,
            bias,
            stats,
            eps,
            momentum,
            track,
        } = self
        else {
            candle_core::bail!("batch_norm_traced on another block")
        };
        let (w, b) = (optional(weight, true), optional(bias, true));
        let (traced, batch_mean, batch_var) =
            cpu::batch_norm_train_traced(x, w.as_ref(), b.as_ref(), *eps, then)?;
        if *track {
            stats.update(&batch_mean, &batch_var, *momentum)?;
        }
        Ok(tape.native(traced, vec![Arg::Value(id), param(weight), param(bias)]))
    }

    /// A layer without a native kernel, under candle's autograd on a copy of its input.
    fn forward_autograd(
        &self,
        x: &Tensor,
        id: ValueId,
        mode: &mut Mode<'_>,
        tape: &mut Tape,
    ) -> Result<(Tensor, ValueId)> {
        let input = if id == INPUT {
            None
        } else {
            Some(Var::from_tensor(&x.detach())?)
        };
        let x = input
            .as_ref()
            .map_or_else(|| x.clone(), |v| v.as_tensor().clone());
        let output = self.forward(&x, mode, Kernels::Native)?;
        let y = output.detach();
        let backward = Backward::Autograd {
            output,
            input: input.map(|var| (id, var)),
            params: self.leaf_params(),
        };
        Ok((y, tape.push(backward)))
    }

    /// The trainable parameters of a layer that runs under local autograd on the tape
    /// (convolution and BatchNorm always run natively there).
    fn leaf_params(&self) -> Vec<Var> {
        match self {
            Block::Linear { weight, bias } => {
                std::iter::once(weight).chain(bias).cloned().collect()
            }
            Block::SqueezeExcitation { reduce, expand } => {
                vec![
                    reduce.0.clone(),
                    reduce.1.clone(),
                    expand.0.clone(),
                    expand.1.clone(),
                ]
            }
            _ => Vec::new(),
        }
    }
}

/// A join of traced branches: a sum (or the one branch) or a concatenation along channels.
fn join_traced(
    j: Join,
    mut outs: Vec<(Tensor, ValueId)>,
    tape: &mut Tape,
) -> Result<(Tensor, ValueId)> {
    if outs.len() == 1 {
        return Ok(outs.remove(0));
    }
    let ids: Vec<ValueId> = outs.iter().map(|(_, v)| *v).collect();
    let backward = match j {
        Join::Concat => Backward::Concat(
            outs.iter()
                .map(|(t, v)| Ok((*v, t.dim(1)?)))
                .collect::<Result<_>>()?,
        ),
        _ => Backward::Sum(ids),
    };
    let y = match j {
        Join::Concat => join(j, outs.into_iter().map(|(t, _)| t).collect())?,
        _ => {
            let (first, rest) = outs.split_first().expect("two or more branches");
            rest.iter()
                .try_fold(first.0.clone(), |sum, (t, _)| cpu::add_traced(&sum, t))?
        }
    };
    Ok((y, tape.push(backward)))
}
