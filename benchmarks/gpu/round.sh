#!/usr/bin/env bash
# The GPU round of the speed tables (docs/benchmarks.md), in one detached run on the
# lent machine: a device call ends after 10 minutes, the round takes longer, and a
# process in its own session runs on between calls. Carry .whl and .carry
# (benchmarks/gpu/carry.sh), then:
#   bash benchmarks/gpu/round.sh start           # builds, writes the models, measures
#                                                # (ROUND_ONLY: modes, run in turn:
#                                                # 1B: the 1B concurrency only;
#                                                # check: drafts, long prompts;
#                                                # CHECK_PROFILE=1: and the stall profiled;
#                                                # gaps: that profile alone;
#                                                # long: long prompts and the stall
#                                                # beside llama-server;
#                                                # stall: that profile, then
#                                                # gpu/step.py at 1-4 streams;
#                                                # probe: 1B at 1 and 8 streams,
#                                                # it, gpu/step.py at 1-4, drafts, prefill;
#                                                # quick: gpu/step.py, the 1B
#                                                # at 1-128 streams and profiled, slots
#                                                # scattered or side by side;
#                                                # low: the 1B at 1 and 8, 5 runs;
#                                                # drafts: the sibling draft;
#                                                # gpudrafts: it at 1-16 streams, the
#                                                # stranger, 6 guesses a step;
#                                                # confirm: both at 1 and 8, 5 runs;
#                                                # draftprofile: localllm's steps with
#                                                # the sibling at 1, 4, 8 streams; 8B;
#                                                # table: the 1B at 1-128; step:
#                                                # gpu/step.py at 1-128)
#   bash benchmarks/gpu/round.sh collect 570     # waits up to 570 s (or the end), then
#                                                # $OUT/round.tgz: every report so far
#   bash benchmarks/gpu/keep.sh FILES_AT         # here, at once after each call: the
#                                                # reports into benchmarks/results/
#   bash benchmarks/gpu/round.sh save            # once built: the build into $OUT in
#                                                # parts; put them in .carry/build/ and
#                                                # the next machine skips the build
# Steps, most wanted first; each report lands in /tmp/round as it finishes:
#   one step in-process (gpu/step.py), 1B concurrency (localllm, llama-server default and fastest, llama-batched-bench),
#   long prompts and stalls (1B), the 1B step profile, 8B concurrency, drafts.
set -uo pipefail
ROUND=/tmp/round
M=/tmp/gpu-models
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -cd 'A-Za-z0-9' | tr 'A-Z' 'a-z')
case "${1:-}" in
start)
    mkdir -p "$ROUND"
    ROUND_ONLY=${ROUND_ONLY:-} CHECK_PROFILE=${CHECK_PROFILE:-} PREFILL_ARGS=${PREFILL_ARGS:-} \
        STALL_REPEAT=${STALL_REPEAT:-} setsid nohup bash "$0" run > "$ROUND/round.log" 2>&1 < /dev/null &
    echo "round started on $CARD"
    ;;
collect)
    deadline=$((SECONDS + ${2:-0}))
    while [ ! -f "$ROUND/done" ] && [ $SECONDS -lt $deadline ]; do
        sleep 5
        # copies as it goes: a call cut off at the device's time limit still brings them
        mkdir -p "${OUT:-/tmp/out}/partial"
        cp -r "$ROUND/." "${OUT:-/tmp/out}/partial/" 2>/dev/null
        cp /tmp/localllm-bench-home-*/logs/runners/*.log "${OUT:-/tmp/out}/partial/" 2>/dev/null
    done
    cat "$ROUND/steps.log" 2>/dev/null
    tail -5 "$ROUND/round.log" 2>/dev/null
    tar czf "${OUT:-/tmp/out}/round.tgz" -C /tmp round
    ;;
save)
    # What setup.sh installs from the build: its libraries and the two tools, in parts
    # under the device's 16 MB a file (8 files and 64 MB a call come back); `source`
    # names the llama-cpp-python release they were built from.
    B=/tmp/llama-build
    [ -f "$B/source" ] || { echo "no finished build in $B" >&2; exit 1; }
    (cd / && find "${B#/}" -name '*.so*' -o -path "${B#/}/source" -o -path "${B#/}/bin/llama-server" \
        -o -path "${B#/}/bin/llama-batched-bench") | tar -C / -cf - -T - | xz -T0 -6 \
        | split -b 15M - "${OUT:-/tmp/out}/llama-build.tar.xz.part-"
    cp "$B/source" "${OUT:-/tmp/out}/source"
    ls -la "${OUT:-/tmp/out}"
    ;;
run)
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 LOCALLLM_HOME=/tmp/localllm-home
    export LOCALLLM_BENCH_RESULTS=$ROUND
    step() { echo "== $1 $(date +%T)" >> "$ROUND/steps.log"; }
    mkdir -p "$M"
    step "setup ($CARD)"
    bash benchmarks/gpu/setup.sh wheels
    bash benchmarks/gpu/setup.sh > "$ROUND/setup.log" 2>&1 &
    build=$!
    python3 benchmarks/_models.py "$M" 1B --base > "$ROUND/models.log" 2>&1 &
    base1=$!
    case " ${ROUND_ONLY:-full} " in  # the 8B's base beside the build too, when it is asked for
    *" 8B "*|*" full "*) python3 benchmarks/_models.py "$M" 8B --base > "$ROUND/models-8B.log" 2>&1 & ;;
    esac
    wait $build || { step "setup failed"; tail -30 /tmp/build.log >> "$ROUND/steps.log"; touch "$ROUND/done"; exit 1; }
    wait $base1
    step "built; quantizing 1B"
    python3 benchmarks/_models.py "$M" 1B >> "$ROUND/models.log" 2>&1
    nvidia-smi > "$ROUND/nvidia-smi.txt"
    common=(--ngl 99 --threads 8 --llama-server /tmp/llama-server
            --batched-bench /tmp/llama-batched-bench --workdir "$M")
    fast=(--fast-flags "-fa on --backend-sampling")
    one_step() {
        step "one step at 1, 8, 64 and 128 streams (in-process)"
        python3 benchmarks/gpu/step.py --model "$M/llama-1B-Q4_K_M.gguf" --streams 1 8 64 128 \
            --steps 64 --slot-ctx 1024 --out "$ROUND/step-$CARD.md" > "$ROUND/step.log" 2>&1
    }
    concurrency() {  # $1: 1B or 8B, $2: new tokens a stream, $3: context a slot
        step "$1 concurrency (llama-server also ${fast[1]})"
        python3 benchmarks/concurrency.py --model "$M/llama-$1-Q4_K_M.gguf" "${common[@]}" \
            "${fast[@]}" --no-bundled --levels 1 8 32 64 128 --tokens "$2" --repeat 3 \
            --slot-ctx "$3" --clients 8 --chat-turns 0 --tag "$CARD-$1" \
            > "$ROUND/concurrency-$CARD-$1.md" 2> "$ROUND/concurrency-$1.log"
    }
    concurrency_1B() { concurrency 1B 96 1024; }
    profile_1B() {
        step "1B profile"
        python3 benchmarks/concurrency.py --model "$M/llama-1B-Q4_K_M.gguf" --ngl 99 --threads 8 \
            --no-llama-server --no-bundled --levels 1 64 128 --tokens 128 --repeat 1 \
            --slot-ctx 1024 --clients 8 --chat-turns 0 --profile --tag "$CARD-1B-profile" \
            > "$ROUND/profile-$CARD-1B.md" 2> "$ROUND/profile.log"
    }
    low_1B() {  # the closest race: 1 and 8 streams
        step "1B concurrency, 1 and 8 streams"
        python3 benchmarks/concurrency.py --model "$M/llama-1B-Q4_K_M.gguf" "${common[@]}" \
            "${fast[@]}" --no-bundled --levels 1 8 --tokens 96 --repeat "$1" --slot-ctx 1024 \
            --clients 8 --chat-turns 0 --tag "$CARD-1B-low" \
            > "$ROUND/concurrency-$CARD-1B-low.md" 2> "$ROUND/concurrency-1B-low.log"
    }
    stall_profile() {  # localllm's stalls, profiled
        step "stall profile (localllm)"
        python3 benchmarks/long_prompts.py --model "$M/llama-1B-Q4_K_M.gguf" "${common[@]}" \
            --clients 4 --no-llama-server --profile --sizes 4096 --repeat "${STALL_REPEAT:-2}" \
            --tag "$CARD-1B-profile" > "$ROUND/stall-profile-$CARD-1B.md" 2> "$ROUND/stall.log"
    }
    low_step() {
        step "one step at 1, 2 and 4 streams (in-process)"
        python3 benchmarks/gpu/step.py --model "$M/llama-1B-Q4_K_M.gguf" --streams 1 2 4 \
            --steps 200 --out "$ROUND/step-$CARD-low.md" > "$ROUND/step-low.log" 2>&1
    }
    drafts() {  # $1: the pairs; $2: the levels; $3: the tag's end; then draft.py's own
        step "drafts ($1 at ${2:-1 8})"
        # shellcheck disable=SC2086  # $1, $2: one or more each
        python3 benchmarks/draft.py --ngl 99 --llama-server /tmp/llama-server --workdir "$M" \
            --levels ${2:-1 8} --layers 24 --width 2048 --residual 0.02 --threads 8 --repeat 3 \
            --pairs $1 --tag "$CARD${3:-}" "${@:4}" >> "$ROUND/draft.log" 2>&1
    }
    long_prompts() {
        step "long prompts"
        python3 benchmarks/long_prompts.py --model "$M/llama-1B-Q4_K_M.gguf" "${common[@]}" \
            --clients 4 --server-flags "-fa on --backend-sampling -ub 2048 -b 2048" \
            --tag "$CARD-1B" > "$ROUND/long-prompts-$CARD-1B.md" 2> "$ROUND/long.log"
    }
    concurrency_8B() {
        step "writing and quantizing 8B"
        python3 benchmarks/_models.py "$M" 8B >> "$ROUND/models.log" 2>&1
        concurrency 8B 128 512
    }
    scattered() {
        step "scattered slots"
        python3 benchmarks/scattered_slots.py --model "$M/llama-1B-Q4_K_M.gguf" --ngl 99 \
            --threads 8 --streams 8 --tokens 128 > "$ROUND/scattered-slots-$CARD.md" \
            2> "$ROUND/scattered.log"
    }
    for mode in ${ROUND_ONLY:-full}; do  # several in a row: "quick stall drafts"
        case "$mode" in
        full) one_step; concurrency_1B; long_prompts; profile_1B; concurrency_8B
              drafts "sibling stranger" ;;
        1B) one_step; concurrency_1B ;;
        table) concurrency_1B ;;  # the 1B alone, for a short lease
        step) one_step ;;
        quick) one_step; concurrency_1B; profile_1B; scattered ;;  # after a change to the step
        low) low_1B 5 ;;
        stall) stall_profile; low_step ;;
        gaps) stall_profile ;;  # the stall alone, profiled
        long) long_prompts ;;  # long prompts and the stall, beside llama-server
        probe) low_1B 3; stall_profile; low_step; drafts "sibling stranger"
               step "prefill (in-process)"
               # shellcheck disable=SC2086  # PREFILL_ARGS: several arguments
               python3 benchmarks/gpu/prefill.py --model "$M/llama-1B-Q4_K_M.gguf" \
                   ${PREFILL_ARGS:---ubatch 512 2048} --out "$ROUND/prefill-$CARD-1B.md" \
                   > "$ROUND/prefill.log" 2>&1 ;;
        drafts) drafts sibling ;;
        gpudrafts) drafts sibling "1 2 4 8 16" -levels   # every level, then the draft
                   drafts stranger "1 8" -stranger        # that never agrees
                   drafts sibling 1 -k6 --draft-max 6 ;;  # a longer steady length
        confirm) drafts "sibling stranger" "1 8" -confirm --repeat 5 ;;  # 5 runs a level
        draftprofile) drafts sibling "1 4 8" -profile --profile --no-llama-server ;;
        check) drafts sibling
               step "long prompts (localllm)"
               python3 benchmarks/long_prompts.py --model "$M/llama-1B-Q4_K_M.gguf" \
                   "${common[@]}" --clients 4 --no-llama-server --sizes 4096 --repeat 2 \
                   --tag "$CARD-1B-check" > "$ROUND/long-prompts-$CARD-1B-check.md" \
                   2> "$ROUND/long.log"
               if [ -n "${CHECK_PROFILE:-}" ]; then stall_profile; fi ;;
        8B) concurrency_8B ;;
        *) step "unknown mode $mode" ;;
        esac
    done
    step "done"
    touch "$ROUND/done"
    ;;
*)
    echo "usage: $0 start | collect [SECONDS] | save" >&2
    exit 2
    ;;
esac
