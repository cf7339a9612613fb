//! A macro CNN search space: a stack of stages, each with its own depth, width, kernel size,
//! downsampling and block type.
//!
//! The code layout of a [`MacroCnnSpace`] with `S` = the largest allowed number of stages is
//!
//! | position | dimension             | choices                         |
//! |----------|-----------------------|---------------------------------|
//! | 0        | `stages`              | [`MacroCnnSpace::num_stages`]   |
//! | 1 + 5s   | `stage{s}_depth`      | [`MacroCnnSpace::depths`]       |
//! | 2 + 5s   | `stage{s}_width`      | [`MacroCnnSpace::widths`]       |
//! | 3 + 5s   | `stage{s}_kernel`     | [`MacroCnnSpace::kernels`]      |
//! | 4 + 5s   | `stage{s}_downsample` | [`MacroCnnSpace::downsamples`]  |
//! | 5 + 5s   | `stage{s}_block`      | [`MacroCnnSpace::blocks`]       |
//!
//! for `s` in `0..S` (stages are numbered from 0). The dimensions of stage `s` are conditional:
//! active only when the chosen number of stages exceeds `s`, so a canonical code holds 0 at
//! every position of an unused stage.
//!
//! ```
//! use arch_space::macro_cnn::{BlockType, MacroCnnSpace};
//!
//! let cnn_space = MacroCnnSpace::default();
//! let space = cnn_space.space().unwrap();
//! let code = space.parse("121011000000000000000").unwrap();
//! // 2 stages; stage 0: depth 3, width 32, kernel 3, stride-2 downsampling, residual blocks;
//! // stage 1: depth 1, width 16, kernel 3, no downsampling, plain blocks.
//! let cnn = cnn_space.decode(&code).unwrap();
//! assert_eq!(cnn.stages.len(), 2);
//! assert_eq!(cnn.stages[0].width, 32);
//! assert_eq!(cnn.stages[0].block, BlockType::Residual);
//! assert_eq!(cnn_space.encode(&cnn).unwrap(), code);
//! ```

use std::fmt;

use ncode::{Dimension, NCode, SearchSpace};
use serde::{Deserialize, Serialize};

use crate::choices::{check_choices, choice_index};
use crate::lang::{
    activation, add, avg_pool, batch_norm, classifier, conv, grouped_conv, max_pool,
    squeeze_excitation, Activation, Layer, Module,
};
use crate::ArchSpaceError;

/// Number of code positions per stage (depth, width, kernel, downsample, block).
const PER_STAGE: usize = 5;

/// How a stage reduces the spatial resolution before its first block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Downsample {
    /// Keep the resolution.
    None,
    /// The first block's first `k x k` convolution has stride 2 (see [`MacroCnn::module`]).
    Stride2,
    /// A 2x2 max pooling with stride 2 before the first block.
    #[serde(rename = "maxpool")]
    MaxPool,
    /// A 2x2 average pooling with stride 2 before the first block.
    #[serde(rename = "avgpool")]
    AvgPool,
}

impl Downsample {
    /// Every variant, in the default choice order.
    pub const ALL: [Downsample; 4] = [
        Downsample::None,
        Downsample::Stride2,
        Downsample::MaxPool,
        Downsample::AvgPool,
    ];

    /// The label used in the search space (and by serde): `none`, `stride2`, `maxpool`, `avgpool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Downsample::None => "none",
            Downsample::Stride2 => "stride2",
            Downsample::MaxPool => "maxpool",
            Downsample::AvgPool => "avgpool",
        }
    }
}

impl fmt::Display for Downsample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The block every layer of a stage is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockType {
    /// Convolution, batch norm, ReLU.
    Plain,
    /// A ResNet basic block: two convolutions with an identity (or projection) shortcut.
    Residual,
    /// A ResNet bottleneck block: 1x1 reduce, kxk, 1x1 expand, with a shortcut.
    Bottleneck,
    /// A MobileNetV2 block: 1x1 expand, depthwise kxk, 1x1 linear projection, with a shortcut.
    InvertedResidual,
    /// A residual basic block with squeeze-and-excitation channel gating.
    Se,
}

impl BlockType {
    /// Every variant, in the default choice order.
    pub const ALL: [BlockType; 5] = [
        BlockType::Plain,
        BlockType::Residual,
        BlockType::Bottleneck,
        BlockType::InvertedResidual,
        BlockType::Se,
    ];

    /// The label used in the search space (and by serde): `plain`, `residual`, `bottleneck`,
    /// `inverted_residual`, `se`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockType::Plain => "plain",
            BlockType::Residual => "residual",
            BlockType::Bottleneck => "bottleneck",
            BlockType::InvertedResidual => "inverted_residual",
            BlockType::Se => "se",
        }
    }
}

impl fmt::Display for BlockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stage of a [`MacroCnn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stage {
    /// Number of blocks.
    pub depth: u32,
    /// Output channels of every block.
    pub width: u32,
    /// Spatial kernel size of the blocks' main convolutions.
    pub kernel: u32,
    /// Resolution reduction at the start of the stage.
    pub downsample: Downsample,
    /// Block type.
    pub block: BlockType,
}

/// A decoded macro CNN: its stages, first to last (only the stages in use).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MacroCnn {
    /// The stages, input side first.
    pub stages: Vec<Stage>,
}

impl MacroCnn {
    /// The network in the architecture IR, for `input_channels`-channel images and `classes`
    /// classes (what the trainer builds and what [`crate::lang::check`] counts).
    ///
    /// * Stem: `Conv2d(input_channels, w0, 3, padding=1, bias=False)`, `BatchNorm2d(w0)`,
    ///   `ReLU()`, where `w0` is the first stage's width.
    /// * Each stage, in a `Sequential`: its downsampling, then `depth` blocks of its type at its
    ///   width and kernel size `k` (every `k x k` convolution is padded by `k / 2`).
    ///   [`Downsample::MaxPool`] / [`Downsample::AvgPool`] put a 2x2 pooling with stride 2
    ///   before the first block; [`Downsample::Stride2`] gives stride 2 to the first block's
    ///   first `k x k` convolution (its first convolution, except in bottleneck and inverted
    ///   residual blocks, whose stride sits on the spatial convolution as in ResNet v1.5 and
    ///   MobileNetV2).
    /// * Head: `AdaptiveAvgPool2d(1)`, `Flatten()`, `Linear(last width, classes)`.
    ///
    /// Convolutions followed by a batch norm have no bias. The blocks, from `cin` to `w`
    /// channels with stride `s`:
    ///
    /// * [`BlockType::Plain`]: `Conv2d(cin, w, k, s)`, `BatchNorm2d`, `ReLU`.
    /// * [`BlockType::Residual`]: `Add(Sequential(Conv2d(cin, w, k, s), BatchNorm2d, ReLU,
    ///   Conv2d(w, w, k), BatchNorm2d), shortcut)`, `ReLU`; the shortcut is `Identity()` when
    ///   the shape is kept and `Conv2d(cin, w, 1, s)`, `BatchNorm2d` otherwise.
    /// * [`BlockType::Bottleneck`]: the same with the body `1x1 (cin -> w/4)`, `k x k (stride
    ///   s)`, `1x1 (w/4 -> w)`, each followed by `BatchNorm2d` and all but the last by `ReLU`
    ///   (the reduced width is at least 1).
    /// * [`BlockType::InvertedResidual`]: `1x1 (cin -> 4 cin)`, `BatchNorm2d`, `ReLU6`,
    ///   depthwise `k x k` (stride s, `groups = 4 cin`), `BatchNorm2d`, `ReLU6`,
    ///   `1x1 (4 cin -> w)`, `BatchNorm2d`; added to the input only when the shape is kept
    ///   (no activation after the sum: MobileNetV2's linear bottleneck).
    /// * [`BlockType::Se`]: the residual block with `SqueezeExcitation(w, max(w/4, 1))` at the
    ///   end of its body, before the sum.
    ///
    /// ```
    /// use arch_space::lang::{check, InputSpec};
    /// use arch_space::macro_cnn::{BlockType, Downsample, MacroCnn, Stage};
    ///
    /// let cnn = MacroCnn {
    ///     stages: vec![Stage {
    ///         depth: 1,
    ///         width: 16,
    ///         kernel: 3,
    ///         downsample: Downsample::None,
    ///         block: BlockType::Plain,
    ///     }],
    /// };
    /// let analysis = check(&cnn.module(3, 10), &InputSpec::cifar10()).unwrap();
    /// // Stem conv + BN, block conv + BN, classifier.
    /// assert_eq!(analysis.params, 3 * 16 * 9 + 32 + 16 * 16 * 9 + 32 + 16 * 10 + 10);
    /// ```
    pub fn module(&self, input_channels: usize, classes: usize) -> Module {
        let width = |stage: &Stage| stage.width as usize;
        let first = self.stages.first().map_or(input_channels, width);
        let mut layers = vec![
            conv(input_channels, first, 3, 1, 1),
            batch_norm(first),
            activation(Activation::Relu),
        ];
        let mut cin = first;
        for stage in &self.stages {
            let mut items = Vec::new();
            let mut stride = 1;
            match stage.downsample {
                Downsample::None => {}
                Downsample::Stride2 => stride = 2,
                Downsample::MaxPool => items.push(max_pool(2, 2, 0)),
                Downsample::AvgPool => items.push(avg_pool(2, 2, 0, true)),
            }
            for _ in 0..stage.depth {
                items.push(block(
                    stage.block,
                    cin,
                    width(stage),
                    stage.kernel as usize,
                    stride,
                ));
                cin = width(stage);
                stride = 1;
            }
            layers.push(Module::Sequential(items));
        }
        layers.extend(classifier(cin, classes));
        Module::Sequential(layers)
    }
}

/// One block of type `block` from `cin` to `w` channels with kernel `k` and stride `s`.
fn block(block: BlockType, cin: usize, w: usize, k: usize, s: usize) -> Module {
    let relu = || activation(Activation::Relu);
    let relu6 = || activation(Activation::Relu6);
    let keeps_shape = cin == w && s == 1;
    let shortcut = || {
        if keeps_shape {
            Module::Layer(Layer::Identity)
        } else {
            Module::sequential([conv(cin, w, 1, s, 0), batch_norm(w)])
        }
    };
    let basic_body = || {
        vec![
            conv(cin, w, k, s, k / 2),
            batch_norm(w),
            relu(),
            conv(w, w, k, 1, k / 2),
            batch_norm(w),
        ]
    };
    match block {
        BlockType::Plain => Module::sequential([conv(cin, w, k, s, k / 2), batch_norm(w), relu()]),
        BlockType::Residual => {
            Module::sequential([add(Module::Sequential(basic_body()), shortcut()), relu()])
        }
        BlockType::Se => {
            let mut body = basic_body();
            body.push(squeeze_excitation(w, (w / 4).max(1)));
            Module::sequential([add(Module::Sequential(body), shortcut()), relu()])
        }
        BlockType::Bottleneck => {
            let mid = (w / 4).max(1);
            let body = Module::sequential([
                conv(cin, mid, 1, 1, 0),
                batch_norm(mid),
                relu(),
                conv(mid, mid, k, s, k / 2),
                batch_norm(mid),
                relu(),
                conv(mid, w, 1, 1, 0),
                batch_norm(w),
            ]);
            Module::sequential([add(body, shortcut()), relu()])
        }
        BlockType::InvertedResidual => {
            let hidden = 4 * cin;
            let body = Module::sequential([
                conv(cin, hidden, 1, 1, 0),
                batch_norm(hidden),
                relu6(),
                grouped_conv(hidden, hidden, k, s, k / 2, hidden),
                batch_norm(hidden),
                relu6(),
                conv(hidden, w, 1, 1, 0),
                batch_norm(w),
            ]);
            if keeps_shape {
                add(body, Module::Layer(Layer::Identity))
            } else {
                body
            }
        }
    }
}

/// The choices of a macro CNN space (see the [module documentation](self) for the code layout).
///
/// Every list must be non-empty and free of repeats, and numbers must be positive.
/// [`Default`] is a CIFAR-sized space: 1 to 4 stages of depth 1 to 3, widths 16 to 256,
/// kernels 3/5/7, every [`Downsample`] and every [`BlockType`]. Missing fields in a serialized
/// configuration take their default values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MacroCnnSpace {
    /// Allowed numbers of stages.
    pub num_stages: Vec<usize>,
    /// Allowed stage depths (blocks per stage).
    pub depths: Vec<u32>,
    /// Allowed stage widths (channels).
    pub widths: Vec<u32>,
    /// Allowed kernel sizes.
    pub kernels: Vec<u32>,
    /// Allowed downsampling modes.
    pub downsamples: Vec<Downsample>,
    /// Allowed block types.
    pub blocks: Vec<BlockType>,
}

impl Default for MacroCnnSpace {
    fn default() -> Self {
        MacroCnnSpace {
            num_stages: vec![1, 2, 3, 4],
            depths: vec![1, 2, 3],
            widths: vec![16, 32, 64, 128, 256],
            kernels: vec![3, 5, 7],
            downsamples: Downsample::ALL.to_vec(),
            blocks: BlockType::ALL.to_vec(),
        }
    }
}

impl MacroCnnSpace {
    /// The search space, named `macro_cnn`; fails with [`ArchSpaceError::Config`] on an empty or
    /// repeating choice list or a zero number.
    pub fn space(&self) -> Result<SearchSpace, ArchSpaceError> {
        check_choices("num_stages", &self.num_stages)?;
        check_choices("depths", &self.depths)?;
        check_choices("widths", &self.widths)?;
        check_choices("kernels", &self.kernels)?;
        check_choices("downsamples", &self.downsamples)?;
        check_choices("blocks", &self.blocks)?;
        if self.num_stages.contains(&0)
            || self.depths.contains(&0)
            || self.widths.contains(&0)
            || self.kernels.contains(&0)
        {
            return Err(ArchSpaceError::Config(
                "numbers of stages, depths, widths and kernels must be positive".into(),
            ));
        }
        let ints = |values: &[u32]| values.iter().map(|&v| i64::from(v)).collect::<Vec<_>>();
        let max_stages = self.num_stages.iter().copied().max().unwrap_or(0);
        let mut dims = vec![Dimension::ints(
            "stages",
            self.num_stages.iter().map(|&n| n as i64),
        )];
        for s in 0..max_stages {
            let active: Vec<usize> = (0..self.num_stages.len())
                .filter(|&i| self.num_stages[i] > s)
                .collect();
            let stage_dims = [
                Dimension::ints(format!("stage{s}_depth"), ints(&self.depths)),
                Dimension::ints(format!("stage{s}_width"), ints(&self.widths)),
                Dimension::ints(format!("stage{s}_kernel"), ints(&self.kernels)),
                Dimension::labels(
                    format!("stage{s}_downsample"),
                    self.downsamples.iter().map(|d| d.as_str()),
                ),
                Dimension::labels(
                    format!("stage{s}_block"),
                    self.blocks.iter().map(|b| b.as_str()),
                ),
            ];
            dims.extend(stage_dims.map(|d| d.active_when(0, active.clone())));
        }
        Ok(SearchSpace::new("macro_cnn", dims)?)
    }

    /// The network a code denotes; fails when the code does not fit [`MacroCnnSpace::space`].
    /// Inactive positions are ignored, so a non-canonical code decodes like its canonical form.
    pub fn decode(&self, code: &NCode) -> Result<MacroCnn, ArchSpaceError> {
        self.space()?.check(code)?;
        let stages = (0..self.num_stages[code.index(0)])
            .map(|s| {
                let at = |field: usize| code.index(1 + PER_STAGE * s + field);
                Stage {
                    depth: self.depths[at(0)],
                    width: self.widths[at(1)],
                    kernel: self.kernels[at(2)],
                    downsample: self.downsamples[at(3)],
                    block: self.blocks[at(4)],
                }
            })
            .collect();
        Ok(MacroCnn { stages })
    }

    /// The canonical code of a network; fails with [`ArchSpaceError::Config`], naming the stage
    /// and the value, when a value is not among the choices.
    pub fn encode(&self, cnn: &MacroCnn) -> Result<NCode, ArchSpaceError> {
        let space = self.space()?;
        let mut code = NCode::zeros(space.len());
        code.set(
            0,
            choice_index("number of stages", &self.num_stages, &cnn.stages.len())?,
        );
        for (s, stage) in cnn.stages.iter().enumerate() {
            let base = 1 + PER_STAGE * s;
            let what = |field: &str| format!("stage {s}: {field}");
            code.set(
                base,
                choice_index(&what("depth"), &self.depths, &stage.depth)?,
            );
            code.set(
                base + 1,
                choice_index(&what("width"), &self.widths, &stage.width)?,
            );
            code.set(
                base + 2,
                choice_index(&what("kernel"), &self.kernels, &stage.kernel)?,
            );
            code.set(
                base + 3,
                choice_index(&what("downsample"), &self.downsamples, &stage.downsample)?,
            );
            code.set(
                base + 4,
                choice_index(&what("block"), &self.blocks, &stage.block)?,
            );
        }
        Ok(code)
    }
}
