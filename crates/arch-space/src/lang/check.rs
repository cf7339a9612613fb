//! Static checking: shape inference, parameter and FLOP counts, activation memory, budgets.
//!
//! Everything is computed before any tensor exists. Shapes exclude the batch dimension. FLOPs
//! are multiply-accumulates of convolutions and linear layers, biases included (the convention
//! of NAS-Bench-201 and most NAS papers); normalization, activations and pooling count 0.
//! Activation memory is the number of output elements of every layer and join, times 4 bytes
//! (float32), per image: what a training step keeps for the backward pass, roughly.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ir::*;
use super::print::layer_to_string;
use super::syntax::Span;

/// What the network reads and must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Input channels (3 for RGB).
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Number of classes the output must have.
    pub classes: usize,
}

impl InputSpec {
    /// CIFAR-10: 3x32x32, 10 classes.
    pub fn cifar10() -> Self {
        InputSpec {
            channels: 3,
            height: 32,
            width: 32,
            classes: 10,
        }
    }
}

/// Limits that reject a model before training.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Most trainable parameters allowed.
    pub max_params: Option<u64>,
    /// Most FLOPs (multiply-accumulates) per image allowed.
    pub max_flops: Option<u64>,
}

/// The static facts of a checked model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The model with every lazy width resolved.
    pub resolved: Module,
    /// Trainable parameters.
    pub params: u64,
    /// Multiply-accumulates per image.
    pub flops: u64,
    /// Bytes of layer outputs per image (float32).
    pub activation_bytes: u64,
    /// Output shape (without the batch dimension).
    pub output: Vec<usize>,
}

/// What kind of problem a [`CheckError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckErrorKind {
    /// A layer cannot take its input (channels, rank, spatial size).
    Shape,
    /// The output is not `[classes]`.
    Output,
    /// The model exceeds a parameter or FLOP budget.
    Budget,
}

/// A static check failure, naming the layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("{}{}{}", location(self.span), self.layer.as_ref().map_or(String::new(), |l| format!("`{l}`: ")), self.message)]
pub struct CheckError {
    /// The kind of problem.
    pub kind: CheckErrorKind,
    /// The offending layer, printed (absent for whole-model problems).
    pub layer: Option<String>,
    /// Pre-order index of the offending module (see [`super::Program::spans`]).
    pub module_index: Option<usize>,
    /// Where the module was written, when the model came from text.
    pub span: Option<Span>,
    /// What is wrong, and what to do.
    pub message: String,
}

fn location(span: Option<Span>) -> String {
    span.map_or(String::new(), |s| {
        format!("line {}, column {}: ", s.line, s.column)
    })
}

struct Walker {
    next_index: usize,
    params: u64,
    flops: u64,
    elements: u64,
}

type Shape = Vec<usize>;

fn fmt_shape(s: &[usize]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The output size of a window of `kernel` (dilated) sliding over `size` plus `pad` on both
/// sides, as PyTorch computes it; `None` when the window does not fit.
pub(super) fn spatial(
    size: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil: bool,
) -> Option<usize> {
    let span = dilation * (kernel - 1) + 1;
    let padded = size + 2 * pad;
    if padded < span {
        return None;
    }
    let steps = padded - span;
    let mut out = if ceil {
        steps.div_ceil(stride)
    } else {
        steps / stride
    } + 1;
    // PyTorch: with ceil_mode, the last window must start inside the input or left padding.
    if ceil && (out - 1) * stride >= size + pad {
        out -= 1;
    }
    Some(out)
}

/// The bottleneck width of a squeeze-excitation on `channels` channels (a reduction keeps at
/// least 1 channel).
pub(super) fn squeeze_width(squeeze: Squeeze, channels: usize) -> usize {
    match squeeze {
        Squeeze::Channels(s) => s,
        Squeeze::Reduction(r) => (channels / r.max(1)).max(1),
    }
}

/// The first size parameter of `layer` that is 0 where it must be positive (the text binder
/// rejects these; IR built in code or deserialized may hold them).
fn zero_parameter(layer: &Layer) -> Option<&'static str> {
    let zero = |v: &[usize]| v.contains(&0);
    match layer {
        Layer::Conv2d(c) => [
            ("in_channels", c.in_channels == Some(0)),
            ("out_channels", c.out_channels == 0),
            ("kernel_size", zero(&c.kernel_size)),
            ("stride", zero(&c.stride)),
            ("dilation", zero(&c.dilation)),
            ("groups", c.groups == 0),
        ]
        .into_iter()
        .find_map(|(name, bad)| bad.then_some(name)),
        Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => [
            ("kernel_size", zero(&p.kernel_size)),
            ("stride", zero(&p.stride)),
            ("dilation", zero(&p.dilation)),
        ]
        .into_iter()
        .find_map(|(name, bad)| bad.then_some(name)),
        Layer::AdaptiveAvgPool2d { output_size } => zero(output_size).then_some("output_size"),
        Layer::SqueezeExcitation(se) => match se.squeeze {
            Squeeze::Channels(0) => Some("squeeze_channels"),
            Squeeze::Reduction(0) => Some("reduction"),
            _ => None,
        },
        _ => None,
    }
}

impl Walker {
    fn fail(
        &self,
        index: usize,
        layer: Option<&Layer>,
        kind: CheckErrorKind,
        message: String,
    ) -> CheckError {
        CheckError {
            kind,
            layer: layer.map(layer_to_string),
            module_index: Some(index),
            span: None,
            message,
        }
    }

    fn module(&mut self, module: &Module, input: &Shape) -> Result<(Module, Shape), CheckError> {
        let index = self.next_index;
        self.next_index += 1;
        match module {
            Module::Layer(layer) => {
                let (resolved, out) = self.layer(index, layer, input)?;
                self.elements += out.iter().product::<usize>() as u64;
                Ok((Module::Layer(resolved), out))
            }
            Module::Sequential(items) => {
                let mut shape = input.clone();
                let mut resolved = Vec::with_capacity(items.len());
                for item in items {
                    let (m, s) = self.module(item, &shape)?;
                    resolved.push(m);
                    shape = s;
                }
                Ok((Module::Sequential(resolved), shape))
            }
            Module::Parallel { join, branches } => {
                let mut outs = Vec::new();
                let mut resolved = Vec::new();
                for b in branches {
                    let (m, s) = self.module(b, input)?;
                    resolved.push(m);
                    outs.push(s);
                }
                let out = self.join(index, *join, &outs, "", "branch")?;
                Ok((
                    Module::Parallel {
                        join: *join,
                        branches: resolved,
                    },
                    out,
                ))
            }
            Module::Graph(graph) => {
                let mut env: HashMap<&str, Shape> = HashMap::from([(GRAPH_INPUT, input.clone())]);
                let mut nodes = Vec::new();
                let mut last = input.clone();
                for node in &graph.nodes {
                    // A node is no module: a failing join is placed at its first edge.
                    let first_edge = self.next_index;
                    let mut outs = Vec::new();
                    let mut edges = Vec::new();
                    for edge in &node.edges {
                        let source = env.get(edge.from.as_str()).cloned().ok_or_else(|| {
                            self.fail(
                                index,
                                None,
                                CheckErrorKind::Shape,
                                format!("node `{}` reads unknown node `{}`", node.name, edge.from),
                            )
                        })?;
                        let (m, s) = self.module(&edge.module, &source)?;
                        edges.push(Edge {
                            from: edge.from.clone(),
                            module: m,
                        });
                        outs.push(s);
                    }
                    last = self.join(
                        first_edge,
                        node.join,
                        &outs,
                        &format!("node `{}`: ", node.name),
                        "edge",
                    )?;
                    env.insert(&node.name, last.clone());
                    nodes.push(Node {
                        name: node.name.clone(),
                        join: node.join,
                        edges,
                    });
                }
                Ok((Module::Graph(Graph { nodes }), last))
            }
        }
    }

    fn join(
        &mut self,
        index: usize,
        join: Join,
        outs: &[Shape],
        context: &str,
        what: &str,
    ) -> Result<Shape, CheckError> {
        let Some(first) = outs.first().cloned() else {
            return Err(self.fail(
                index,
                None,
                CheckErrorKind::Shape,
                format!("{context}a join needs at least one {what}"),
            ));
        };
        if outs.len() == 1 {
            return Ok(first);
        }
        let out = match join {
            Join::Sum => {
                if let Some(i) = outs.iter().position(|s| *s != first) {
                    return Err(self.fail(index, None, CheckErrorKind::Shape, format!(
                        "{context}cannot add: {what} 0 gives {} but {what} {i} gives {}; a sum needs equal shapes (use a 1x1 Conv2d or a pooling to match them)",
                        fmt_shape(&first), fmt_shape(&outs[i]))));
                }
                first
            }
            Join::Concat => {
                if let Some(i) = outs
                    .iter()
                    .position(|s| s.len() != first.len() || s.get(1..) != first.get(1..))
                {
                    return Err(self.fail(index, None, CheckErrorKind::Shape, format!(
                        "{context}cannot concatenate channels: {what} 0 gives {} but {what} {i} gives {}; all but the channel count must match",
                        fmt_shape(&first), fmt_shape(&outs[i]))));
                }
                let mut out = first;
                out[0] = outs.iter().map(|s| s[0]).sum();
                out
            }
        };
        self.elements += out.iter().product::<usize>() as u64;
        Ok(out)
    }

    fn feature_map(
        &self,
        index: usize,
        layer: &Layer,
        input: &Shape,
    ) -> Result<[usize; 3], CheckError> {
        match input.as_slice() {
            [c, h, w] => Ok([*c, *h, *w]),
            _ => Err(self.fail(index, Some(layer), CheckErrorKind::Shape, format!(
                "expects a [channels, height, width] feature map, got {}; move it before `Flatten()`",
                fmt_shape(input)))),
        }
    }

    fn layer(
        &mut self,
        index: usize,
        layer: &Layer,
        input: &Shape,
    ) -> Result<(Layer, Shape), CheckError> {
        let fail =
            |w: &Self, message: String| w.fail(index, Some(layer), CheckErrorKind::Shape, message);
        if let Some(name) = zero_parameter(layer) {
            return Err(fail(self, format!("`{name}` must be positive")));
        }
        match layer {
            Layer::Conv2d(conv) => {
                let [c, h, w] = self.feature_map(index, layer, input)?;
                let cin = conv.in_channels.unwrap_or(c);
                if cin != c {
                    return Err(fail(self, format!("expects {cin} input channels, got {c} (the previous layer outputs {c})")));
                }
                if cin % conv.groups != 0 || conv.out_channels % conv.groups != 0 {
                    return Err(fail(
                        self,
                        format!(
                            "groups={} must divide both {cin} input and {} output channels",
                            conv.groups, conv.out_channels
                        ),
                    ));
                }
                let (pad, stride_ok) = match conv.padding {
                    Padding::Explicit(p) => (p, true),
                    Padding::Valid => ([0, 0], true),
                    Padding::Same => {
                        let total = |d: usize| conv.dilation[d] * (conv.kernel_size[d] - 1);
                        ([total(0) / 2, total(1) / 2], conv.stride == [1, 1])
                    }
                };
                if !stride_ok {
                    return Err(fail(self, "padding='same' needs stride 1".into()));
                }
                let out_hw = if conv.padding == Padding::Same {
                    Some((h, w))
                } else {
                    spatial(
                        h,
                        conv.kernel_size[0],
                        conv.stride[0],
                        pad[0],
                        conv.dilation[0],
                        false,
                    )
                    .zip(spatial(
                        w,
                        conv.kernel_size[1],
                        conv.stride[1],
                        pad[1],
                        conv.dilation[1],
                        false,
                    ))
                };
                let (oh, ow) = out_hw.ok_or_else(|| fail(self, format!(
                    "the {}x{} kernel (dilation {}) is larger than the padded {h}x{w} input; reduce downsampling before it or pad more",
                    conv.kernel_size[0], conv.kernel_size[1], conv.dilation[0])))?;
                let weights = (conv.out_channels
                    * (cin / conv.groups)
                    * conv.kernel_size[0]
                    * conv.kernel_size[1]) as u64;
                let bias = if conv.bias {
                    conv.out_channels as u64
                } else {
                    0
                };
                self.params += weights + bias;
                self.flops += (weights + bias) * (oh * ow) as u64;
                Ok((
                    Layer::Conv2d(Conv2d {
                        in_channels: Some(cin),
                        ..conv.clone()
                    }),
                    vec![conv.out_channels, oh, ow],
                ))
            }
            Layer::BatchNorm2d(bn) => {
                let [c, _, _] = self.feature_map(index, layer, input)?;
                let n = bn.num_features.unwrap_or(c);
                if n != c {
                    return Err(fail(self, format!("gets {c} channels but normalizes {n} (PyTorch: running_mean should contain {c} elements not {n}); use BatchNorm2d({c})")));
                }
                if bn.affine {
                    self.params += 2 * n as u64;
                }
                Ok((
                    Layer::BatchNorm2d(BatchNorm2d {
                        num_features: Some(n),
                        ..bn.clone()
                    }),
                    input.clone(),
                ))
            }
            Layer::Linear(lin) => {
                let last = *input.last().unwrap_or(&0);
                let n = lin.in_features.unwrap_or(last);
                if n != last {
                    let hint = if input.len() > 1 {
                        format!(
                            "; it acts on the last dimension of {}: add `Flatten()` before it",
                            fmt_shape(input)
                        )
                    } else {
                        format!("; use Linear({last}, {})", lin.out_features)
                    };
                    return Err(fail(
                        self,
                        format!("expects {n} input features, got {last}{hint}"),
                    ));
                }
                let per_row =
                    (n * lin.out_features + if lin.bias { lin.out_features } else { 0 }) as u64;
                self.params += per_row;
                let rows: usize = input[..input.len() - 1].iter().product();
                self.flops += per_row * rows as u64;
                let mut out = input.clone();
                *out.last_mut().expect("rank checked above") = lin.out_features;
                Ok((
                    Layer::Linear(Linear {
                        in_features: Some(n),
                        ..lin.clone()
                    }),
                    out,
                ))
            }
            Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
                let [c, h, w] = self.feature_map(index, layer, input)?;
                if (0..2).any(|d| 2 * p.padding[d] > p.kernel_size[d]) {
                    return Err(fail(
                        self,
                        "padding must be at most half the kernel size".into(),
                    ));
                }
                let out = spatial(
                    h,
                    p.kernel_size[0],
                    p.stride[0],
                    p.padding[0],
                    p.dilation[0],
                    p.ceil_mode,
                )
                .zip(spatial(
                    w,
                    p.kernel_size[1],
                    p.stride[1],
                    p.padding[1],
                    p.dilation[1],
                    p.ceil_mode,
                ));
                let (oh, ow) = out.ok_or_else(|| fail(self, format!(
                    "the window is larger than the {h}x{w} input: the feature map has collapsed; use fewer downsampling layers or AdaptiveAvgPool2d(1)")))?;
                Ok((layer.clone(), vec![c, oh, ow]))
            }
            Layer::AdaptiveAvgPool2d { output_size } => {
                let [c, _, _] = self.feature_map(index, layer, input)?;
                Ok((layer.clone(), vec![c, output_size[0], output_size[1]]))
            }
            Layer::Flatten { start_dim, end_dim } => {
                // Dimensions count the batch, as in PyTorch.
                let rank = input.len() as i64 + 1;
                let norm = |d: i64| if d < 0 { d + rank } else { d };
                let (s, e) = (norm(*start_dim), norm(*end_dim));
                if !(0..rank).contains(&s) || !(0..rank).contains(&e) || s > e || s == 0 {
                    return Err(fail(self, format!("cannot flatten dimensions {start_dim}..={end_dim} of a {rank}-d input (batch included); use Flatten()")));
                }
                let (s, e) = (s as usize - 1, e as usize - 1);
                let mut out: Shape = input[..s].to_vec();
                out.push(input[s..=e].iter().product());
                out.extend_from_slice(&input[e + 1..]);
                Ok((layer.clone(), out))
            }
            Layer::Activation(Activation::Softmax { dim, .. }) => {
                let rank = input.len() as i64 + 1;
                if *dim >= rank || *dim < -rank {
                    return Err(fail(
                        self,
                        format!("dim={dim} is out of range for a {rank}-d input (batch included)"),
                    ));
                }
                Ok((layer.clone(), input.clone()))
            }
            Layer::SqueezeExcitation(se) => {
                let [c, _, _] = self.feature_map(index, layer, input)?;
                let n = se.input_channels.unwrap_or(c);
                if n != c {
                    return Err(fail(self, format!("expects {n} input channels, got {c}")));
                }
                let s = squeeze_width(se.squeeze, c);
                let p = (2 * c * s + s + c) as u64;
                self.params += p;
                self.flops += p;
                self.elements += (2 * s + c) as u64;
                let resolved = SqueezeExcitation {
                    input_channels: Some(c),
                    squeeze: Squeeze::Channels(s),
                };
                Ok((Layer::SqueezeExcitation(resolved), input.clone()))
            }
            Layer::Dropout { .. } | Layer::Activation(_) | Layer::Identity | Layer::Zero => {
                Ok((layer.clone(), input.clone()))
            }
        }
    }
}

/// Checks `module` for `input`: every layer accepts its input and the output is `[classes]`.
pub fn check(module: &Module, input: &InputSpec) -> Result<Analysis, CheckError> {
    let mut walker = Walker {
        next_index: 0,
        params: 0,
        flops: 0,
        elements: 0,
    };
    let (resolved, output) =
        walker.module(module, &vec![input.channels, input.height, input.width])?;
    if output != [input.classes] {
        let hint = if output.len() > 1 {
            "end with `AdaptiveAvgPool2d(1), Flatten(), Linear(..)` (or LazyLinear)".to_string()
        } else {
            format!("make the last Linear output {} features", input.classes)
        };
        return Err(CheckError {
            kind: CheckErrorKind::Output,
            layer: None,
            module_index: None,
            span: None,
            message: format!("the model outputs {} per image, but the task needs [{}] (one score per class); {hint}", fmt_shape(&output), input.classes),
        });
    }
    Ok(Analysis {
        resolved,
        params: walker.params,
        flops: walker.flops,
        activation_bytes: walker.elements * 4,
        output,
    })
}

impl Analysis {
    /// Checks the counts against a budget.
    pub fn within(&self, budget: &Budget) -> Result<(), CheckError> {
        let over = |what: &str, value: u64, max: Option<u64>| {
            max.filter(|&m| value > m).map(|m| CheckError {
                kind: CheckErrorKind::Budget,
                layer: None,
                module_index: None,
                span: None,
                message: format!(
                    "{value} {what} exceed the budget of {m}; use fewer or narrower layers"
                ),
            })
        };
        match over("parameters", self.params, budget.max_params)
            .or_else(|| over("FLOPs", self.flops, budget.max_flops))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
