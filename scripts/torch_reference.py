"""Reference parameter counts and output shapes of plain `nn.Sequential` texts, from PyTorch.

Writes crates/arch-space/tests/fixtures/torch_sequential.json, which the `lang` tests compare
our static checker against. Regenerate with PyTorch for CPU (../shared/tools/torch-cpu-env.sh):

    py=$(../shared/tools/torch-cpu-env.sh | tail -1) && "$py" scripts/torch_reference.py
"""

import json
import pathlib

import torch
from torch import nn  # noqa: F401  (the texts use `nn.`)
from torch.nn import *  # noqa: F401,F403  (and bare names)

TEXTS = [
    # A small VGG-style network, as code models write it.
    """nn.Sequential(
        nn.Conv2d(3, 32, kernel_size=3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Dropout(0.5), nn.Linear(128, 10))""",
    # Lazy widths.
    """Sequential(LazyConv2d(16, 3, padding=1), LazyBatchNorm2d(), ReLU(), MaxPool2d(2),
        LazyConv2d(32, 5, padding=2), ReLU(), AdaptiveAvgPool2d(1), Flatten(), LazyLinear(10))""",
    # Keywords everywhere, tuples, groups, dilation.
    """nn.Sequential(
        nn.Conv2d(in_channels=3, out_channels=24, kernel_size=(3, 5), stride=(1, 2), padding=(1, 2)),
        nn.BatchNorm2d(num_features=24, eps=1e-3, momentum=0.01),
        nn.Hardswish(),
        nn.Conv2d(24, 48, 3, padding=2, dilation=2, groups=24, bias=False),
        nn.GELU(approximate='tanh'),
        nn.Conv2d(48, 48, 1), nn.SiLU(),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.LeakyReLU(0.2), nn.Dropout2d(p=0.1),
        nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(), nn.Linear(192, 64), nn.ReLU6(),
        nn.Linear(64, 10), nn.Softmax(dim=1))""",
    # Nested Sequential, 'same' padding, max pooling with dilation and ceil mode, Identity.
    """nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 4, padding='same'), nn.ReLU(), nn.Identity()),
        nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding='valid'), nn.Tanh()),
        nn.Flatten(), nn.LazyLinear(10), nn.LogSoftmax(dim=-1))""",
    # A Linear on a feature map acts on its last dimension, as in PyTorch.
    """nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(30, 5), nn.Sigmoid(), nn.Flatten(),
        nn.Linear(4 * 30 * 5, 10))""".replace("4 * 30 * 5", "600"),
    # Flatten with explicit dimensions.
    """nn.Sequential(nn.Conv2d(3, 6, 5, stride=3), nn.Flatten(start_dim=2), nn.Flatten(1, -1),
        nn.Linear(600, 10, bias=False))""",
]


def main():
    out = []
    for text in TEXTS:
        model = eval(text)  # the texts above are ours
        y = model(torch.zeros(2, 3, 32, 32))
        out.append({
            "text": text,
            "params": sum(p.numel() for p in model.parameters()),
            "output": list(y.shape[1:]),
        })
    path = pathlib.Path(__file__).resolve().parent.parent / "crates/arch-space/tests/fixtures/torch_sequential.json"
    path.write_text(json.dumps({"torch": torch.__version__, "models": out}, indent=1) + "\n")
    print(f"wrote {len(out)} models to {path}")


if __name__ == "__main__":
    main()
