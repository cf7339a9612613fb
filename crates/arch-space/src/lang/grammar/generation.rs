//! The grammar the closed loop's Code Generator answers in: lazy widths, feature-map sizes
//! tracked from rule to rule, the class count pinned, the layout written out and the length
//! bounded.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::super::check::spatial;
use super::super::InputSpec;
use super::length::max_len_in;
use super::{choice, lit, opt, repeat, rule, Grammar, GrammarError, Item, Rule, Skip, Terminal};

/// Choices of [`generation_grammar_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationOptions {
    /// The channel counts a residual block chooses from where one count is written twice and
    /// must match: the body's last convolution and the shortcut, and an inverted residual's
    /// expansion and depthwise convolution (`groups=` that count).
    pub channels: Vec<usize>,
    /// The widest free convolution or hidden `LazyLinear` (any integer from 1).
    pub max_width: u64,
    /// The most layers of the network before its head (`AdaptiveAvgPool2d`/`Flatten` and the
    /// classifier), whatever their feature-map size. One layer stands for the longest text of
    /// a layer and a block weighs as many layers as its longest text takes (with the default
    /// channels and width, 7 for a residual block, 9 for an inverted residual, up to 8 for a
    /// `Concat`), so this bounds the length of a reply: see [`Grammar::max_len`].
    pub max_layers: usize,
}

impl Default for GenerationOptions {
    /// Channels 16, 24, 32, 48, 64, 96, 128, 160, 192, 256; widths up to 512; 30 layers before
    /// the head, which keeps every CIFAR-10 reply under 3000 bytes.
    fn default() -> Self {
        GenerationOptions {
            channels: vec![16, 24, 32, 48, 64, 96, 128, 160, 192, 256],
            max_width: 512,
            max_layers: 30,
        }
    }
}

/// The module prefix a name may carry in a generated reply.
const PREFIX: &str = "nn.";

/// Convolution kernel sizes (odd, so that `padding = k // 2` keeps the size).
const KERNELS: [usize; 4] = [1, 3, 5, 7];

/// Import lines a reply may start with.
const IMPORTS: [&str; 3] = [
    "import torch\n",
    "import torch.nn as nn\n",
    "from torch import nn\n",
];

/// The most spaces that indent a line.
const INDENT: usize = 16;

/// The most branches of a `Concat`.
const BRANCHES: usize = 3;

/// The most layers of a `Concat` branch.
const BRANCH_LAYERS: usize = 2;

/// The most hidden layers of the classifier.
const HIDDEN: usize = 4;

/// [`generation_grammar_with`] the default options.
pub fn generation_grammar(input: &InputSpec) -> Result<Grammar, GrammarError> {
    generation_grammar_with(input, &GenerationOptions::default())
}

/// The grammar of a Code Generator reply for `input`: exactly one ```` ```python ```` block
/// holding optional `import` lines, an optional `model = ` and one `Sequential(...)` of lazy
/// layers and blocks, names with or without `nn.`, ending with `LazyLinear(classes)`.
///
/// Every text of the grammar parses, passes [`Program::check`](super::super::Program::check)
/// for `input` and outputs `input.classes` scores: widths are lazy (`LazyConv2d`,
/// `LazyBatchNorm2d`, `LazyLinear`), so no channel count can mismatch, except where a
/// residual block writes one twice, and there one rule per count repeats it. The feature-map
/// size is tracked by rules per size reachable from the input (`feat_32x32_...`,
/// `feat_16x16_...`) and the layers that keep it (`layer_k7` where a 7x7 kernel fits, down to
/// `layer_k1`): convolutions keep it (`padding = k // 2` or `'same'`, no kernel wider
/// than the map); pooling, strided convolutions and strided residual blocks move to the
/// smaller size they produce, only while the map is at least 2x2, and none makes a kernel
/// wider than its map. The head is `AdaptiveAvgPool2d(1), Flatten()` (or a bare `Flatten()`
/// on maps of at most 16 pixels), up to four hidden `LazyLinear`/activation/`Dropout`
/// layers, and `LazyLinear(classes)`.
///
/// The layout is written out, with no whitespace elsewhere: one optional space after a comma
/// between arguments; between two modules a comma and one space or one line break indented by
/// up to 16 spaces; an optional line break after a block's `(` and before its `)`, which may
/// follow a trailing comma; the closing fence on a line of its own. The rules `feat_S_n`
/// count the layers left ([`GenerationOptions::max_layers`], a block weighing more than one),
/// so every text has a bounded length ([`Grammar::max_len`]) and a model cannot write forever.
///
/// Fails on an input with a zero size or class count, or on options without channels or
/// with a zero width.
pub fn generation_grammar_with(
    input: &InputSpec,
    options: &GenerationOptions,
) -> Result<Grammar, GrammarError> {
    let InputSpec {
        channels,
        height,
        width,
        classes,
    } = *input;
    if [channels, height, width, classes].contains(&0) {
        return Err(GrammarError::new(format!(
            "no network can serve the input {channels}x{height}x{width} with {classes} classes"
        )));
    }
    if options.channels.is_empty() || options.channels.contains(&0) || options.max_width == 0 {
        return Err(GrammarError::new(format!(
            "the generation options need positive channel counts and width: {options:?}"
        )));
    }
    let channel_set: BTreeSet<usize> = options.channels.iter().copied().collect();
    let mut b = Builder {
        rules: Vec::new(),
        channels: channel_set.into_iter().collect(),
        unit: 0,
        weights: HashMap::new(),
    };
    let first = Size {
        h: height,
        w: width,
    };
    let imports = repeat(
        vec![choice(IMPORTS.iter().map(|i| vec![lit(i)]).collect())],
        1,
        Some(IMPORTS.len()),
    );
    b.add(
        "start",
        vec![[
            vec![
                lit("```python\n"),
                opt(vec![imports, opt(vec![lit("\n")])]),
                opt(vec![lit("model = ")]),
            ],
            open_block("Sequential"),
            vec![
                rule(&feat(first, options.max_layers)),
                rule("close"),
                lit("\n```"),
            ],
        ]
        .concat()],
    );
    b.shared(options.max_width, classes);
    b.stages(first, options.max_layers);
    Ok(Grammar {
        rules: b.rules,
        skip: Skip::None,
    })
}

/// A feature-map size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Size {
    h: usize,
    w: usize,
}

impl Size {
    fn name(self) -> String {
        format!("{}x{}", self.h, self.w)
    }

    fn min(self) -> usize {
        self.h.min(self.w)
    }

    /// The size after a square window, as the checker computes it.
    fn after(self, kernel: usize, stride: usize, padding: usize) -> Option<Size> {
        Some(Size {
            h: spatial(self.h, kernel, stride, padding, 1, false)?,
            w: spatial(self.w, kernel, stride, padding, 1, false)?,
        })
    }

    /// The kernels of [`KERNELS`] that fit the map (1x1 fits every map).
    fn kernels(self) -> Vec<usize> {
        KERNELS.into_iter().filter(|&k| k <= self.min()).collect()
    }
}

/// The rule of the network from a map of `size` on, with `left` layers left.
fn feat(size: Size, left: usize) -> String {
    format!("feat_{}_{left}", size.name())
}

/// A layer or block name, optionally after `nn.`, as one lexeme.
fn word(names: &[&str]) -> Item {
    Item::Terminal(Terminal::Word {
        prefixes: vec![PREFIX.into()],
        words: names.iter().map(|n| n.to_string()).collect(),
    })
}

/// `NAME "("`: a layer's argument list follows.
fn call_open(name: &str) -> Vec<Item> {
    vec![word(&[name]), lit("(")]
}

/// `NAME "(" args ")"`.
fn call(name: &str, args: Vec<Item>) -> Vec<Item> {
    [call_open(name), args, vec![lit(")")]].concat()
}

/// `NAME "(" nl?`: a block's modules follow, then `close`.
fn open_block(name: &str) -> Vec<Item> {
    vec![word(&[name]), lit("("), opt(vec![rule("nl")])]
}

/// `"name=" value...`.
fn keyword(name: &str, value: Vec<Item>) -> Vec<Item> {
    [vec![lit(&format!("{name}="))], value].concat()
}

/// `value` or `name=value`.
fn maybe_keyword(name: &str, value: Item) -> Item {
    choice(vec![vec![value.clone()], keyword(name, vec![value])])
}

/// Between two arguments: `","` and an optional space.
fn comma() -> Item {
    rule("comma")
}

/// Between two modules: `","` and an optional space or indented line break.
fn sep() -> Item {
    rule("sep")
}

/// `item sep`, optionally.
fn opt_then_sep(name: &str) -> Item {
    opt(vec![rule(name), sep()])
}

struct Builder {
    rules: Vec<Rule>,
    /// The channel counts residual blocks repeat, ascending.
    channels: Vec<usize>,
    /// The longest text of one layer and the separator after it, in bytes: what one layer
    /// of [`GenerationOptions::max_layers`] stands for.
    unit: usize,
    /// How many layers each block rule weighs.
    weights: HashMap<String, usize>,
}

impl Builder {
    fn add(&mut self, name: &str, alternatives: Vec<Vec<Item>>) {
        self.rules.push(Rule {
            name: name.into(),
            alternatives,
        });
    }

    /// The longest text of `items`, then a separator, in bytes (the rules are acyclic and
    /// bounded).
    fn max_len(&self, items: Vec<Item>) -> usize {
        max_len_in(&self.rules, Skip::None, &[items, vec![sep()]].concat()).unwrap_or(usize::MAX)
    }

    /// How many layers `name` weighs: its longest text in units, rounded up.
    fn weigh(&mut self, name: &str) {
        let weight = self.max_len(vec![rule(name)]).div_ceil(self.unit).max(1);
        self.weights.insert(name.into(), weight);
    }

    /// The rules that do not depend on the feature-map size.
    fn shared(&mut self, max_width: u64, classes: usize) {
        self.add(
            "nl",
            vec![vec![Item::Terminal(Terminal::Break { indent: INDENT })]],
        );
        self.add(
            "sep",
            vec![vec![
                lit(","),
                opt(vec![choice(vec![vec![lit(" ")], vec![rule("nl")]])]),
            ]],
        );
        self.add(
            "close",
            vec![vec![opt(vec![lit(",")]), opt(vec![rule("nl")]), lit(")")]],
        );
        self.add("comma", vec![vec![lit(","), opt(vec![lit(" ")])]]);
        let fraction = || Item::Terminal(Terminal::Fraction { digits: 3 });
        self.add(
            "width",
            vec![vec![Item::Terminal(Terminal::Integer {
                min: 1,
                max: max_width,
            })]],
        );
        self.add("bool", vec![vec![lit("True")], vec![lit("False")]]);
        self.add(
            "bias",
            vec![[vec![comma()], keyword("bias", vec![rule("bool")])].concat()],
        );
        self.add("conv_end", vec![vec![opt(vec![rule("bias")]), lit(")")]]);
        let inplace = || opt(keyword("inplace", vec![rule("bool")]));
        self.add(
            "act",
            vec![
                [
                    vec![word(&["ReLU", "ReLU6", "SiLU", "Hardswish"]), lit("(")],
                    vec![inplace(), lit(")")],
                ]
                .concat(),
                call(
                    "LeakyReLU",
                    vec![opt(vec![maybe_keyword("negative_slope", fraction())])],
                ),
                call(
                    "GELU",
                    vec![opt(keyword(
                        "approximate",
                        vec![choice(vec![vec![lit("'tanh'")], vec![lit("'none'")]])],
                    ))],
                ),
            ],
        );
        self.add("bn", vec![call("LazyBatchNorm2d", Vec::new())]);
        let p = || opt(vec![maybe_keyword("p", fraction())]);
        self.add(
            "dropout",
            vec![[
                vec![word(&["Dropout", "Dropout2d"]), lit("(")],
                vec![p(), lit(")")],
            ]
            .concat()],
        );
        self.add("head_dropout", vec![call("Dropout", vec![p()])]);
        let reduction = Item::Terminal(Terminal::Integer { min: 1, max: 16 });
        self.add(
            "se",
            vec![call(
                "SqueezeExcite",
                vec![opt(vec![maybe_keyword("reduction", reduction)])],
            )],
        );
        self.pools();
        for k in KERNELS {
            for stride in [1, 2] {
                self.add(&format!("conv{k}_s{stride}"), conv_rest(k, stride));
            }
        }
        // One layer: the longest of the layers that keep or shrink the size.
        let mut layers = vec![
            "bn", "act", "dropout", "se", "pool2", "pool3_s2", "pool3_s1",
        ]
        .into_iter()
        .map(|name| vec![rule(name)])
        .collect::<Vec<_>>();
        for k in KERNELS {
            for stride in [1, 2] {
                layers.push(
                    [
                        call_open("LazyConv2d"),
                        vec![rule("width"), rule(&format!("conv{k}_s{stride}"))],
                    ]
                    .concat(),
                );
            }
        }
        self.unit = self.max_len(vec![choice(layers)]);
        self.residuals();
        let flatten = || call("Flatten", Vec::new());
        self.add(
            "pooled_head",
            vec![[
                call(
                    "AdaptiveAvgPool2d",
                    vec![
                        opt(vec![lit("output_size=")]),
                        choice(vec![
                            vec![lit("1")],
                            vec![lit("("), lit("1"), comma(), lit("1"), lit(")")],
                        ]),
                    ],
                ),
                vec![sep()],
                flatten(),
                vec![sep(), rule("classifier")],
            ]
            .concat()],
        );
        self.add(
            "flat_head",
            vec![[flatten(), vec![sep(), rule("classifier")]].concat()],
        );
        self.add(
            "hidden",
            vec![
                call("LazyLinear", vec![rule("width"), opt(vec![rule("bias")])]),
                vec![rule("act")],
                vec![rule("head_dropout")],
            ],
        );
        self.add(
            "classifier",
            vec![[
                vec![repeat(vec![rule("hidden"), sep()], 0, Some(HIDDEN))],
                call(
                    "LazyLinear",
                    vec![opt(vec![lit("out_features=")]), lit(&classes.to_string())],
                ),
            ]
            .concat()],
        );
    }

    /// `pool2` halves (rounding down), `pool3_s2` halves (rounding up), `pool3_s1` keeps.
    fn pools(&mut self) {
        let windows = [
            ("pool2", "2", "2", None),
            ("pool3_s2", "3", "2", Some("1")),
            ("pool3_s1", "3", "1", Some("1")),
        ];
        for (name, k, stride, padding) in windows {
            let mut positional = vec![lit(k), comma(), lit(stride)];
            let mut keywords = [vec![comma()], keyword("stride", vec![lit(stride)])].concat();
            if let Some(p) = padding {
                positional.extend([comma(), lit(p)]);
                keywords.extend([comma(), lit("padding="), lit(p)]);
            }
            let mut forms = vec![
                positional,
                [vec![lit(k)], keywords.clone()].concat(),
                [keyword("kernel_size", vec![lit(k)]), keywords].concat(),
            ];
            if padding.is_none() {
                // The stride defaults to the kernel size.
                forms.push(vec![maybe_keyword("kernel_size", lit(k))]);
            }
            self.add(
                name,
                vec![vec![
                    word(&["MaxPool2d", "AvgPool2d"]),
                    lit("("),
                    choice(forms),
                    lit(")"),
                ]],
            );
        }
    }

    /// Residual blocks of stride 1 and 2, whose body and shortcut end with the same count:
    /// `residual_s1`/`residual_s2` with a plain head (a 3x3 convolution of any width, an
    /// optional batch norm, an activation), `inverted_s1`/`inverted_s2` with an inverted one
    /// (a 1x1 expansion and a depthwise 3x3 convolution of one count).
    fn residuals(&mut self) {
        let channels = self.channels.clone();
        for stride in [1, 2] {
            let strided = if stride == 2 {
                [vec![comma()], keyword("stride", vec![lit("2")])].concat()
            } else {
                Vec::new()
            };
            self.add(
                &format!("dw_s{stride}"),
                vec![[
                    vec![comma(), maybe_keyword("kernel_size", lit("3"))],
                    strided.clone(),
                    vec![comma()],
                    keyword("padding", vec![lit("1")]),
                    vec![comma(), lit("groups=")],
                ]
                .concat()],
            );
            self.add(
                &format!("shortcut_s{stride}"),
                vec![[
                    vec![comma(), maybe_keyword("kernel_size", lit("1"))],
                    strided,
                    vec![rule("conv_end")],
                ]
                .concat()],
            );
            let mut inverted_heads = Vec::new();
            let mut tails = Vec::new();
            for &c in &channels {
                let c_lit = || lit(&c.to_string());
                let inverted = format!("inverted{c}_s{stride}");
                self.add(
                    &inverted,
                    vec![[
                        call_open("LazyConv2d"),
                        vec![c_lit(), rule("conv1_s1"), sep()],
                        vec![opt_then_sep("bn"), rule("act"), sep()],
                        call_open("LazyConv2d"),
                        vec![c_lit(), rule(&format!("dw_s{stride}")), c_lit()],
                        vec![rule("conv_end"), sep()],
                        vec![opt_then_sep("bn"), rule("act"), sep()],
                    ]
                    .concat()],
                );
                inverted_heads.push(vec![rule(&inverted)]);
                let shortcut = format!("shortcut{c}_s{stride}");
                let projection = || {
                    [
                        call_open("LazyConv2d"),
                        vec![c_lit(), rule(&format!("shortcut_s{stride}"))],
                    ]
                    .concat()
                };
                self.add(
                    &shortcut,
                    vec![
                        projection(),
                        [
                            open_block("Sequential"),
                            projection(),
                            vec![sep(), rule("bn"), rule("close")],
                        ]
                        .concat(),
                    ],
                );
                let tail = format!("tail{c}_s{stride}");
                self.add(
                    &tail,
                    vec![[
                        call_open("LazyConv2d"),
                        vec![
                            c_lit(),
                            choice(vec![vec![rule("conv3_s1")], vec![rule("conv1_s1")]]),
                            sep(),
                            opt_then_sep("bn"),
                            opt_then_sep("se"),
                        ],
                        keyword("shortcut", vec![rule(&shortcut)]),
                    ]
                    .concat()],
                );
                tails.push(vec![rule(&tail)]);
            }
            self.add(
                &format!("reshead_s{stride}"),
                vec![[
                    call_open("LazyConv2d"),
                    vec![rule("width"), rule(&format!("conv3_s{stride}")), sep()],
                    vec![opt_then_sep("bn"), rule("act"), sep()],
                ]
                .concat()],
            );
            self.add(&format!("invhead_s{stride}"), inverted_heads);
            self.add(&format!("restail_s{stride}"), tails);
            for (block, head) in [("residual", "reshead"), ("inverted", "invhead")] {
                let name = format!("{block}_s{stride}");
                self.add(
                    &name,
                    vec![[
                        open_block("Residual"),
                        vec![
                            rule(&format!("{head}_s{stride}")),
                            rule(&format!("restail_s{stride}")),
                            rule("close"),
                        ],
                    ]
                    .concat()],
                );
                self.weigh(&name);
            }
        }
    }

    /// The `feat_` rules of every size and layer count reachable from `first` with
    /// `max_layers` layers.
    fn stages(&mut self, first: Size, max_layers: usize) {
        let mut pending = vec![(first, max_layers)];
        let mut done = BTreeSet::new();
        // Added at the end, the largest map and the most layers left first.
        let mut feats = BTreeMap::new();
        let mut downs_of: BTreeMap<Size, BTreeMap<Size, Vec<String>>> = BTreeMap::new();
        while let Some((size, left)) = pending.pop() {
            if !done.insert((size, left)) {
                continue;
            }
            let downs = match downs_of.get(&size) {
                Some(downs) => downs.clone(),
                None => {
                    let downs = self.downsamplings(size);
                    downs_of.insert(size, downs.clone());
                    downs
                }
            };
            let kernels = size.kernels();
            let widest = kernels.last().copied().unwrap_or(1);
            let mut alternatives = Vec::new();
            let mut next = |what: String, weight: usize, to: Size| {
                if weight <= left {
                    alternatives.push(vec![rule(&what), sep(), rule(&feat(to, left - weight))]);
                    pending.push((to, left - weight));
                }
            };
            next(format!("layer_k{widest}"), 1, size);
            let mut blocks = vec![format!("concat_k{widest}")];
            if widest >= 3 {
                blocks.extend(["residual_s1".to_string(), "inverted_s1".to_string()]);
            }
            for block in blocks {
                next(block.clone(), self.weights[&block], size);
            }
            for (target, ways) in &downs {
                for way in ways {
                    let weight = self.weights.get(way).copied().unwrap_or(1);
                    next(way.clone(), weight, *target);
                }
            }
            alternatives.push(vec![rule("pooled_head")]);
            if size.h.saturating_mul(size.w) <= 16 {
                alternatives.push(vec![rule("flat_head")]);
            }
            feats.insert((Reverse(size), Reverse(left)), alternatives);
        }
        for ((Reverse(size), Reverse(left)), alternatives) in feats {
            self.add(&feat(size, left), alternatives);
        }
    }

    /// The layers that keep the size of a map that fits `kernels` (all of [`KERNELS`] up to
    /// the widest that fits), named after the widest: `layer_k3` and the `conv_k3`,
    /// `concat_k3`, ... it uses. Residual blocks and 3x3 pooling need a 3x3 kernel to fit.
    fn layers(&mut self, kernels: &[usize]) {
        let widest = kernels.last().copied().unwrap_or(1);
        let name = |what: &str| format!("{what}_k{widest}");
        if self.rules.iter().any(|r| r.name == name("layer")) {
            return;
        }
        self.add(
            &name("conv"),
            kernels
                .iter()
                .map(|k| {
                    [
                        call_open("LazyConv2d"),
                        vec![rule("width"), rule(&format!("conv{k}_s1"))],
                    ]
                    .concat()
                })
                .collect(),
        );
        let conv = rule(&name("conv"));
        let mut branch_layers = vec![vec![conv.clone()], vec![rule("bn")], vec![rule("act")]];
        if widest >= 3 {
            branch_layers.push(vec![rule("pool3_s1")]);
        }
        self.add(&name("blayer"), branch_layers);
        let blayer = rule(&name("blayer"));
        self.add(
            &name("branch"),
            vec![
                [
                    open_block("Sequential"),
                    vec![
                        blayer.clone(),
                        repeat(vec![sep(), blayer], 0, Some(BRANCH_LAYERS - 1)),
                        rule("close"),
                    ],
                ]
                .concat(),
                vec![conv.clone()],
            ],
        );
        let branch = rule(&name("branch"));
        self.add(
            &name("concat"),
            vec![[
                open_block("Concat"),
                vec![
                    branch.clone(),
                    repeat(vec![sep(), branch], 1, Some(BRANCHES - 1)),
                    rule("close"),
                ],
            ]
            .concat()],
        );
        self.weigh(&name("concat"));
        self.add(
            &name("layer"),
            vec![
                vec![conv],
                vec![rule("bn")],
                vec![rule("act")],
                vec![rule("dropout")],
                vec![rule("se")],
            ],
        );
    }

    /// The ways to shrink a map of `size` (at least 2x2), by the size they produce, as rule
    /// names: `down_S_T` (2x2 pooling, rounding down; 3x3 stride-2 pooling and strided
    /// convolutions, rounding up), and strided residual blocks; only windows that fit the
    /// map, and residual blocks only where their 3x3 convolutions fit the smaller map too.
    /// Adds the rules of the size's layers and of its `down_` rules.
    fn downsamplings(&mut self, size: Size) -> BTreeMap<Size, Vec<String>> {
        let kernels = size.kernels();
        self.layers(&kernels);
        let mut ways: BTreeMap<Size, Vec<Vec<Item>>> = BTreeMap::new();
        let mut blocks: BTreeMap<Size, Vec<String>> = BTreeMap::new();
        if size.min() < 2 {
            return blocks;
        }
        let smaller = |target: Option<Size>| target.filter(|t| t.h < size.h && t.w < size.w);
        let mut add = |target: Option<Size>, items: Vec<Item>| {
            if let Some(t) = smaller(target) {
                ways.entry(t).or_default().push(items);
            }
        };
        add(size.after(2, 2, 0), vec![rule("pool2")]);
        if size.min() >= 3 {
            add(size.after(3, 2, 1), vec![rule("pool3_s2")]);
        }
        for &k in &kernels {
            add(
                size.after(k, 2, k / 2),
                [
                    call_open("LazyConv2d"),
                    vec![rule("width"), rule(&format!("conv{k}_s2"))],
                ]
                .concat(),
            );
        }
        for (target, alternatives) in ways {
            let name = format!("down_{}_{}", size.name(), target.name());
            self.add(&name, alternatives);
            blocks.entry(target).or_default().push(name);
        }
        // The body's 3x3 stride-2 convolution and the 1x1 stride-2 shortcut give the same size.
        let body = size.after(3, 2, 1);
        if size.min() >= 3 && body == size.after(1, 2, 0) && body.is_some_and(|t| t.min() >= 3) {
            if let Some(t) = smaller(body) {
                let names = blocks.entry(t).or_default();
                names.extend(["residual_s2".to_string(), "inverted_s2".to_string()]);
            }
        }
        blocks
    }
}

/// What follows `LazyConv2d(width` for a `k`x`k` kernel at `stride` with `padding = k // 2`:
/// positional `k, stride, padding` or keywords (`stride=` only for 2), then the optional
/// `bias=` and `)`.
fn conv_rest(k: usize, stride: usize) -> Vec<Vec<Item>> {
    let (k_text, s_text, p_text) = (k.to_string(), stride.to_string(), (k / 2).to_string());
    let stride_part = if stride == 1 {
        Vec::new()
    } else {
        [vec![comma()], keyword("stride", vec![lit(&s_text)])].concat()
    };
    let mut paddings = vec![vec![lit(&p_text)]];
    if stride == 1 {
        paddings.push(vec![lit("'same'")]);
    }
    let padding = [vec![comma()], keyword("padding", vec![choice(paddings)])].concat();
    let padding_part = if k == 1 { vec![opt(padding)] } else { padding };
    vec![
        vec![
            comma(),
            lit(&k_text),
            comma(),
            lit(&s_text),
            comma(),
            lit(&p_text),
            rule("conv_end"),
        ],
        [
            vec![comma(), maybe_keyword("kernel_size", lit(&k_text))],
            stride_part,
            padding_part,
            vec![rule("conv_end")],
        ]
        .concat(),
    ]
}
