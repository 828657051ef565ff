#!/usr/bin/env bash
# On the development machine, right after a device call of the GPU round: the reports it
# brought back, into benchmarks/results/ under the card's short name, ready to commit.
# The files a call brings back live only as long as this machine's session: a round
# whose files were not kept at once was lost with it. Usage:
#   bash benchmarks/gpu/keep.sh FILES_AT [SUFFIX]   # FILES_AT: the call's files_at
# Reads FILES_AT/round.tgz, else the copies `round.sh collect` made as it went
# (FILES_AT/partial); "concurrency-nvidiah10080gbhbm3-1B.md" is kept as
# "concurrency-h100-1B$SUFFIX.md". Logs stay out; an existing result is never overwritten.
set -euo pipefail
at=${1:?usage: keep.sh FILES_AT [SUFFIX]}
suffix=${2:-}
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -f "$at/round.tgz" ]; then
    tar xzf "$at/round.tgz" -C "$work"
    from=$work/round
elif [ -d "$at/partial" ]; then
    from=$at/partial
else
    echo "keep.sh: neither $at/round.tgz nor $at/partial" >&2
    exit 1
fi
cat "$from/steps.log" 2> /dev/null || true
kept=0
for file in "$from"/*.md "$from"/*.json "$from"/*.json.gz "$from"/*.png; do
    [ -f "$file" ] || continue
    name=$(basename "$file")
    # the card as round.sh spells it (nvidia-smi's name, letters and digits) -> h100, h200, a100
    short=$(echo "$name" | sed -E 's/nvidia([a-z]+[0-9]{2,3})[a-z0-9]*/\1/')
    base=${short%%.*}
    ext=${short#"$base"}
    target=benchmarks/results/$base$suffix$ext
    if [ -e "$target" ]; then
        echo "keep.sh: $target exists; not overwritten (give a SUFFIX)" >&2
        continue
    fi
    cp "$file" "$target"
    echo "kept $target"
    kept=$((kept + 1))
done
echo "$kept reports kept; commit them now"
