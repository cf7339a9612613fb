//! The printer: IR back to the language (PyTorch argument order, non-default keywords only).

use std::fmt::Write as _;

use super::ir::*;

fn pair(v: [usize; 2]) -> String {
    if v[0] == v[1] {
        v[0].to_string()
    } else {
        format!("({}, {})", v[0], v[1])
    }
}

/// One layer as a call, e.g. `Conv2d(3, 16, 3, padding=1, bias=False)`.
pub fn layer_to_string(layer: &Layer) -> String {
    let mut args: Vec<String> = Vec::new();
    let name = match layer {
        Layer::Conv2d(c) => {
            args.extend(c.in_channels.map(|v| v.to_string()));
            args.push(c.out_channels.to_string());
            args.push(pair(c.kernel_size));
            if c.stride != [1, 1] {
                args.push(format!("stride={}", pair(c.stride)));
            }
            match c.padding {
                Padding::Explicit([0, 0]) => {}
                Padding::Explicit(p) => args.push(format!("padding={}", pair(p))),
                Padding::Same => args.push("padding='same'".into()),
                Padding::Valid => args.push("padding='valid'".into()),
            }
            if c.dilation != [1, 1] {
                args.push(format!("dilation={}", pair(c.dilation)));
            }
            if c.groups != 1 {
                args.push(format!("groups={}", c.groups));
            }
            if !c.bias {
                args.push("bias=False".into());
            }
            if c.in_channels.is_some() {
                "Conv2d"
            } else {
                "LazyConv2d"
            }
        }
        Layer::BatchNorm2d(b) => {
            args.extend(b.num_features.map(|v| v.to_string()));
            if b.eps != 1e-5 {
                args.push(format!("eps={:?}", b.eps));
            }
            if b.momentum != 0.1 {
                args.push(format!("momentum={:?}", b.momentum));
            }
            if !b.affine {
                args.push("affine=False".into());
            }
            if !b.track_running_stats {
                args.push("track_running_stats=False".into());
            }
            if b.num_features.is_some() {
                "BatchNorm2d"
            } else {
                "LazyBatchNorm2d"
            }
        }
        Layer::Linear(l) => {
            args.extend(l.in_features.map(|v| v.to_string()));
            args.push(l.out_features.to_string());
            if !l.bias {
                args.push("bias=False".into());
            }
            if l.in_features.is_some() {
                "Linear"
            } else {
                "LazyLinear"
            }
        }
        Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
            let max = matches!(layer, Layer::MaxPool2d(_));
            args.push(pair(p.kernel_size));
            if p.stride != p.kernel_size {
                args.push(format!("stride={}", pair(p.stride)));
            }
            if p.padding != [0, 0] {
                args.push(format!("padding={}", pair(p.padding)));
            }
            if max && p.dilation != [1, 1] {
                args.push(format!("dilation={}", pair(p.dilation)));
            }
            if p.ceil_mode {
                args.push("ceil_mode=True".into());
            }
            if !max && !p.count_include_pad {
                args.push("count_include_pad=False".into());
            }
            if max {
                "MaxPool2d"
            } else {
                "AvgPool2d"
            }
        }
        Layer::AdaptiveAvgPool2d { output_size } => {
            args.push(pair(*output_size));
            "AdaptiveAvgPool2d"
        }
        Layer::Dropout { p, channels } => {
            args.push(format!("p={p:?}"));
            if *channels {
                "Dropout2d"
            } else {
                "Dropout"
            }
        }
        Layer::Flatten { start_dim, end_dim } => {
            if *start_dim != 1 {
                args.push(format!("start_dim={start_dim}"));
            }
            if *end_dim != -1 {
                args.push(format!("end_dim={end_dim}"));
            }
            "Flatten"
        }
        Layer::Identity => "Identity",
        Layer::Zero => "Zero",
        Layer::SqueezeExcitation(se) => match (se.input_channels, se.squeeze) {
            (Some(c), Squeeze::Channels(s)) => {
                args.push(format!("{c}, {s}"));
                "SqueezeExcitation"
            }
            (_, Squeeze::Reduction(r)) => {
                args.push(format!("reduction={r}"));
                "SqueezeExcite"
            }
            (None, Squeeze::Channels(s)) => {
                args.push(format!("squeeze_channels={s}"));
                "SqueezeExcitation"
            }
        },
        Layer::Activation(a) => match a {
            Activation::Relu => "ReLU",
            Activation::Relu6 => "ReLU6",
            Activation::LeakyRelu { negative_slope } => {
                if *negative_slope != 0.01 {
                    args.push(format!("negative_slope={negative_slope:?}"));
                }
                "LeakyReLU"
            }
            Activation::Gelu { tanh } => {
                if *tanh {
                    args.push("approximate='tanh'".into());
                }
                "GELU"
            }
            Activation::Silu => "SiLU",
            Activation::Hardswish => "Hardswish",
            Activation::Sigmoid => "Sigmoid",
            Activation::Tanh => "Tanh",
            Activation::Softmax { dim, log } => {
                args.push(format!("dim={dim}"));
                if *log {
                    "LogSoftmax"
                } else {
                    "Softmax"
                }
            }
        },
    };
    format!("{name}({})", args.join(", "))
}

/// The whole module as indented text that parses back to the same IR.
pub fn to_text(module: &Module) -> String {
    let mut out = String::new();
    write_module(&mut out, module, 0);
    out
}

fn write_children(out: &mut String, name: &str, children: &[Module], indent: usize) {
    let _ = writeln!(out, "{name}(");
    for child in children {
        out.push_str(&"    ".repeat(indent + 1));
        write_module(out, child, indent + 1);
        out.push_str(",\n");
    }
    out.push_str(&"    ".repeat(indent));
    out.push(')');
}

fn write_module(out: &mut String, module: &Module, indent: usize) {
    match module {
        Module::Layer(l) => out.push_str(&layer_to_string(l)),
        Module::Sequential(items) => write_children(out, "Sequential", items, indent),
        Module::Parallel { join, branches } => {
            let name = match join {
                Join::Sum => "Add",
                Join::Concat => "Concat",
            };
            write_children(out, name, branches, indent);
        }
        Module::Graph(g) => {
            out.push_str("Graph(\n");
            for node in &g.nodes {
                let pad = "    ".repeat(indent + 1);
                let join = match node.join {
                    Join::Sum => "Sum",
                    Join::Concat => "Concat",
                };
                let _ = writeln!(out, "{pad}{} = {join}(", node.name);
                for edge in &node.edges {
                    out.push_str(&"    ".repeat(indent + 2));
                    write_module(out, &edge.module, indent + 2);
                    let _ = writeln!(out, "({}),", edge.from);
                }
                let _ = writeln!(out, "{pad}),");
            }
            out.push_str(&"    ".repeat(indent));
            out.push(')');
        }
    }
}
