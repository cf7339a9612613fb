//! The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020; NATS-Bench topology space, TPAMI 2021).
//!
//! A cell is a DAG over 4 nodes; each of the 6 edges `j -> i` (`j < i`) carries one of 5
//! operations. The NCode has one digit per edge in the order of the official `arch_str`
//! (`1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2`) and one index per operation in [`Nb201Op::ALL`]'s order,
//! so `|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|`
//! is `333132`, official index 6111.
//!
//! The official index order is not a mixed-radix order (it is the order of the benchmark's own
//! file); it is embedded here, taken from the shipped table and checked against it in the tests.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use ncode::{Dimension, NCode, SearchSpace};
use serde::{Deserialize, Serialize};

use crate::lang::{
    activation, add, avg_pool, batch_norm, classifier, conv, Activation, Edge, Graph, Join, Layer,
    Module, Node, GRAPH_INPUT,
};
use crate::ArchSpaceError;

/// Number of architectures in the space (5^6).
pub const NUM_ARCHS: usize = 15_625;

/// The edges `(to, from)` in NCode and `arch_str` order.
pub const EDGES: [(usize, usize); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];

/// One operation of a NAS-Bench-201 edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nb201Op {
    /// Zero: the edge is absent.
    None,
    /// Identity.
    SkipConnect,
    /// ReLU - 1x1 conv - BatchNorm.
    #[serde(rename = "nor_conv_1x1")]
    NorConv1x1,
    /// ReLU - 3x3 conv - BatchNorm.
    #[serde(rename = "nor_conv_3x3")]
    NorConv3x3,
    /// 3x3 average pooling (stride 1, padding 1).
    #[serde(rename = "avg_pool_3x3")]
    AvgPool3x3,
}

impl Nb201Op {
    /// All operations in NCode index order.
    pub const ALL: [Nb201Op; 5] = [
        Nb201Op::None,
        Nb201Op::SkipConnect,
        Nb201Op::NorConv1x1,
        Nb201Op::NorConv3x3,
        Nb201Op::AvgPool3x3,
    ];

    /// The official name, as in `arch_str`.
    pub fn name(self) -> &'static str {
        match self {
            Nb201Op::None => "none",
            Nb201Op::SkipConnect => "skip_connect",
            Nb201Op::NorConv1x1 => "nor_conv_1x1",
            Nb201Op::NorConv3x3 => "nor_conv_3x3",
            Nb201Op::AvgPool3x3 => "avg_pool_3x3",
        }
    }

    /// The operation of an official name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// NCode index of the operation.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|&op| op == self).unwrap_or(0)
    }

    /// Kernel size of the convolution, if the operation is one.
    fn conv_kernel(self) -> Option<usize> {
        match self {
            Nb201Op::NorConv1x1 => Some(1),
            Nb201Op::NorConv3x3 => Some(3),
            _ => None,
        }
    }
}

/// The NCode search space of NAS-Bench-201 cells (6 dimensions `edge_1<-0` ... of 5 labels).
pub fn space() -> &'static SearchSpace {
    static SPACE: OnceLock<SearchSpace> = OnceLock::new();
    SPACE.get_or_init(|| {
        let dims = EDGES
            .iter()
            .map(|(to, from)| {
                Dimension::labels(
                    format!("edge_{to}<-{from}"),
                    Nb201Op::ALL.map(Nb201Op::name),
                )
            })
            .collect();
        SearchSpace::new("nas-bench-201", dims).expect("the NAS-Bench-201 space is valid")
    })
}

/// Official index -> mixed-radix rank, and its inverse.
fn official_order() -> &'static (Vec<u16>, Vec<u16>) {
    static ORDER: OnceLock<(Vec<u16>, Vec<u16>)> = OnceLock::new();
    ORDER.get_or_init(|| {
        let text = include_str!("../data/nb201_official_order.txt");
        let to_rank: Vec<u16> = text
            .lines()
            .map(|line| {
                line.bytes()
                    .fold(0u16, |acc, digit| acc * 5 + u16::from(digit - b'0'))
            })
            .collect();
        let mut to_index = vec![0u16; to_rank.len()];
        for (index, &rank) in to_rank.iter().enumerate() {
            to_index[usize::from(rank)] = index as u16;
        }
        (to_rank, to_index)
    })
}

/// A NAS-Bench-201 cell: one operation per edge, in [`EDGES`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Nb201Cell {
    /// The operation on each edge.
    pub ops: [Nb201Op; 6],
}

impl Nb201Cell {
    /// Parses an official `arch_str` such as `|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|`.
    pub fn from_arch_str(text: &str) -> Result<Self, ArchSpaceError> {
        let err = |reason: String| ArchSpaceError::ArchStr {
            text: text.to_string(),
            reason,
        };
        let nodes: Vec<&str> = text.trim().split('+').collect();
        if nodes.len() != 3 {
            return Err(err(format!(
                "expected 3 nodes separated by `+`, found {}",
                nodes.len()
            )));
        }
        let mut ops = [Nb201Op::None; 6];
        let mut edge = 0;
        for (node, part) in nodes.iter().enumerate() {
            let inner = part
                .strip_prefix('|')
                .and_then(|p| p.strip_suffix('|'))
                .ok_or_else(|| err(format!("node {} must be enclosed in `|...|`", node + 1)))?;
            let edges: Vec<&str> = inner.split('|').collect();
            if edges.len() != node + 1 {
                return Err(err(format!(
                    "node {} needs {} incoming edges, found {}",
                    node + 1,
                    node + 1,
                    edges.len()
                )));
            }
            for (from, item) in edges.iter().enumerate() {
                let (name, source) = item
                    .split_once('~')
                    .ok_or_else(|| err(format!("edge `{item}` lacks `~source`")))?;
                if source != from.to_string() {
                    return Err(err(format!(
                        "edge `{item}` of node {} should come from node {from}",
                        node + 1
                    )));
                }
                ops[edge] = Nb201Op::from_name(name)
                    .ok_or_else(|| err(format!("unknown operation `{name}`")))?;
                edge += 1;
            }
        }
        Ok(Nb201Cell { ops })
    }

    /// The official `arch_str`.
    pub fn arch_str(&self) -> String {
        let mut out = String::new();
        for node in 1..=3 {
            if node > 1 {
                out.push('+');
            }
            out.push('|');
            for (e, (to, from)) in EDGES.iter().enumerate() {
                if *to == node {
                    out.push_str(&format!("{}~{from}|", self.ops[e].name()));
                }
            }
        }
        out
    }

    /// The cell of an NCode of [`space()`].
    pub fn from_ncode(code: &NCode) -> Result<Self, ArchSpaceError> {
        space().check(code)?;
        let mut ops = [Nb201Op::None; 6];
        for (e, op) in ops.iter_mut().enumerate() {
            *op = Nb201Op::ALL[code.index(e)];
        }
        Ok(Nb201Cell { ops })
    }

    /// The NCode of this cell.
    pub fn ncode(&self) -> NCode {
        NCode::new(self.ops.iter().map(|op| op.index() as u16).collect())
    }

    /// The official benchmark index (0..15625).
    pub fn index(&self) -> usize {
        let rank = space().rank(&self.ncode()) as usize;
        usize::from(official_order().1[rank])
    }

    /// The cell at an official benchmark index.
    pub fn from_index(index: usize) -> Result<Self, ArchSpaceError> {
        let rank = official_order()
            .0
            .get(index)
            .ok_or(ArchSpaceError::IndexOutOfRange(index))?;
        let code = space()
            .unrank(u128::from(*rank))
            .ok_or(ArchSpaceError::IndexOutOfRange(index))?;
        Self::from_ncode(&code)
    }
}

impl fmt::Display for Nb201Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arch_str())
    }
}

impl FromStr for Nb201Cell {
    type Err = ArchSpaceError;
    fn from_str(s: &str) -> Result<Self, ArchSpaceError> {
        Self::from_arch_str(s)
    }
}

/// The macro network around the cells (NAS-Bench-201's `TinyNetwork`): a 3x3 conv stem, three
/// stages of `cells_per_stage` cells at `channels`, 2x and 4x width, separated by ResNet basic
/// blocks with stride 2, then BatchNorm-ReLU, global average pooling and a linear classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nb201Network {
    /// Channels of the first stage (16 in the benchmark).
    pub channels: usize,
    /// Cells per stage (5 in the benchmark).
    pub cells_per_stage: usize,
    /// Input height and width (32 for CIFAR, 16 for ImageNet16-120).
    pub input_size: usize,
    /// Number of classes.
    pub classes: usize,
}

impl Nb201Network {
    /// The benchmark's CIFAR-10 network.
    pub fn cifar10() -> Self {
        Nb201Network {
            channels: 16,
            cells_per_stage: 5,
            input_size: 32,
            classes: 10,
        }
    }

    /// The benchmark's CIFAR-100 network.
    pub fn cifar100() -> Self {
        Nb201Network {
            classes: 100,
            ..Self::cifar10()
        }
    }

    /// The benchmark's ImageNet16-120 network.
    pub fn imagenet16_120() -> Self {
        Nb201Network {
            input_size: 16,
            classes: 120,
            ..Self::cifar10()
        }
    }

    /// Trainable parameters (BatchNorm affine weights included, running statistics excluded),
    /// as the benchmark's `params` (which is this divided by 10^6).
    pub fn params(&self, cell: &Nb201Cell) -> u64 {
        self.count(cell).0
    }

    /// Multiply-accumulates of one forward pass of one image, convolutions and the classifier
    /// (with its bias) only, as the benchmark's `flops` (which is this divided by 10^6).
    pub fn flops(&self, cell: &Nb201Cell) -> u64 {
        self.count(cell).1
    }

    /// (params, flops), walking the network stage by stage.
    fn count(&self, cell: &Nb201Cell) -> (u64, u64) {
        let conv = |cin: usize, cout: usize, k: usize, out_hw: usize| {
            (
                (cin * cout * k * k) as u64,
                (cin * cout * k * k * out_hw * out_hw) as u64,
            )
        };
        let bn = |c: usize| 2 * c as u64;
        let c = self.channels;
        let (mut params, mut flops) = conv(3, c, 3, self.input_size);
        params += bn(c);
        let mut hw = self.input_size;
        for stage in 0..3 {
            let width = c << stage;
            if stage > 0 {
                // ResNet basic block, stride 2: ReLUConvBN 3x3 s2, ReLUConvBN 3x3, and a shortcut
                // of 2x2 average pooling (not counted, as in the benchmark) and a 1x1 conv.
                let cin = width / 2;
                hw = hw.div_ceil(2);
                for (p, f) in [
                    conv(cin, width, 3, hw),
                    conv(width, width, 3, hw),
                    conv(cin, width, 1, hw),
                ] {
                    params += p;
                    flops += f;
                }
                params += 2 * bn(width);
            }
            for op in cell.ops {
                if let Some(k) = op.conv_kernel() {
                    let (p, f) = conv(width, width, k, hw);
                    params += (p + bn(width)) * self.cells_per_stage as u64;
                    flops += f * self.cells_per_stage as u64;
                }
            }
        }
        let last = c << 2;
        params += bn(last) + (last * self.classes + self.classes) as u64;
        flops += (last * self.classes + self.classes) as u64;
        (params, flops)
    }
}

/// NAS-Bench-201's `ReLUConvBN`.
fn relu_conv_bn(cin: usize, cout: usize, kernel: usize, stride: usize) -> Module {
    Module::sequential([
        activation(Activation::Relu),
        conv(cin, cout, kernel, stride, kernel / 2),
        batch_norm(cout),
    ])
}

impl Nb201Op {
    /// The operation as a module on `channels` channels (`None` for `none`: the edge is absent).
    pub fn module(self, channels: usize) -> Option<Module> {
        match self {
            Nb201Op::None => None,
            Nb201Op::SkipConnect => Some(Module::Layer(Layer::Identity)),
            Nb201Op::NorConv1x1 => Some(relu_conv_bn(channels, channels, 1, 1)),
            Nb201Op::NorConv3x3 => Some(relu_conv_bn(channels, channels, 3, 1)),
            Nb201Op::AvgPool3x3 => Some(avg_pool(3, 1, 1, false)),
        }
    }
}

impl Nb201Cell {
    /// The cell as a graph module: node `i` sums its incoming edges; a node whose edges are all
    /// `none` is `Zero()`.
    pub fn module(&self, channels: usize) -> Module {
        let name = |node: usize| match node {
            0 => GRAPH_INPUT.to_string(),
            n => format!("node{n}"),
        };
        let nodes = (1..=3)
            .map(|to| {
                let mut edges: Vec<Edge> = EDGES
                    .iter()
                    .zip(self.ops)
                    .filter(|((t, _), _)| *t == to)
                    .filter_map(|((_, from), op)| {
                        op.module(channels).map(|module| Edge {
                            from: name(*from),
                            module,
                        })
                    })
                    .collect();
                if edges.is_empty() {
                    edges.push(Edge {
                        from: GRAPH_INPUT.into(),
                        module: Module::Layer(Layer::Zero),
                    });
                }
                Node {
                    name: name(to),
                    join: Join::Sum,
                    edges,
                }
            })
            .collect();
        Module::Graph(Graph { nodes })
    }
}

impl Nb201Network {
    /// The whole network in the architecture IR (what [`Nb201Network::params`] and
    /// [`Nb201Network::flops`] count analytically).
    pub fn module(&self, cell: &Nb201Cell) -> Module {
        let c = self.channels;
        let mut layers = vec![conv(3, c, 3, 1, 1), batch_norm(c)];
        for stage in 0..3 {
            let width = c << stage;
            if stage > 0 {
                // ResNet basic block with stride 2 and an average-pooling shortcut.
                let cin = width / 2;
                layers.push(add(
                    Module::sequential([
                        relu_conv_bn(cin, width, 3, 2),
                        relu_conv_bn(width, width, 3, 1),
                    ]),
                    Module::sequential([avg_pool(2, 2, 0, true), conv(cin, width, 1, 1, 0)]),
                ));
            }
            layers.extend((0..self.cells_per_stage).map(|_| cell.module(width)));
        }
        let last = c << 2;
        layers.extend([batch_norm(last), activation(Activation::Relu)]);
        layers.extend(classifier(last, self.classes));
        Module::Sequential(layers)
    }
}
