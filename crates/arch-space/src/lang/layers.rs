//! The layer vocabulary: every layer name with its parameters in PyTorch's positional order
//! (`LAYERS`), the argument binder (`Bound`: positional order, keywords, defaults, value
//! types) and the constructor of each layer's IR (`bind_layer`).

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

/// The parameters of a layer name (without module prefix), or `None` when it is no layer.
pub(crate) fn layer_params(name: &str) -> Option<&'static [&'static str]> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// Binds a call's arguments to the parameters of layer `name` and builds the layer.
pub(crate) fn bind_layer(
    name: &str,
    params: &'static [&'static str],
    args: &[Arg],
    span: Span,
) -> Result<Layer, LangError> {
    let bound = Bound::new(name, params, args, span)?;
    layer(name, &bound)
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
