#!/usr/bin/env bash
# The in-process runtime against llama.cpp (llama-cpp-python built from source, CPU, 2 threads) on
# the same GGUF files, one after the other in the same run. Prints a Markdown table.
#
#     scripts/bench_llm.sh [MODEL.gguf ...]   # default: SmolLM2-135M and Qwen2.5-Coder-1.5B
set -euo pipefail
cd "$(dirname "$0")/.."
# llama-cpp-python built from source without AMX: the shared env's native build (GGML_NATIVE=ON)
# enables AMX_INT8 on this CPU and segfaults in llama_decode under our VMs; AVX-512 is kept.
py=${LLAMACPP_PY:-$HOME/.cache/llamacpp-noamx/bin/python}
if ! "$py" -c 'import llama_cpp' 2>/dev/null; then
    venv=$(dirname "$(dirname "$py")")
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip wheel >&2
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AMX_INT8=OFF -DGGML_CUDA=OFF" \
        CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/python" -m pip install --no-cache-dir "llama-cpp-python==0.3.36" >&2
fi
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
    models=("$(../shared/tools/fetch-gguf.sh smollm2-135m)" "$(../shared/tools/fetch-gguf.sh qwen2.5-coder-1.5b)")
fi
cargo build --release --example llm_bench >&2
echo "| model | prompt tokens | ours prefill tok/s | llama.cpp prefill tok/s | ours decode tok/s | llama.cpp decode tok/s | llama.cpp / ours (decode) | ours peak MB | llama.cpp peak MB |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in "${models[@]}"; do
    ours=$("${CARGO_TARGET_DIR:-target}"/release/examples/llm_bench --model "$m")
    ref=$("$py" scripts/llamacpp_bench.py "$m")
    python3 - "$(basename "$m")" "$ours" "$ref" <<'PY'
import json, sys
name, o, r = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {name} | {o['prompt_tokens']} | {o['prefill_tps']:.1f} | {r['prefill_tps']:.1f} | {o['decode_tps']:.1f} | "
      f"{r['decode_tps']:.1f} | {r['decode_tps'] / o['decode_tps']:.2f} | {o['peak_rss_bytes'] / 1e6:.0f} | {r['peak_rss_bytes'] / 1e6:.0f} |")
PY
done
