"""Train an architecture with PyTorch, as the reference for the trainer's numbers.

Reads the resolved IR written by `cargo run --release --example check_arch -- --arch A --ir-json
IR.json`, builds the same network in PyTorch, and trains it with the same recipe and data sizes as
`train_arch` (ImageFolder .tar.gz of JPEGs, validation split held out of the training set, random
crop with padding 4 and horizontal flip, per-channel normalisation from the training images).
Prints one JSON line: images/s, val/test accuracy, peak memory.

    py=$(../shared/tools/torch-cpu-env.sh | tail -1)
    "$py" scripts/torch_train.py --ir IR.json --data ../shared/data/cifar10/cifar10-jpg.tar.gz
"""

import argparse
import io
import json
import math
import resource
import tarfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image


def pair(v):
    return tuple(v)


class Parallel(nn.Module):
    def __init__(self, join, branches):
        super().__init__()
        self.join, self.branches = join, nn.ModuleList(branches)

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        return torch.cat(outs, 1) if self.join == "concat" and len(outs) > 1 else sum(outs)


class Graph(nn.Module):
    def __init__(self, nodes):
        super().__init__()
        self.plan = []
        self.edges = nn.ModuleList()
        names = ["input"]
        for node in nodes:
            sources = []
            for edge in node["edges"]:
                sources.append((names.index(edge["from"]), len(self.edges)))
                self.edges.append(build(edge["module"]))
            self.plan.append((node["join"], sources))
            names.append(node["name"])

    def forward(self, x):
        values = [x]
        for join, sources in self.plan:
            outs = [self.edges[e](values[s]) for s, e in sources]
            values.append(torch.cat(outs, 1) if join == "concat" and len(outs) > 1 else sum(outs))
        return values[-1]


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


class SqueezeExcitation(nn.Module):
    def __init__(self, c, s):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, s, 1), nn.Conv2d(s, c, 1)

    def forward(self, x):
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * s


def layer(kind, a):
    if kind == "conv2d":
        p = a["padding"]
        padding = pair(p["explicit"]) if isinstance(p, dict) else p
        return nn.Conv2d(a["in_channels"], a["out_channels"], pair(a["kernel_size"]), pair(a["stride"]),
                         padding, pair(a["dilation"]), a["groups"], a["bias"])
    if kind == "batch_norm2d":
        return nn.BatchNorm2d(a["num_features"], a["eps"], a["momentum"], a["affine"], a["track_running_stats"])
    if kind == "linear":
        return nn.Linear(a["in_features"], a["out_features"], a["bias"])
    if kind == "max_pool2d":
        return nn.MaxPool2d(pair(a["kernel_size"]), pair(a["stride"]), pair(a["padding"]), pair(a["dilation"]), ceil_mode=a["ceil_mode"])
    if kind == "avg_pool2d":
        return nn.AvgPool2d(pair(a["kernel_size"]), pair(a["stride"]), pair(a["padding"]), a["ceil_mode"], a["count_include_pad"])
    if kind == "adaptive_avg_pool2d":
        return nn.AdaptiveAvgPool2d(pair(a["output_size"]))
    if kind == "dropout":
        return nn.Dropout2d(a["p"]) if a["channels"] else nn.Dropout(a["p"])
    if kind == "flatten":
        return nn.Flatten(a["start_dim"], a["end_dim"])
    if kind == "squeeze_excitation":
        return SqueezeExcitation(a["input_channels"], a["squeeze"]["channels"])
    if kind == "activation":
        name, args = (a, {}) if isinstance(a, str) else next(iter(a.items()))
        return {
            "relu": lambda: nn.ReLU(), "relu6": lambda: nn.ReLU6(), "silu": lambda: nn.SiLU(),
            "hardswish": lambda: nn.Hardswish(), "sigmoid": lambda: nn.Sigmoid(), "tanh": lambda: nn.Tanh(),
            "leaky_relu": lambda: nn.LeakyReLU(args.get("negative_slope", 0.01)),
            "gelu": lambda: nn.GELU(approximate="tanh" if args.get("tanh") else "none"),
            "softmax": lambda: nn.LogSoftmax(args["dim"]) if args["log"] else nn.Softmax(args["dim"]),
        }[name]()
    raise ValueError(f"unknown layer {kind}")


def build(m):
    if isinstance(m, str):
        return {"identity": nn.Identity(), "zero": Zero()}[m]
    (kind, body), = m.items()
    if kind == "layer":
        if isinstance(body, str):
            return build(body)
        (lkind, args), = body.items()
        return layer(lkind, args)
    if kind == "sequential":
        return nn.Sequential(*[build(c) for c in body])
    if kind == "parallel":
        return Parallel(body["join"], [build(c) for c in body["branches"]])
    if kind == "graph":
        return Graph(body["nodes"])
    raise ValueError(f"unknown module {kind}")


def load_tar(path):
    splits = {"train": [], "test": []}
    with tarfile.open(path) as tar:
        for member in tar:
            parts = member.name.strip("./").split("/")
            if member.isfile() and len(parts) >= 3 and parts[-3] in splits:
                data = tar.extractfile(member).read()
                splits[parts[-3]].append((parts[-2], np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))
    classes = sorted({c for c, _ in splits["train"]})
    out = {}
    for name, items in splits.items():
        x = torch.from_numpy(np.stack([img for _, img in items])).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor([classes.index(c) for c, _ in items])
        out[name] = (x, y)
    return out


def augment(x, gen):
    b = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    i = torch.randint(0, 9, (b,), generator=gen)
    j = torch.randint(0, 9, (b,), generator=gen)
    out = torch.stack([padded[k, :, i[k]:i[k] + 32, j[k]:j[k] + 32] for k in range(b)])
    flip = torch.rand(b, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def accuracy(model, x, y, mean, std):
    model.eval()
    correct = 0
    with torch.no_grad():
        for k in range(0, len(x), 500):
            xb = (x[k:k + 500].float() / 255 - mean) / std
            correct += (model(xb).argmax(1) == y[k:k + 500]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--limit-train", type=int)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    data = load_tar(args.data)
    x, y = data["train"]
    perm = torch.randperm(len(x), generator=gen)
    val_idx, train_idx = perm[:args.val_size], perm[args.val_size:]
    if args.limit_train:
        train_idx = train_idx[:args.limit_train]
    xt, yt, xv, yv = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
    mean = (xt.float() / 255).mean((0, 2, 3)).view(1, -1, 1, 1)
    std = (xt.float() / 255).std((0, 2, 3)).view(1, -1, 1, 1)
    model = build(json.load(open(args.ir)))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    steps = math.ceil(len(xt) / args.batch_size) * args.epochs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    started = time.perf_counter()
    seen = 0
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for k in range(0, len(xt), args.batch_size):
            idx = order[k:k + args.batch_size]
            xb = (augment(xt[idx], gen).float() / 255 - mean) / std
            loss = F.cross_entropy(model(xb), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(idx)
    train_seconds = time.perf_counter() - started
    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "images_per_second": seen / train_seconds,
        "val_acc": accuracy(model, xv, yv, mean, std),
        "test_acc": accuracy(model, *data["test"], mean, std),
        "params": sum(p.numel() for p in model.parameters()),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "train_seconds": train_seconds,
    }))


if __name__ == "__main__":
    main()
