#!/usr/bin/env bash
# The executors' overhead, side by side: the same table searches with the local executor and
# with Slurm jobs on the cluster SLURM_CONF points at (e.g. ../shared/tools/slurm-local).
#   scripts/bench_executors.sh > /tmp/bench_executors.md
# Prints markdown tables: per-evaluation wall time of instant lookups, throughput of
# fixed-duration (1 s) evaluations against the tasks in flight, and the driver's cost against
# the number of evaluations.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin nas >&2
nas="$target/release/nas"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'poll_seconds = 0.2\nworker = "%s"\n' "$(realpath "$nas")" > "$work/slurm.toml"

# search EXECUTOR PARALLEL BUDGET HOLD -> wall seconds, driver CPU seconds
search() {
    local dir="$work/run-$1-$2-$3-$4-$RANDOM"
    /usr/bin/time -f '%e %U %S' -o "$work/time" "$nas" search --strategy random --seed 1 \
        --budget "$3" --parallel "$2" --hold "$4" --executor "$1" \
        --slurm-config "$work/slurm.toml" --run-dir "$dir" > /dev/null
    awk '{printf "%.2f %.2f\n", $1, $2 + $3}' "$work/time"
}

echo "| evaluations (instant lookups) | executor | in flight | wall (s) | per evaluation (ms) |"
echo "|---|---|---|---|---|"
for executor in local slurm; do
    for parallel in 1 4; do
        read -r wall _ < <(search "$executor" "$parallel" 40 0)
        per=$(awk -v w="$wall" 'BEGIN {printf "%.1f", 1000 * w / 40}')
        echo "| 40 | $executor | $parallel | $wall | $per |"
    done
done
echo
echo "| evaluations of 1 s | executor | in flight | wall (s) | evaluations/s |"
echo "|---|---|---|---|---|"
for executor in local slurm; do
    for parallel in 1 2 4 8; do
        read -r wall _ < <(search "$executor" "$parallel" 16 1)
        rate=$(awk -v w="$wall" 'BEGIN {printf "%.2f", 16 / w}')
        echo "| 16 | $executor | $parallel | $wall | $rate |"
    done
done
echo
echo "| evaluations (local, instant) | wall (s) | driver CPU (s) | driver CPU per evaluation (ms) |"
echo "|---|---|---|---|"
for budget in 100 1000 5000; do
    read -r wall cpu < <(search local 4 "$budget" 0)
    per=$(awk -v c="$cpu" -v b="$budget" 'BEGIN {printf "%.2f", 1000 * c / b}')
    echo "| $budget | $wall | $cpu | $per |"
done
echo
echo "| evaluations (Slurm, instant) | in flight | wall (s) | driver CPU (s) |"
echo "|---|---|---|---|"
for parallel in 10 100; do
    read -r wall cpu < <(search slurm "$parallel" 100 0)
    echo "| 100 | $parallel | $wall | $cpu |"
done
