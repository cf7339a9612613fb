"""Reference trajectories of torch.optim optimizers and torch LR schedulers.

Writes crates/trainer/tests/fixtures/optim.json, which the trainer's optimizer tests compare
against. Regenerate with PyTorch for CPU (../shared/tools/torch-cpu-env.sh):

    py=$(../shared/tools/torch-cpu-env.sh | tail -1) && "$py" scripts/torch_optim_reference.py
"""

import json
import math
import pathlib

import torch

P0 = [0.5, -1.25, 2.0, 0.0, -0.3, 1.7]
W = [1.0, 0.5, 2.0, 0.1, 3.0, 0.7]
B = [0.2, -0.1, 0.0, 1.0, -0.5, 0.3]
STEPS = 6


def loss_fn(p):
    w, b = torch.tensor(W, dtype=torch.float64), torch.tensor(B, dtype=torch.float64)
    return (w * p * p + b * p).sum() + 0.1 * torch.sin(p).sum()


def trajectory(make_opt, lr):
    p = torch.tensor(P0, dtype=torch.float64, requires_grad=True)
    opt = make_opt([p], lr)
    out = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss_fn(p).backward()
        opt.step()
        out.append(p.detach().tolist())
    return out


def lrs(make_sched, total):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make_sched(opt, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def main():
    cases = {
        "sgd": trajectory(lambda ps, lr: torch.optim.SGD(ps, lr=lr), 0.1),
        "sgd_momentum_wd": trajectory(lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9, weight_decay=5e-4), 0.05),
        "sgd_nesterov": trajectory(lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9, nesterov=True, weight_decay=1e-3), 0.05),
        "adamw": trajectory(lambda ps, lr: torch.optim.AdamW(ps, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01), 0.1),
    }
    schedules = {
        "cosine": lrs(lambda o, n: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=n), 20),
        "one_cycle": lrs(lambda o, n: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=n), 20),
    }
    out = {"torch": torch.__version__, "p0": P0, "w": W, "b": B, "trajectories": cases, "schedules": schedules}
    path = pathlib.Path(__file__).resolve().parent.parent / "crates/trainer/tests/fixtures/optim.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
