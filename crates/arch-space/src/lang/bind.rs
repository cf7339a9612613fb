//! Binding calls to layers with PyTorch's argument semantics (positional order, keywords,
//! defaults), and lowering the block forms (`Residual`, `Add`, `Concat`, `Graph`) to the IR.

use std::collections::HashMap;

use super::ir::*;
use super::syntax::{Arg, Expr, Span};
use super::LangError;

/// Layer names and their parameters in PyTorch's positional order.
pub(crate) const LAYERS: &[(&str, &[&str])] = &[
    (
        "Conv2d",
        &[
            "in_channels",
            "out_channels",
            "kernel_size",
            "stride",
            "padding",
            "dilation",
            "groups",
            "bias",
            "padding_mode",
        ],
    ),
    (
        "LazyConv2d",
        &[
            "out_channels",
            "kernel_size",
            "stride",
            "padding",
            "dilation",
            "groups",
            "bias",
            "padding_mode",
        ],
    ),
    (
        "BatchNorm2d",
        &[
            "num_features",
            "eps",
            "momentum",
            "affine",
            "track_running_stats",
        ],
    ),
    (
        "LazyBatchNorm2d",
        &["eps", "momentum", "affine", "track_running_stats"],
    ),
    ("Linear", &["in_features", "out_features", "bias"]),
    ("LazyLinear", &["out_features", "bias"]),
    (
        "MaxPool2d",
        &[
            "kernel_size",
            "stride",
            "padding",
            "dilation",
            "return_indices",
            "ceil_mode",
        ],
    ),
    (
        "AvgPool2d",
        &[
            "kernel_size",
            "stride",
            "padding",
            "ceil_mode",
            "count_include_pad",
            "divisor_override",
        ],
    ),
    ("AdaptiveAvgPool2d", &["output_size"]),
    ("Dropout", &["p", "inplace"]),
    ("Dropout2d", &["p", "inplace"]),
    ("Flatten", &["start_dim", "end_dim"]),
    ("ReLU", &["inplace"]),
    ("ReLU6", &["inplace"]),
    ("LeakyReLU", &["negative_slope", "inplace"]),
    ("GELU", &["approximate"]),
    ("SiLU", &["inplace"]),
    ("Hardswish", &["inplace"]),
    ("Sigmoid", &[]),
    ("Tanh", &[]),
    ("Softmax", &["dim"]),
    ("LogSoftmax", &["dim"]),
    ("Identity", &[]),
    ("Zero", &[]),
    ("SqueezeExcitation", &["input_channels", "squeeze_channels"]),
    ("SqueezeExcite", &["reduction"]),
];

/// Block forms: their children are modules (`Graph` takes `name = ...` node definitions).
pub(crate) const BLOCKS: &[&str] = &["Sequential", "Residual", "Add", "Concat", "Graph"];

/// Strips the module prefixes code models write (`nn.`, `torch.nn.`, `torchvision.ops.`).
fn base_name(name: &str) -> &str {
    ["torch.nn.", "nn.", "torchvision.ops.", "ops."]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name)
}

fn unknown_layer(name: &str, span: Span) -> LangError {
    let known: Vec<&str> = LAYERS
        .iter()
        .map(|(n, _)| *n)
        .chain(BLOCKS.iter().copied())
        .collect();
    let close = known.iter().find(|k| {
        k.eq_ignore_ascii_case(name) || k.to_lowercase() == name.to_lowercase().replace('_', "")
    });
    let hint = match close {
        Some(k) => format!("did you mean `{k}`?"),
        None => format!("known layers: {}", known.join(", ")),
    };
    LangError::at(span, format!("unknown layer `{name}`")).with_hint(&hint)
}

/// Arguments of one call, matched to parameter names.
struct Bound<'a> {
    layer: &'a str,
    span: Span,
    values: HashMap<&'static str, &'a Expr>,
}

impl<'a> Bound<'a> {
    fn new(
        layer: &'a str,
        params: &'static [&'static str],
        args: &'a [Arg],
        span: Span,
    ) -> Result<Self, LangError> {
        let mut values = HashMap::new();
        let mut positional = 0;
        for arg in args {
            let (param, at) = match &arg.keyword {
                None => {
                    let p = params.get(positional).ok_or_else(|| {
                        LangError::at(
                            arg.value.span(),
                            format!(
                                "`{layer}` takes at most {} positional arguments",
                                params.len()
                            ),
                        )
                        .with_hint(&format!("its parameters are ({})", params.join(", ")))
                    })?;
                    positional += 1;
                    (*p, arg.value.span())
                }
                Some((k, at)) => {
                    let p = params.iter().find(|p| *p == k).ok_or_else(|| {
                        LangError::at(*at, format!("`{layer}` has no parameter `{k}`"))
                            .with_hint(&format!("its parameters are ({})", params.join(", ")))
                    })?;
                    (*p, *at)
                }
            };
            if values.insert(param, &arg.value).is_some() {
                return Err(LangError::at(at, format!("`{layer}` got `{param}` twice")));
            }
        }
        Ok(Bound {
            layer,
            span,
            values,
        })
    }

    fn err(&self, expr: Option<&Expr>, message: String) -> LangError {
        LangError::at(
            expr.map_or(self.span, Expr::span),
            format!("`{}`: {message}", self.layer),
        )
    }

    fn int(&self, name: &str) -> Result<Option<i64>, LangError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Expr::Int(v, _)) => Ok(Some(*v)),
            Some(e) => Err(self.err(Some(e), format!("`{name}` must be an integer"))),
        }
    }

    fn usize_or(&self, name: &str, default: Option<usize>) -> Result<usize, LangError> {
        match (self.int(name)?, default) {
            (Some(v), _) if v > 0 => Ok(v as usize),
            (Some(v), _) => Err(self.err(
                self.values.get(name).copied(),
                format!("`{name}` must be positive, got {v}"),
            )),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.err(None, format!("missing required argument `{name}`"))),
        }
    }

    fn pair_or(
        &self,
        name: &str,
        default: Option<[usize; 2]>,
        allow_zero: bool,
    ) -> Result<[usize; 2], LangError> {
        let Some(expr) = self.values.get(name) else {
            return default
                .ok_or_else(|| self.err(None, format!("missing required argument `{name}`")));
        };
        let item = |e: &Expr| match e {
            Expr::Int(v, _) if *v > 0 || (allow_zero && *v == 0) => Ok(*v as usize),
            _ => Err(self.err(
                Some(e),
                format!(
                    "`{name}` must be a {} integer or a pair of them",
                    if allow_zero {
                        "non-negative"
                    } else {
                        "positive"
                    }
                ),
            )),
        };
        match expr {
            Expr::Tuple(items, _) if items.len() == 2 => Ok([item(&items[0])?, item(&items[1])?]),
            Expr::Tuple(..) => Err(self.err(Some(expr), format!("`{name}` must have 2 entries"))),
            e => item(e).map(|v| [v, v]),
        }
    }

    fn bool_or(&self, name: &str, default: bool) -> Result<bool, LangError> {
        match self.values.get(name) {
            None => Ok(default),
            Some(Expr::Name(n, _)) if n == "True" => Ok(true),
            Some(Expr::Name(n, _)) if n == "False" => Ok(false),
            Some(e) => Err(self.err(Some(e), format!("`{name}` must be True or False"))),
        }
    }

    fn f64_or(&self, name: &str, default: f64) -> Result<f64, LangError> {
        match self.values.get(name) {
            None => Ok(default),
            Some(Expr::Int(v, _)) => Ok(*v as f64),
            Some(Expr::Float(v, _)) if v.is_finite() => Ok(*v),
            Some(e) => Err(self.err(Some(e), format!("`{name}` must be a number"))),
        }
    }

    fn str_or(&self, name: &str, default: &'a str) -> Result<&'a str, LangError> {
        match self.values.get(name) {
            None => Ok(default),
            Some(Expr::Str(s, _)) => Ok(s),
            Some(e) => Err(self.err(Some(e), format!("`{name}` must be a string"))),
        }
    }

    /// Accepts only the default value (`None`/`False`/`'zeros'`) of an unsupported option.
    fn only_default(&self, name: &str) -> Result<(), LangError> {
        match self.values.get(name) {
            None => Ok(()),
            Some(Expr::Name(n, _)) if n == "None" || n == "False" => Ok(()),
            Some(Expr::Str(s, _)) if s == "zeros" => Ok(()),
            Some(e) => Err(self.err(
                Some(e),
                format!("`{name}` is not supported (leave it at its default)"),
            )),
        }
    }

    fn lazy_width(&self, name: &str, lazy: bool) -> Result<Option<usize>, LangError> {
        if lazy {
            Ok(None)
        } else {
            self.usize_or(name, None).map(Some)
        }
    }

    fn padding(&self) -> Result<Padding, LangError> {
        match self.values.get("padding") {
            Some(Expr::Str(s, _)) if s == "same" => Ok(Padding::Same),
            Some(Expr::Str(s, _)) if s == "valid" => Ok(Padding::Valid),
            Some(e @ Expr::Str(..)) => Err(self.err(
                Some(e),
                "`padding` must be an integer, a pair, 'same' or 'valid'".into(),
            )),
            _ => Ok(Padding::Explicit(self.pair_or(
                "padding",
                Some([0, 0]),
                true,
            )?)),
        }
    }

    fn pool(&self, max: bool) -> Result<Pool2d, LangError> {
        let kernel_size = self.pair_or("kernel_size", None, false)?;
        if max {
            self.only_default("return_indices")?;
        } else {
            self.only_default("divisor_override")?;
        }
        Ok(Pool2d {
            kernel_size,
            stride: match self.values.get("stride") {
                Some(Expr::Name(n, _)) if n == "None" => kernel_size,
                _ => self.pair_or("stride", Some(kernel_size), false)?,
            },
            padding: self.pair_or("padding", Some([0, 0]), true)?,
            dilation: if max {
                self.pair_or("dilation", Some([1, 1]), false)?
            } else {
                [1, 1]
            },
            ceil_mode: self.bool_or("ceil_mode", false)?,
            count_include_pad: !max && self.bool_or("count_include_pad", true)?,
        })
    }
}

fn layer(name: &str, b: &Bound<'_>) -> Result<Layer, LangError> {
    let lazy = name.starts_with("Lazy");
    Ok(match name {
        "Conv2d" | "LazyConv2d" => {
            b.only_default("padding_mode")?;
            Layer::Conv2d(Conv2d {
                in_channels: b.lazy_width("in_channels", lazy)?,
                out_channels: b.usize_or("out_channels", None)?,
                kernel_size: b.pair_or("kernel_size", None, false)?,
                stride: b.pair_or("stride", Some([1, 1]), false)?,
                padding: b.padding()?,
                dilation: b.pair_or("dilation", Some([1, 1]), false)?,
                groups: b.usize_or("groups", Some(1))?,
                bias: b.bool_or("bias", true)?,
            })
        }
        "BatchNorm2d" | "LazyBatchNorm2d" => Layer::BatchNorm2d(BatchNorm2d {
            num_features: b.lazy_width("num_features", lazy)?,
            eps: b.f64_or("eps", 1e-5)?,
            momentum: b.f64_or("momentum", 0.1)?,
            affine: b.bool_or("affine", true)?,
            track_running_stats: b.bool_or("track_running_stats", true)?,
        }),
        "Linear" | "LazyLinear" => Layer::Linear(Linear {
            in_features: b.lazy_width("in_features", lazy)?,
            out_features: b.usize_or("out_features", None)?,
            bias: b.bool_or("bias", true)?,
        }),
        "MaxPool2d" => Layer::MaxPool2d(b.pool(true)?),
        "AvgPool2d" => Layer::AvgPool2d(b.pool(false)?),
        "AdaptiveAvgPool2d" => Layer::AdaptiveAvgPool2d {
            output_size: b.pair_or("output_size", None, false)?,
        },
        "Dropout" | "Dropout2d" => {
            let p = b.f64_or("p", 0.5)?;
            if !(0.0..=1.0).contains(&p) {
                return Err(b.err(
                    b.values.get("p").copied(),
                    format!("`p` must be in [0, 1], got {p}"),
                ));
            }
            b.bool_or("inplace", false)?;
            Layer::Dropout {
                p,
                channels: name == "Dropout2d",
            }
        }
        "Flatten" => Layer::Flatten {
            start_dim: b.int("start_dim")?.unwrap_or(1),
            end_dim: b.int("end_dim")?.unwrap_or(-1),
        },
        "Identity" => Layer::Identity,
        "Zero" => Layer::Zero,
        "SqueezeExcitation" => Layer::SqueezeExcitation(SqueezeExcitation {
            input_channels: match b.values.contains_key("input_channels") {
                true => Some(b.usize_or("input_channels", None)?),
                false => None,
            },
            squeeze: Squeeze::Channels(b.usize_or("squeeze_channels", None)?),
        }),
        "SqueezeExcite" => Layer::SqueezeExcitation(SqueezeExcitation {
            input_channels: None,
            squeeze: Squeeze::Reduction(b.usize_or("reduction", Some(4))?),
        }),
        _ => {
            b.bool_or("inplace", false)?;
            Layer::Activation(match name {
                "ReLU" => Activation::Relu,
                "ReLU6" => Activation::Relu6,
                "LeakyReLU" => Activation::LeakyRelu {
                    negative_slope: b.f64_or("negative_slope", 0.01)?,
                },
                "GELU" => match b.str_or("approximate", "none")? {
                    "none" => Activation::Gelu { tanh: false },
                    "tanh" => Activation::Gelu { tanh: true },
                    other => {
                        return Err(b.err(
                            b.values.get("approximate").copied(),
                            format!("`approximate` must be 'none' or 'tanh', got '{other}'"),
                        ))
                    }
                },
                "SiLU" => Activation::Silu,
                "Hardswish" => Activation::Hardswish,
                "Sigmoid" => Activation::Sigmoid,
                "Tanh" => Activation::Tanh,
                "Softmax" | "LogSoftmax" => Activation::Softmax {
                    dim: b
                        .int("dim")?
                        .ok_or_else(|| b.err(None, "missing required argument `dim`".into()))?,
                    log: name == "LogSoftmax",
                },
                _ => unreachable!("every name of LAYERS is handled"),
            })
        }
    })
}

/// Converts parsed expressions to modules, recording each module's span in pre-order.
pub(crate) struct Binder {
    pub spans: Vec<Span>,
}

impl Binder {
    pub fn module(&mut self, expr: &Expr) -> Result<Module, LangError> {
        let Expr::Call {
            name,
            args,
            inputs,
            span,
        } = expr
        else {
            return Err(LangError::at(
                expr.span(),
                "expected a layer such as `Conv2d(...)` or a block such as `Sequential(...)`"
                    .into(),
            ));
        };
        if inputs.is_some() {
            return Err(LangError::at(
                *span,
                "a module is applied to a node (`Conv2d(...)(x)`) only inside `Graph(...)`".into(),
            ));
        }
        let name = base_name(name);
        self.spans.push(*span);
        match name {
            "Sequential" | "Add" | "Concat" | "Residual" => self.block(name, args, *span),
            "Graph" => self.graph(args, *span),
            _ => {
                let params = LAYERS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, p)| *p)
                    .ok_or_else(|| unknown_layer(name, *span))?;
                let bound = Bound::new(name, params, args, *span)?;
                Ok(Module::Layer(layer(name, &bound)?))
            }
        }
    }

    fn block(&mut self, name: &str, args: &[Arg], span: Span) -> Result<Module, LangError> {
        let mut children = Vec::new();
        let mut shortcut = None;
        // `Residual` lowers to Add(Sequential(body...), shortcut): the Sequential is spanned
        // with the Residual itself, right after it in pre-order.
        if name == "Residual" {
            self.spans.push(span);
        }
        for arg in args {
            match &arg.keyword {
                None => children.push(self.module(&arg.value)?),
                Some((k, _)) if k == "shortcut" && name == "Residual" => {
                    shortcut = Some(&arg.value)
                }
                Some((k, at)) => {
                    return Err(
                        LangError::at(*at, format!("`{name}` takes modules, not `{k}=`"))
                            .with_hint(if name == "Residual" {
                                "the only keyword of `Residual` is `shortcut=`"
                            } else {
                                "list the modules separated by commas"
                            }),
                    )
                }
            }
        }
        if children.is_empty() && name != "Sequential" {
            return Err(LangError::at(
                span,
                format!("`{name}` needs at least one module"),
            ));
        }
        Ok(match name {
            "Sequential" => Module::Sequential(children),
            "Add" => Module::Parallel {
                join: Join::Sum,
                branches: children,
            },
            "Concat" => Module::Parallel {
                join: Join::Concat,
                branches: children,
            },
            _ => {
                let shortcut = match shortcut {
                    Some(e) => self.module(e)?,
                    None => {
                        self.spans.push(span);
                        Module::Layer(Layer::Identity)
                    }
                };
                Module::Parallel {
                    join: Join::Sum,
                    branches: vec![Module::Sequential(children), shortcut],
                }
            }
        })
    }

    fn graph(&mut self, args: &[Arg], span: Span) -> Result<Module, LangError> {
        let mut nodes: Vec<Node> = Vec::new();
        for arg in args {
            let Some((name, at)) = &arg.keyword else {
                return Err(LangError::at(
                    arg.value.span(),
                    "`Graph` takes node definitions `name = Sum(Conv2d(...)(input), ...)`".into(),
                ));
            };
            if name == GRAPH_INPUT || nodes.iter().any(|n| &n.name == name) {
                return Err(LangError::at(
                    *at,
                    format!("node name `{name}` is already taken"),
                ));
            }
            let (join, edge_exprs): (Join, Vec<&Expr>) = match &arg.value {
                Expr::Call {
                    name: j,
                    args,
                    inputs: None,
                    ..
                } if matches!(base_name(j), "Sum" | "Concat") => {
                    if let Some(a) = args.iter().find(|a| a.keyword.is_some()) {
                        return Err(LangError::at(
                            a.value.span(),
                            "a join takes edges, not keywords".into(),
                        ));
                    }
                    let join = if base_name(j) == "Sum" {
                        Join::Sum
                    } else {
                        Join::Concat
                    };
                    (join, args.iter().map(|a| &a.value).collect())
                }
                other => (Join::Sum, vec![other]),
            };
            let mut edges = Vec::new();
            for e in edge_exprs {
                edges.push(self.edge(e, &nodes)?);
            }
            if edges.is_empty() {
                return Err(LangError::at(*at, format!("node `{name}` has no edges"))
                    .with_hint("use `Zero()(input)` for a node that is always zero"));
            }
            nodes.push(Node {
                name: name.clone(),
                join,
                edges,
            });
        }
        if nodes.is_empty() {
            return Err(LangError::at(
                span,
                "`Graph` needs at least one node".into(),
            ));
        }
        Ok(Module::Graph(Graph { nodes }))
    }

    fn edge(&mut self, expr: &Expr, nodes: &[Node]) -> Result<Edge, LangError> {
        let check_source = |source: &str, at: Span| {
            if source == GRAPH_INPUT || nodes.iter().any(|n| n.name == source) {
                Ok(source.to_string())
            } else {
                Err(LangError::at(at, format!("unknown node `{source}`"))
                    .with_hint("an edge reads `input` or a node defined before it"))
            }
        };
        match expr {
            Expr::Name(source, at) => {
                let from = check_source(source, *at)?;
                self.spans.push(*at);
                Ok(Edge {
                    from,
                    module: Module::Layer(Layer::Identity),
                })
            }
            Expr::Call {
                name,
                args,
                inputs: Some(inputs),
                span,
            } => {
                let [Expr::Name(source, at)] = inputs.as_slice() else {
                    return Err(LangError::at(*span, "an edge applies a module to exactly one node, e.g. `Conv2d(16, 16, 3)(x1)`".into()));
                };
                let from = check_source(source, *at)?;
                let module = self.module(&Expr::Call {
                    name: name.clone(),
                    args: args.clone(),
                    inputs: None,
                    span: *span,
                })?;
                Ok(Edge { from, module })
            }
            other => Err(LangError::at(
                other.span(),
                "expected an edge: a node name or `Module(...)(node)`".into(),
            )),
        }
    }
}
