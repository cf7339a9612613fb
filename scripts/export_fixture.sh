#!/usr/bin/env bash
# Regenerates crates/trainer/tests/fixtures/export.json: PyTorch's state dicts and eval-mode
# outputs of the exported test networks (crates/trainer/tests/export.rs), so that the always-on
# test compares with real PyTorch numbers on machines without it.
#
#     scripts/export_fixture.sh
#
# Runs the live test with PyTorch for CPU (../shared/tools/torch-cpu-env.sh, or NAS_TORCH_PYTHON)
# and lets it write the fixture. Needed when the trainer's initialisation or the test cases change.
set -euo pipefail
cd "$(dirname "$0")/.."
export NAS_TORCH_PYTHON="${NAS_TORCH_PYTHON:-$(../shared/tools/torch-cpu-env.sh | tail -1)}"
export NAS_EXPORT_FIXTURE="$PWD/crates/trainer/tests/fixtures/export.json"
cargo test -p trainer --test export -- --exact pytorch_reproduces_our_forward_pass --nocapture
