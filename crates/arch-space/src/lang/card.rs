//! The language explained in a few lines, for the system prompt of a model that writes it.

use super::InputSpec;

/// A short description of the language for LLM prompts: the layers, the blocks, and what the
/// network must read and produce for `input`. `docs/ARCH_LANGUAGE.md` quotes it for CIFAR-10.
pub fn prompt_card(input: &InputSpec) -> String {
    format!(
        "Write the network as ONE expression in a ```python block, using PyTorch modules with PyTorch's
arguments: Conv2d, BatchNorm2d, Linear (and LazyConv2d, LazyBatchNorm2d, LazyLinear, which infer
their input width), MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Dropout, Dropout2d, Flatten, ReLU,
ReLU6, LeakyReLU, GELU, SiLU, Hardswish, Sigmoid, Tanh, Softmax, LogSoftmax, Identity.
No forward() code; instead use these blocks:
  Sequential(m1, m2, ...)                  apply in order
  Residual(m1, m2, ..., shortcut=m)        Sequential(m1, m2, ...) plus shortcut (default: identity)
  Add(b1, b2, ...) / Concat(b1, b2, ...)   sum / channel-concatenate parallel branches
  SqueezeExcite(reduction=4)               squeeze-and-excitation on the current channels
  Graph(a = Conv2d(16, 16, 3, padding=1)(input), b = Sum(input, a), ...)
                                           a DAG of named nodes; the last node is the output
The input is {c}x{h}x{w}; the output must be {k} class scores: end with
AdaptiveAvgPool2d(1), Flatten(), Linear(channels, {k}).",
        c = input.channels,
        h = input.height,
        w = input.width,
        k = input.classes,
    )
}
