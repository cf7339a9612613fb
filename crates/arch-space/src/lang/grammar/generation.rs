//! The grammar the closed loop's Code Generator answers in: lazy widths, feature-map sizes
//! tracked from rule to rule, the class count pinned.

use std::collections::{BTreeMap, BTreeSet};

use super::super::check::spatial;
use super::super::InputSpec;
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
    /// The most layers at one feature-map size (a block counts as one).
    pub max_layers: usize,
}

impl Default for GenerationOptions {
    /// Channels 16, 24, 32, 48, 64, 96, 128, 160, 192, 256; widths up to 512; 24 layers per
    /// feature-map size.
    fn default() -> Self {
        GenerationOptions {
            channels: vec![16, 24, 32, 48, 64, 96, 128, 160, 192, 256],
            max_width: 512,
            max_layers: 24,
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

/// [`generation_grammar_with`] the default options.
pub fn generation_grammar(input: &InputSpec) -> Result<Grammar, GrammarError> {
    generation_grammar_with(input, &GenerationOptions::default())
}

/// The grammar of a Code Generator reply for `input`: exactly one ```` ```python ```` block
/// holding optional `import` lines, an optional `model =` and one `Sequential(...)` of lazy
/// layers and blocks, names with or without `nn.`, ending with `LazyLinear(classes)`.
///
/// Every text of the grammar parses, passes [`Program::check`](super::super::Program::check)
/// for `input` and outputs `input.classes` scores: widths are lazy (`LazyConv2d`,
/// `LazyBatchNorm2d`, `LazyLinear`), so no channel count can mismatch, except where a
/// residual block writes one twice, and there one rule per count repeats it. The feature-map
/// size is tracked by one rule per size reachable from the input (`feat_32x32`,
/// `feat_16x16`, ...) and the layers that keep it (`layer_k7` where a 7x7 kernel fits, down to
/// `layer_k1`): convolutions keep it (`padding = k // 2` or `'same'`, no kernel wider
/// than the map); pooling, strided convolutions and strided residual blocks move to the
/// smaller size they produce, only while the map is at least 2x2, and none makes a kernel
/// wider than its map. The head is `AdaptiveAvgPool2d(1), Flatten()` (or a bare `Flatten()`
/// on maps of at most 16 pixels), up to four hidden `LazyLinear`/activation/`Dropout`
/// layers, and `LazyLinear(classes)`. Whitespace is bounded (up to 4 blanks, or 2 line
/// breaks indented by up to 16), as is the depth ([`GenerationOptions::max_layers`] per
/// size), so a model cannot write forever.
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
    };
    let first = Size {
        h: height,
        w: width,
    };
    b.add(
        "start",
        vec![vec![
            lit("```python\n"),
            repeat(
                vec![choice(IMPORTS.iter().map(|i| vec![lit(i)]).collect())],
                0,
                Some(IMPORTS.len()),
            ),
            opt(vec![lit("model"), lit("=")]),
            word(&["Sequential"]),
            lit("("),
            rule(&format!("feat_{}", first.name())),
            lit(")"),
            // Not "\n```": llguidance lexes greedily, and a skip that took the line break
            // would leave the fence unmatched. The skip before it holds the line break.
            lit("```"),
        ]],
    );
    b.shared(options.max_width, classes);
    let mut pending = vec![first];
    let mut done = BTreeSet::new();
    while let Some(size) = pending.pop() {
        if done.insert(size) {
            pending.extend(b.stage(size, options.max_layers));
        }
    }
    Ok(Grammar {
        rules: b.rules,
        skip: Skip::Bounded {
            spaces: 4,
            lines: 2,
            indent: 16,
        },
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
}

/// A layer or block name, optionally after `nn.`, as one lexeme.
fn word(names: &[&str]) -> Item {
    Item::Terminal(Terminal::Word {
        prefixes: vec![PREFIX.into()],
        words: names.iter().map(|n| n.to_string()).collect(),
    })
}

/// `NAME "(" args ")"`.
fn call(name: &str, args: Vec<Item>) -> Vec<Item> {
    [vec![word(&[name]), lit("(")], args, vec![lit(")")]].concat()
}

/// `"name" "=" value...`.
fn keyword(name: &str, value: Vec<Item>) -> Vec<Item> {
    [vec![lit(name), lit("=")], value].concat()
}

/// `value` or `name=value`.
fn maybe_keyword(name: &str, value: Item) -> Item {
    choice(vec![vec![value.clone()], keyword(name, vec![value])])
}

fn comma() -> Item {
    lit(",")
}

/// An optional trailing comma.
fn trailing() -> Item {
    opt(vec![comma()])
}

/// `item ","`, optionally.
fn opt_then_comma(name: &str) -> Item {
    opt(vec![rule(name), comma()])
}

struct Builder {
    rules: Vec<Rule>,
    /// The channel counts residual blocks repeat, ascending.
    channels: Vec<usize>,
}

impl Builder {
    fn add(&mut self, name: &str, alternatives: Vec<Vec<Item>>) {
        self.rules.push(Rule {
            name: name.into(),
            alternatives,
        });
    }

    /// The rules that do not depend on the feature-map size.
    fn shared(&mut self, max_width: u64, classes: usize) {
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
        self.add(
            "conv_end",
            vec![vec![opt(vec![rule("bias")]), trailing(), lit(")")]],
        );
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
        self.residuals();
        let flatten = || call("Flatten", Vec::new());
        self.add(
            "pooled_head",
            vec![[
                call(
                    "AdaptiveAvgPool2d",
                    vec![
                        opt(vec![lit("output_size"), lit("=")]),
                        choice(vec![
                            vec![lit("1")],
                            vec![lit("("), lit("1"), comma(), lit("1"), lit(")")],
                        ]),
                    ],
                ),
                vec![comma()],
                flatten(),
                vec![comma(), rule("classifier")],
            ]
            .concat()],
        );
        self.add(
            "flat_head",
            vec![[flatten(), vec![comma(), rule("classifier")]].concat()],
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
                vec![repeat(vec![rule("hidden"), comma()], 0, Some(4))],
                call(
                    "LazyLinear",
                    vec![
                        opt(vec![lit("out_features"), lit("=")]),
                        lit(&classes.to_string()),
                    ],
                ),
                vec![trailing()],
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
                keywords.extend([comma(), lit("padding"), lit("="), lit(p)]);
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
                    trailing(),
                    lit(")"),
                ]],
            );
        }
    }

    /// Residual blocks of stride 1 and 2, whose body and shortcut end with the same count.
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
                    vec![comma(), lit("groups"), lit("=")],
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
            let mut heads = vec![[
                call_open("LazyConv2d"),
                vec![rule("width"), rule(&format!("conv3_s{stride}")), comma()],
                vec![opt_then_comma("bn"), rule("act"), comma()],
            ]
            .concat()];
            let mut tails = Vec::new();
            for &c in &channels {
                let c_lit = || lit(&c.to_string());
                let inverted = format!("inverted{c}_s{stride}");
                self.add(
                    &inverted,
                    vec![[
                        call_open("LazyConv2d"),
                        vec![c_lit(), rule("conv1_s1"), comma()],
                        vec![opt_then_comma("bn"), rule("act"), comma()],
                        call_open("LazyConv2d"),
                        vec![c_lit(), rule(&format!("dw_s{stride}")), c_lit()],
                        vec![rule("conv_end"), comma()],
                        vec![opt_then_comma("bn"), rule("act"), comma()],
                    ]
                    .concat()],
                );
                heads.push(vec![rule(&inverted)]);
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
                        call(
                            "Sequential",
                            [projection(), vec![comma(), rule("bn"), trailing()]].concat(),
                        ),
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
                            comma(),
                            opt_then_comma("bn"),
                            opt_then_comma("se"),
                        ],
                        keyword("shortcut", vec![rule(&shortcut)]),
                        vec![trailing()],
                    ]
                    .concat()],
                );
                tails.push(vec![rule(&tail)]);
            }
            self.add(&format!("reshead_s{stride}"), heads);
            self.add(&format!("restail_s{stride}"), tails);
            self.add(
                &format!("residual_s{stride}"),
                vec![call(
                    "Residual",
                    vec![
                        rule(&format!("reshead_s{stride}")),
                        rule(&format!("restail_s{stride}")),
                    ],
                )],
            );
        }
    }

    /// The rules of one feature-map size; returns the smaller sizes it leads to.
    fn stage(&mut self, size: Size, max_layers: usize) -> Vec<Size> {
        let s = size.name();
        let kernels: Vec<usize> = KERNELS.into_iter().filter(|&k| k <= size.min()).collect();
        // 1x1 kernels fit every map.
        let widest = kernels.last().copied().unwrap_or(1);
        if !self
            .rules
            .iter()
            .any(|r| r.name == format!("layer_k{widest}"))
        {
            self.layers(&kernels);
        }
        let mut tails = Vec::new();
        let downs = downsamplings(size, &kernels);
        for (target, alternatives) in &downs {
            let down = format!("down_{s}_{}", target.name());
            self.add(&down, alternatives.clone());
            tails.push(vec![
                rule(&down),
                comma(),
                rule(&format!("feat_{}", target.name())),
            ]);
        }
        tails.push(vec![rule("pooled_head")]);
        if size.h.saturating_mul(size.w) <= 16 {
            tails.push(vec![rule("flat_head")]);
        }
        self.add(&format!("tail_{s}"), tails);
        let mut feat = Vec::new();
        if max_layers > 0 {
            let layer = vec![rule(&format!("layer_k{widest}")), comma()];
            feat.push(repeat(layer, 0, Some(max_layers)));
        }
        feat.push(rule(&format!("tail_{s}")));
        self.add(&format!("feat_{s}"), vec![feat]);
        downs.into_keys().collect()
    }

    /// The layers that keep the size of a map that fits `kernels` (all of [`KERNELS`] up to
    /// the widest that fits), named after the widest: `layer_k3` and the `conv_k3`,
    /// `concat_k3`, ... it uses. Residual blocks and 3x3 pooling need a 3x3 kernel to fit.
    fn layers(&mut self, kernels: &[usize]) {
        let widest = kernels.last().copied().unwrap_or(1);
        let name = |what: &str| format!("{what}_k{widest}");
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
                call(
                    "Sequential",
                    vec![
                        blayer.clone(),
                        repeat(vec![comma(), blayer], 0, Some(3)),
                        trailing(),
                    ],
                ),
                vec![conv.clone()],
            ],
        );
        let branch = rule(&name("branch"));
        self.add(
            &name("concat"),
            vec![call(
                "Concat",
                vec![
                    branch.clone(),
                    repeat(vec![comma(), branch], 1, Some(3)),
                    trailing(),
                ],
            )],
        );
        let mut layers = vec![
            vec![conv],
            vec![rule("bn")],
            vec![rule("act")],
            vec![rule("dropout")],
            vec![rule("se")],
            vec![rule(&name("concat"))],
        ];
        if widest >= 3 {
            layers.push(vec![rule("residual_s1")]);
        }
        self.add(&name("layer"), layers);
    }
}

/// `NAME "("`.
fn call_open(name: &str) -> Vec<Item> {
    vec![word(&[name]), lit("(")]
}

/// What follows `LazyConv2d(width` for a `k`x`k` kernel at `stride` with `padding = k // 2`:
/// positional `k, stride, padding` or keywords, then the optional `bias=` and `)`.
fn conv_rest(k: usize, stride: usize) -> Vec<Vec<Item>> {
    let (k_text, s_text, p_text) = (k.to_string(), stride.to_string(), (k / 2).to_string());
    let stride_keyword = [vec![comma()], keyword("stride", vec![lit(&s_text)])].concat();
    let stride_part = if stride == 1 {
        vec![opt(stride_keyword)]
    } else {
        stride_keyword
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

/// The ways to shrink a map of `size` (at least 2x2), grouped by the size they produce: 2x2
/// pooling (rounding down), 3x3 stride-2 pooling, strided convolutions with `kernels` and
/// strided residual blocks (rounding up); only windows that fit the map, and residual blocks
/// only where their 3x3 convolutions fit the smaller map too.
fn downsamplings(size: Size, kernels: &[usize]) -> BTreeMap<Size, Vec<Vec<Item>>> {
    let mut downs: BTreeMap<Size, Vec<Vec<Item>>> = BTreeMap::new();
    if size.min() < 2 {
        return downs;
    }
    let mut add = |target: Option<Size>, items: Vec<Item>| {
        if let Some(t) = target.filter(|t| t.h < size.h && t.w < size.w) {
            downs.entry(t).or_default().push(items);
        }
    };
    add(size.after(2, 2, 0), vec![rule("pool2")]);
    if size.min() >= 3 {
        add(size.after(3, 2, 1), vec![rule("pool3_s2")]);
    }
    for &k in kernels {
        add(
            size.after(k, 2, k / 2),
            [
                call_open("LazyConv2d"),
                vec![rule("width"), rule(&format!("conv{k}_s2"))],
            ]
            .concat(),
        );
    }
    // The body's 3x3 stride-2 convolution and the 1x1 stride-2 shortcut give the same size.
    let body = size.after(3, 2, 1);
    if size.min() >= 3 && body == size.after(1, 2, 0) && body.is_some_and(|t| t.min() >= 3) {
        add(body, vec![rule("residual_s2")]);
    }
    downs
}
