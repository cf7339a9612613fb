//! Small constructors of common modules, for code that builds networks in the IR directly
//! (the NAS-Bench-201 and macro CNN spaces). Every layer has PyTorch's defaults except where a
//! parameter says otherwise; square kernels, strides and paddings.

use super::ir::*;

/// `Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)`: the convolution
/// before a `BatchNorm2d`, which makes a bias redundant.
pub fn conv(cin: usize, cout: usize, kernel: usize, stride: usize, padding: usize) -> Module {
    grouped_conv(cin, cout, kernel, stride, padding, 1)
}

/// [`conv`] with `groups` (`groups == cin == cout` is a depthwise convolution).
pub fn grouped_conv(
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Module {
    Module::Layer(Layer::Conv2d(Conv2d {
        in_channels: Some(cin),
        out_channels: cout,
        kernel_size: [kernel, kernel],
        stride: [stride, stride],
        padding: Padding::Explicit([padding, padding]),
        dilation: [1, 1],
        groups,
        bias: false,
    }))
}

/// `BatchNorm2d(c)`.
pub fn batch_norm(c: usize) -> Module {
    Module::Layer(Layer::BatchNorm2d(BatchNorm2d {
        num_features: Some(c),
        eps: 1e-5,
        momentum: 0.1,
        affine: true,
        track_running_stats: true,
    }))
}

/// `AvgPool2d(kernel, stride, padding, count_include_pad=count_include_pad)`.
pub fn avg_pool(kernel: usize, stride: usize, padding: usize, count_include_pad: bool) -> Module {
    Module::Layer(Layer::AvgPool2d(Pool2d {
        kernel_size: [kernel, kernel],
        stride: [stride, stride],
        padding: [padding, padding],
        dilation: [1, 1],
        ceil_mode: false,
        count_include_pad,
    }))
}

/// `MaxPool2d(kernel, stride, padding)`.
pub fn max_pool(kernel: usize, stride: usize, padding: usize) -> Module {
    Module::Layer(Layer::MaxPool2d(Pool2d {
        kernel_size: [kernel, kernel],
        stride: [stride, stride],
        padding: [padding, padding],
        dilation: [1, 1],
        ceil_mode: false,
        count_include_pad: false,
    }))
}

/// An activation layer, e.g. `activation(Activation::Relu)` for `ReLU()`.
pub fn activation(a: Activation) -> Module {
    Module::Layer(Layer::Activation(a))
}

/// `Linear(cin, cout)` (with bias).
pub fn linear(cin: usize, cout: usize) -> Module {
    Module::Layer(Layer::Linear(Linear {
        in_features: Some(cin),
        out_features: cout,
        bias: true,
    }))
}

/// `SqueezeExcitation(channels, squeeze)` (torchvision's, with explicit widths).
pub fn squeeze_excitation(channels: usize, squeeze: usize) -> Module {
    Module::Layer(Layer::SqueezeExcitation(SqueezeExcitation {
        input_channels: Some(channels),
        squeeze: Squeeze::Channels(squeeze),
    }))
}

/// `AdaptiveAvgPool2d(1), Flatten(), Linear(channels, classes)`: the classifier head.
pub fn classifier(channels: usize, classes: usize) -> [Module; 3] {
    [
        Module::Layer(Layer::AdaptiveAvgPool2d {
            output_size: [1, 1],
        }),
        Module::Layer(Layer::Flatten {
            start_dim: 1,
            end_dim: -1,
        }),
        linear(channels, classes),
    ]
}

/// `Add(a, b)`: the sum of two branches (a residual connection when `b` is the shortcut).
pub fn add(a: Module, b: Module) -> Module {
    Module::Parallel {
        join: Join::Sum,
        branches: vec![a, b],
    }
}
