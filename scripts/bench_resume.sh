#!/usr/bin/env bash
# The driver's cost against the size of the run: a search over an 8-dimension user space with
# an instant external evaluator (`echo`), run to N finished evaluations, then reopened with
# --resume (the history is rebuilt from the log and the records; nothing is left to run).
#   scripts/bench_resume.sh [N ...]        (default: 10 1000 100000)
# Prints a markdown table: wall time and peak memory of the run and of the resume, and the run
# directory's size.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin nas >&2
nas="$target/release/nas"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
    echo 'name = "wide"'
    for i in 0 1 2 3 4 5 6 7; do
        printf '[[dimensions]]\nname = "d%s"\nchoices = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n' "$i"
    done
} > "$work/space.toml"

# timed LABEL COMMAND... -> "wall_seconds peak_MB"
timed() {
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" > /dev/null
    awk '{printf "%.2f %.0f\n", $1, $2 / 1024}' "$work/time"
}

echo "| finished evaluations | run: wall (s) | run: peak RSS (MB) | resume: wall (s) | resume: peak RSS (MB) | run directory |"
echo "|---|---|---|---|---|---|"
for n in "${@:-10 1000 100000}"; do
    for budget in $n; do
        dir="$work/run-$budget"
        read -r run_wall run_mb < <(timed "$nas" search --space "$work/space.toml" \
            --evaluator 'echo "{\"score\": 0.5}"' --strategy random --seed 1 \
            --budget "$budget" --parallel 2 --run-dir "$dir")
        read -r resume_wall resume_mb < <(timed "$nas" search --resume "$dir")
        size=$(du -sh "$dir" | cut -f1)
        echo "| $budget | $run_wall | $run_mb | $resume_wall | $resume_mb | $size |"
        rm -rf "$dir"
    done
done
