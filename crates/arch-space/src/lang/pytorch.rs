//! The PyTorch code generator: a checked module as a self-contained `model.py`.
//!
//! The file imports only `torch` and `torch.nn`, defines `Network` (an `nn.Sequential` of the
//! top-level modules) and `build()`, and adds small helper modules where PyTorch has none:
//! `Add` and `Concat` (parallel branches summed or concatenated), `Graph` and `Node` (DAG
//! nodes reading earlier values), `Zero`, and torchvision's `SqueezeExcitation` (same
//! parameter names). Every other layer is the `nn` module of the same name and arguments. Its
//! state dict follows [`super::state`]'s scheme, and the file lists it as `STATE_DICT`
//! (name to shape) so that a loader can check names and shapes before loading.

use std::fmt::Write as _;

use super::check::{check, CheckError, InputSpec};
use super::ir::*;
use super::print::layer_to_string;
use super::state::{state_dict, top_level};

const HEADER: &str = r#""""A network exported by nas-rs.

    import safetensors.torch
    from model import build

    model = build()
    model.load_state_dict(safetensors.torch.load_file("model.safetensors"))
    model.eval()
"""

import torch
from torch import nn
"#;

const JOIN: &str = r#"

class Modules(nn.ModuleList):
    """A module list of its arguments: Modules(a, b) holds a and b."""

    def __init__(self, *modules):
        super().__init__(modules)


def join(kind, outs):
    """Sums the tensors in order, or concatenates them along channels."""
    if kind == "concat":
        return torch.cat(outs, 1)
    total = outs[0]
    for out in outs[1:]:
        total = total + out
    return total
"#;

const ADD: &str = r#"

class Add(Modules):
    """Branches applied to the same input, summed."""

    def forward(self, x):
        return join("sum", [branch(x) for branch in self])
"#;

const CONCAT: &str = r#"

class Concat(Modules):
    """Branches applied to the same input, concatenated along channels."""

    def forward(self, x):
        return join("concat", [branch(x) for branch in self])
"#;

const GRAPH: &str = r#"

class Node(nn.ModuleList):
    """A graph node: edge modules applied to earlier values (0 is the graph's input, i + 1 node
    i), joined by `kind` ("sum" or "concat")."""

    def __init__(self, kind, sources, *edges):
        super().__init__(edges)
        self.kind = kind
        self.sources = sources

    def forward(self, values):
        return join(self.kind, [edge(values[s]) for s, edge in zip(self.sources, self)])


class Graph(Modules):
    """A DAG of nodes; the last node is the output."""

    def forward(self, x):
        values = [x]
        for node in self:
            values.append(node(values))
        return values[-1]
"#;

const ZERO: &str = r#"

class Zero(nn.Module):
    """Zeros of the input's shape (NAS-Bench-201's `none`)."""

    def forward(self, x):
        return torch.zeros_like(x)
"#;

const SQUEEZE_EXCITATION: &str = r#"

class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: x * sigmoid(fc2(relu(fc1(avgpool(x)))))."""

    def __init__(self, input_channels, squeeze_channels):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x):
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return x * self.scale_activation(scale)
"#;

/// Which helper modules the generated file needs.
#[derive(Default)]
struct Helpers {
    add: bool,
    concat: bool,
    graph: bool,
    zero: bool,
    squeeze_excitation: bool,
}

struct Writer {
    out: String,
    helpers: Helpers,
}

const INDENT: &str = "    ";

impl Writer {
    /// A call whose arguments are `items`, one a line, after the text `open` (which ends with
    /// the opening parenthesis or an argument).
    fn children<'a>(
        &mut self,
        open: &str,
        items: impl IntoIterator<Item = &'a Module>,
        indent: usize,
    ) {
        let _ = writeln!(self.out, "{open}");
        for item in items {
            self.out.push_str(&INDENT.repeat(indent + 1));
            self.module(item, indent + 1);
            self.out.push_str(",\n");
        }
        self.out.push_str(&INDENT.repeat(indent));
        self.out.push(')');
    }

    fn module(&mut self, module: &Module, indent: usize) {
        match module {
            Module::Layer(layer) => self.layer(layer),
            Module::Sequential(items) => self.children("nn.Sequential(", items, indent),
            Module::Parallel { join, branches } => {
                let name = match join {
                    Join::Sum => {
                        self.helpers.add = true;
                        "Add("
                    }
                    Join::Concat => {
                        self.helpers.concat = true;
                        "Concat("
                    }
                };
                self.children(name, branches, indent);
            }
            Module::Graph(graph) => self.graph(graph, indent),
        }
    }

    fn graph(&mut self, graph: &Graph, indent: usize) {
        self.helpers.graph = true;
        let mut names = vec![GRAPH_INPUT];
        self.out.push_str("Graph(\n");
        for node in &graph.nodes {
            let (kind, join) = match node.join {
                Join::Sum => ("sum", "Sum"),
                Join::Concat => ("concat", "Concat"),
            };
            let froms: Vec<&str> = node.edges.iter().map(|e| e.from.as_str()).collect();
            let sources: Vec<String> = froms
                .iter()
                .map(|f| names.iter().position(|n| n == f).unwrap_or(0).to_string())
                .collect();
            let pad = INDENT.repeat(indent + 1);
            let _ = writeln!(
                self.out,
                "{pad}# {} = {join}({})",
                node.name,
                froms.join(", ")
            );
            self.out.push_str(&pad);
            let open = format!("Node(\"{kind}\", [{}],", sources.join(", "));
            self.children(&open, node.edges.iter().map(|e| &e.module), indent + 1);
            self.out.push_str(",\n");
            names.push(&node.name);
        }
        self.out.push_str(&INDENT.repeat(indent));
        self.out.push(')');
    }

    fn layer(&mut self, layer: &Layer) {
        match layer {
            Layer::Zero => self.helpers.zero = true,
            Layer::SqueezeExcitation(_) => self.helpers.squeeze_excitation = true,
            _ => self.out.push_str("nn."),
        }
        self.out.push_str(&layer_to_string(layer));
    }
}

/// `module`, checked for `input`, as a self-contained PyTorch file defining `build()` (see the
/// module docs). Its `state_dict()` has the names, shapes and order of
/// [`super::state_dict`]`(module, input)`.
pub fn to_pytorch(module: &Module, input: &InputSpec) -> Result<String, CheckError> {
    let resolved = check(module, input)?.resolved;
    let mut body = Writer {
        out: String::new(),
        helpers: Helpers::default(),
    };
    body.children("        super().__init__(", top_level(&resolved), 2);
    let h = &body.helpers;
    let mut out = HEADER.to_string();
    let _ = writeln!(
        out,
        "\n# Input: [batch, {}, {}, {}] float32 images; output: [batch, {}] class scores.",
        input.channels, input.height, input.width, input.classes
    );
    let _ = writeln!(
        out,
        "INPUT_SHAPE = ({}, {}, {})",
        input.channels, input.height, input.width
    );
    if h.add || h.concat || h.graph {
        out.push_str(JOIN);
    }
    for (used, code) in [
        (h.add, ADD),
        (h.concat, CONCAT),
        (h.graph, GRAPH),
        (h.zero, ZERO),
        (h.squeeze_excitation, SQUEEZE_EXCITATION),
    ] {
        if used {
            out.push_str(code);
        }
    }
    let _ = write!(
        out,
        "\n\nclass Network(nn.Sequential):\n    \"\"\"The exported architecture.\"\"\"\n\n    def __init__(self):\n{}\n",
        body.out
    );
    out.push_str(
        "\n\ndef build():\n    \"\"\"The network with PyTorch's default initialisation; load the exported weights into it.\"\"\"\n    return Network()\n",
    );
    out.push_str("\n\n# build().state_dict(): every name and shape.\nSTATE_DICT = {\n");
    for entry in state_dict(&resolved, input)? {
        let dims: Vec<String> = entry.shape.iter().map(usize::to_string).collect();
        let comma = if dims.len() == 1 { "," } else { "" };
        let _ = writeln!(out, "    \"{}\": ({}{comma}),", entry.name, dims.join(", "));
    }
    out.push_str("}\n");
    Ok(out)
}
