//! The architecture IR: a tree of modules whose `Graph` blocks hold named DAG nodes.

use serde::{Deserialize, Serialize};

/// A network, or any part of one: a function from a tensor to a tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    /// One layer.
    Layer(Layer),
    /// Modules applied one after the other (`Sequential(...)`).
    Sequential(Vec<Module>),
    /// Branches applied to the same input, joined by a sum (`Add(...)`, `Residual(...)`) or a
    /// channel concatenation (`Concat(...)`).
    Parallel {
        /// How the branch outputs are joined.
        join: Join,
        /// The branches.
        branches: Vec<Module>,
    },
    /// A DAG of named nodes (`Graph(...)`).
    Graph(Graph),
}

/// How several tensors become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    /// Element-wise sum; all shapes must be equal.
    Sum,
    /// Concatenation along channels; all other dimensions must be equal.
    Concat,
}

/// A DAG: node `i` joins edges from the graph's `input` or from earlier nodes; the last node is
/// the output. This is how a NAS-Bench-201 cell (nodes that sum their incoming edges) is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// The nodes, in evaluation order.
    pub nodes: Vec<Node>,
}

/// The name under which a graph's input is referred to.
pub const GRAPH_INPUT: &str = "input";

/// A named node of a [`Graph`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The node's name (unique in its graph, not `input`).
    pub name: String,
    /// How the edges are joined (irrelevant for a single edge).
    pub join: Join,
    /// The incoming edges.
    pub edges: Vec<Edge>,
}

/// A module applied to the output of a node (or of the graph's input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// The source node's name, or `input`.
    pub from: String,
    /// The operation on the edge.
    pub module: Module,
}

/// A layer with PyTorch's meaning. Widths left `None` are inferred from the previous layer, as
/// PyTorch's `LazyConv2d`, `LazyLinear` and `LazyBatchNorm2d` do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// `Conv2d` / `LazyConv2d`.
    Conv2d(Conv2d),
    /// `BatchNorm2d` / `LazyBatchNorm2d`.
    BatchNorm2d(BatchNorm2d),
    /// `Linear` / `LazyLinear`: acts on the last dimension.
    Linear(Linear),
    /// `MaxPool2d`.
    MaxPool2d(Pool2d),
    /// `AvgPool2d`.
    AvgPool2d(Pool2d),
    /// `AdaptiveAvgPool2d(output_size)`.
    AdaptiveAvgPool2d {
        /// Output height and width.
        output_size: [usize; 2],
    },
    /// `Dropout(p)` or `Dropout2d(p)`.
    Dropout {
        /// Drop probability.
        p: f64,
        /// Whether whole channels are dropped (`Dropout2d`).
        channels: bool,
    },
    /// `Flatten(start_dim=1, end_dim=-1)` (dimensions count the batch, as in PyTorch).
    Flatten {
        /// First dimension flattened.
        start_dim: i64,
        /// Last dimension flattened.
        end_dim: i64,
    },
    /// An element-wise (or, for softmax, per-row) activation.
    Activation(Activation),
    /// `Identity()`.
    Identity,
    /// `Zero()`: outputs zeros of the input's shape (NAS-Bench-201's `none`).
    Zero,
    /// torchvision's `SqueezeExcitation`: global pooling, two 1x1 convolutions (with biases)
    /// around a ReLU, a sigmoid, and a channel-wise scaling of the input.
    SqueezeExcitation(SqueezeExcitation),
}

/// A 2-D convolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv2d {
    /// Input channels; `None` when lazy.
    pub in_channels: Option<usize>,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel_size: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Padding.
    pub padding: Padding,
    /// Dilation.
    pub dilation: [usize; 2],
    /// Groups.
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

/// Convolution padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Explicit zero padding of height and width.
    Explicit([usize; 2]),
    /// `padding='same'` (stride 1 only).
    Same,
    /// `padding='valid'` (no padding).
    Valid,
}

/// Batch normalization over channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm2d {
    /// Channels; `None` when lazy.
    pub num_features: Option<usize>,
    /// Added to the variance.
    pub eps: f64,
    /// Running-statistics momentum.
    pub momentum: f64,
    /// Whether the layer has a learned scale and shift.
    pub affine: bool,
    /// Whether running statistics are kept (and used in eval mode).
    pub track_running_stats: bool,
}

/// A fully connected layer on the last dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    /// Input features; `None` when lazy.
    pub in_features: Option<usize>,
    /// Output features.
    pub out_features: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

/// A max or average pooling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool2d {
    /// Window height and width.
    pub kernel_size: [usize; 2],
    /// Stride (PyTorch's default: the kernel size).
    pub stride: [usize; 2],
    /// Implicit padding.
    pub padding: [usize; 2],
    /// Dilation (max pooling only; 1 for average pooling).
    pub dilation: [usize; 2],
    /// Whether output sizes round up.
    pub ceil_mode: bool,
    /// Whether padding counts in the average (average pooling only).
    pub count_include_pad: bool,
}

/// Activations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `ReLU()`.
    Relu,
    /// `ReLU6()`.
    Relu6,
    /// `LeakyReLU(negative_slope=0.01)`.
    LeakyRelu {
        /// Slope for negative inputs.
        negative_slope: f64,
    },
    /// `GELU(approximate='none'|'tanh')`.
    Gelu {
        /// Whether the tanh approximation is used.
        tanh: bool,
    },
    /// `SiLU()`.
    Silu,
    /// `Hardswish()`.
    Hardswish,
    /// `Sigmoid()`.
    Sigmoid,
    /// `Tanh()`.
    Tanh,
    /// `Softmax(dim)` or `LogSoftmax(dim)`.
    Softmax {
        /// The dimension (counting the batch).
        dim: i64,
        /// Whether the log is taken.
        log: bool,
    },
}

/// Squeeze-and-excitation with an explicit or inferred width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqueezeExcitation {
    /// Channels of the input; `None` when inferred.
    pub input_channels: Option<usize>,
    /// Width of the bottleneck.
    pub squeeze: Squeeze,
}

/// How the squeeze width of a [`SqueezeExcitation`] is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Squeeze {
    /// An explicit number of channels (`SqueezeExcitation(64, 16)`).
    Channels(usize),
    /// A reduction ratio of the input width (`SqueezeExcite(reduction=4)`; at least 1 channel).
    Reduction(usize),
}

impl Module {
    /// A sequence of layers.
    pub fn sequential(modules: impl IntoIterator<Item = Module>) -> Self {
        Module::Sequential(modules.into_iter().collect())
    }
}

impl From<Layer> for Module {
    fn from(layer: Layer) -> Self {
        Module::Layer(layer)
    }
}
