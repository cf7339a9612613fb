"""Reference forward/backward values of small networks, from PyTorch.

Every parameter (in `model.parameters()` order), the input and the loss weights are filled with
a fixed pattern, so the Rust side can set the same values. Records the training-mode output, the
gradient of `sum(output * r)` for every parameter, and the evaluation-mode output after that one
training forward (which moved the BatchNorm running statistics). Writes
crates/trainer/tests/fixtures/ops.json:

    py=$(../shared/tools/torch-cpu-env.sh | tail -1) && "$py" scripts/torch_ops_reference.py
"""

import json
import math
import pathlib

import torch
from torch import nn  # noqa: F401

H, W = 9, 11
TEXTS = [
    """nn.Sequential(nn.Conv2d(3, 4, (3, 5), stride=(1, 2), padding=(1, 2)), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(),
        nn.Linear(24, 5))""",
    """nn.Sequential(nn.Conv2d(3, 6, 3, padding='same', groups=3, dilation=2),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), nn.Hardswish(),
        nn.Conv2d(6, 4, 1, bias=False), nn.BatchNorm2d(4, affine=False), nn.AvgPool2d(2, padding=1), nn.GELU(),
        nn.Flatten(), nn.Linear(48, 3), nn.LogSoftmax(dim=1))""",
    """nn.Sequential(nn.Conv2d(3, 4, 4, padding='same'), nn.SiLU(), nn.LeakyReLU(0.1), nn.ReLU6(),
        nn.Conv2d(4, 4, 2, stride=2), nn.GELU(approximate='tanh'), nn.Tanh(), nn.Sigmoid(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2), nn.Softmax(dim=-1))""",
    """nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8, momentum=0.3), nn.ReLU(),
        nn.AvgPool2d(3, stride=1, padding=1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(48, 4))""",
    # 16 channels and more: the trainer's blocked direct kernels (whole and partial blocks,
    # stride 2, a dilated 3x1 kernel padded on one axis).
    """nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 20, 3, padding=1, bias=False),
        nn.BatchNorm2d(20), nn.ReLU(), nn.Conv2d(20, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 16, (3, 1), padding=(2, 0), dilation=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 3))""",
]


def pattern(n, phase):
    return [0.5 * math.sin(0.37 * i + phase) for i in range(n)]


def main():
    out = []
    for k, text in enumerate(TEXTS):
        torch.manual_seed(0)
        model = eval(text).double()
        x = torch.tensor(pattern(2 * 3 * H * W, 0.1), dtype=torch.float64).reshape(2, 3, H, W)
        model(x)  # materialize
        with torch.no_grad():
            for j, p in enumerate(model.parameters()):
                p.copy_(torch.tensor(pattern(p.numel(), 1.0 + j), dtype=torch.float64).reshape(p.shape))
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
                    m.reset_running_stats()
        model.train()
        y = model(x)
        r = torch.tensor(pattern(y.numel(), 2.0), dtype=torch.float64).reshape(y.shape)
        (y * r).sum().backward()
        grads = [p.grad.flatten().tolist() for p in model.parameters()]
        model.eval()
        with torch.no_grad():
            y_eval = model(x)
        out.append({
            "text": text,
            "output_train": y.detach().flatten().tolist(),
            "output_shape": list(y.shape),
            "grads": grads,
            "output_eval": y_eval.flatten().tolist(),
        })
    path = pathlib.Path(__file__).resolve().parent.parent / "crates/trainer/tests/fixtures/ops.json"
    path.write_text(json.dumps({"torch": torch.__version__, "height": H, "width": W, "models": out}) + "\n")
    print(f"wrote {len(out)} models to {path}")


if __name__ == "__main__":
    main()
