#!/usr/bin/env bash
# One-epoch training, our trainer against PyTorch (CPU) on the same architectures, data sizes and
# recipe (the feedback-memory proxy: SGD 0.01, momentum 0.9, wd 5e-4, cosine, batch 128), in the
# same run, one after the other. Prints a Markdown table of images/s, accuracies and peak memory.
#
#     scripts/bench_train.sh [DATA.tar.gz]      # default: ../shared/data/cifar10/cifar10-jpg.tar.gz
#
# Needs PyTorch for CPU (../shared/tools/torch-cpu-env.sh). Takes about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/cifar10/cifar10-jpg.tar.gz}"
py=$(../shared/tools/torch-cpu-env.sh | tail -1)
cargo build --release --example train_arch --example check_arch >&2
bin="${CARGO_TARGET_DIR:-target}/release/examples"
out=$(mktemp -d)
# architecture:training images (the NAS-Bench-201 network is 15x the FLOPs of the others).
runs="vgg_small:10000 resnet8:10000 nb201_6111:2000"
echo "| architecture | train images | ours img/s | PyTorch img/s | speed ratio | ours val/test acc | PyTorch val/test acc | ours peak MB | PyTorch peak MB | ours data wait s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for run in $runs; do
    arch=${run%%:*}; n=${run##*:}
    "$bin/check_arch" --arch "examples/archs/$arch.arch" --ir-json "$out/$arch.json" >/dev/null
    "$bin/train_arch" --arch "examples/archs/$arch.arch" --data "$data" \
        --val-size 5000 --limit-train "$n" --json "$out/$arch.ours.json" >&2
    "$py" scripts/torch_train.py --ir "$out/$arch.json" --data "$data" --val-size 5000 \
        --limit-train "$n" > "$out/$arch.torch.json"
    python3 - "$arch" "$n" "$out/$arch.ours.json" "$out/$arch.torch.json" <<'PY'
import json, sys
arch, n, ours, torch = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
acc = lambda r: f"{100 * r['val_acc']:.1f} / {100 * r['test_acc']:.1f}"
print(f"| {arch} | {n} | {ours['images_per_second']:.0f} | {torch['images_per_second']:.0f} | "
      f"{torch['images_per_second'] / ours['images_per_second']:.1f}x slower | {acc(ours)} | {acc(torch)} | "
      f"{ours['peak_rss_bytes'] / 1e6:.0f} | {torch['peak_rss_bytes'] / 1e6:.0f} | {ours['data_wait_seconds']:.2f} |")
PY
done
