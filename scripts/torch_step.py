"""Time one PyTorch training step of an architecture, as the reference for `train_step`.

Same method as `cargo run --release --example train_step`: the network built from the resolved IR
(`check_arch --ir-json`), a fixed random batch of 3x32x32 images, a step = forward + cross-entropy +
backward + SGD update (momentum 0.9, weight decay 5e-4), its parts timed within it, the evaluation
forward under `no_grad` with running statistics; medians after warm-up. Prints one JSON line.

    py=$(../shared/tools/torch-cpu-env.sh | tail -1)
    "$py" scripts/torch_step.py --ir IR.json [--batch 128] [--steps 20] [--warmup 3] [--threads 2]
"""

import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from torch_train import build


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ir", required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(json.load(open(args.ir)))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(args.batch, 3, 32, 32) * 4 - 2
    y = torch.randint(0, 10, (args.batch,))
    ms = lambda t: (time.perf_counter() - t) * 1e3
    step, fwd, bwd, upd = [], [], [], []
    model.train()
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        value = loss.item()
        f = ms(t)
        t1 = time.perf_counter()
        loss.backward()
        b = ms(t1)
        t2 = time.perf_counter()
        opt.step()
        u = ms(t2)
        if i >= args.warmup:
            step.append(ms(t)), fwd.append(f), bwd.append(b), upd.append(u)
    model.eval()
    ev = []
    with torch.no_grad():
        for i in range(args.warmup + args.steps):
            t = time.perf_counter()
            model(x).sum().item()
            if i >= args.warmup:
                ev.append(ms(t))
    med = statistics.median
    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "params": sum(p.numel() for p in model.parameters()),
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "step_ms": med(step),
        "images_per_second": args.batch / med(step) * 1e3,
        "forward_loss_ms": med(fwd),
        "backward_ms": med(bwd),
        "update_ms": med(upd),
        "eval_forward_ms": med(ev),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "loss": value,
    }))


if __name__ == "__main__":
    main()
