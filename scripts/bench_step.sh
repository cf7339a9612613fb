#!/usr/bin/env bash
# One training step, side by side: our kernels, stock candle (candle's ops and autograd only) and
# PyTorch, on the same architectures, batch and thread count, one process after the other, in
# rounds. Prints a Markdown table of medians (ms), the ratios to PyTorch and peak memory (MB).
#
#     scripts/bench_step.sh [ROUNDS] [ARCH...]   # default: 3 rounds; cnn3 resnet8 nb201_6111 dwsep
#
# STEPS (default 10) timed steps after WARMUP (default 2) per process; about 10 minutes on 2 cores,
# most of it stock candle.
# Needs PyTorch for CPU (../shared/tools/torch-cpu-env.sh). Threads: 2 on every side.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"; shift || true
steps="${STEPS:-10}"; warmup="${WARMUP:-2}"
archs="${*:-cnn3 resnet8 nb201_6111 dwsep}"
py=$(../shared/tools/torch-cpu-env.sh | tail -1)
cargo build --release --example train_step --example check_arch >&2
bin="${CARGO_TARGET_DIR:-target}/release/examples"
out=$(mktemp -d)
for arch in $archs; do
    "$bin/check_arch" --arch "examples/archs/$arch.arch" --ir-json "$out/$arch.json" >/dev/null
    for round in $(seq "$rounds"); do
        for impl in native candle; do
            "$bin/train_step" --arch "examples/archs/$arch.arch" --kernels "$impl" --threads 2 \
                --steps "$steps" --warmup "$warmup" \
                >> "$out/$arch.$impl.jsonl"
        done
        (cd scripts && "$py" torch_step.py --ir "$out/$arch.json" --threads 2 \
            --steps "$steps" --warmup "$warmup") >> "$out/$arch.pytorch.jsonl"
    done
done
python3 - "$out" $archs <<'PY'
import json, statistics, sys
out, archs = sys.argv[1], sys.argv[2:]
def runs(arch, impl):
    return [json.loads(l) for l in open(f"{out}/{arch}.{impl}.jsonl")]
def med(rs, key):
    return statistics.median(r[key] for r in rs)
print("| architecture | step: ours / candle / PyTorch (ms) | ours / PyTorch | candle / PyTorch "
      "| eval forward: ours / PyTorch (ms) | ours / PyTorch | peak MB: ours / candle / PyTorch |")
print("|---|---|---|---|---|---|---|")
for arch in archs:
    o, c, t = runs(arch, "native"), runs(arch, "candle"), runs(arch, "pytorch")
    so, sc, st = med(o, "step_ms"), med(c, "step_ms"), med(t, "step_ms")
    rng = lambda rs: f"{min(r['step_ms'] for r in rs):.0f}-{max(r['step_ms'] for r in rs):.0f}"
    mb = lambda rs: f"{med(rs, 'peak_rss_bytes') / 1e6:.0f}"
    print(f"| {arch} | {so:.1f} ({rng(o)}) / {sc:.1f} / {st:.1f} ({rng(t)}) | **{so / st:.2f}x** | {sc / st:.2f}x "
          f"| {med(o, 'eval_forward_ms'):.1f} / {med(t, 'eval_forward_ms'):.1f} "
          f"| {med(o, 'eval_forward_ms') / med(t, 'eval_forward_ms'):.2f}x | {mb(o)} / {mb(c)} / {mb(t)} |")
PY
