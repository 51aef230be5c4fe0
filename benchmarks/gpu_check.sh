#!/usr/bin/env bash
# The CUDA tests and a short speed and quality check on a GPU, in one command that ends within 8 minutes.
#
#   bash benchmarks/gpu_check.sh OUTPUT_DIR [--dry-run] [--data DIR]
#
# Run from anywhere on a machine with the repository (the commands run from its root). In order:
#   1. install .whl/*.whl (made by benchmarks/gpu_wheels.sh) into /tmp/site, put it and the repository
#      on PYTHONPATH, and print torch's version and whether CUDA is available;
#   2. the CUDA tests, python -m pytest -m cuda tests;
#   3. bench_speed.py: MiniLM and the transformer, GRU and bag-of-words models at 1k and 10k AG News
#      texts, then the transformer again with --compile;
#   4. bench_quality.py on TREC: the default transformer, plain objective, latent size 64, 10 epochs,
#      beside LSA and MiniLM, and, where bench_quality.py has --encoders, the autoencoder on the
#      pretrained MiniLM encoder (--encoders minilm);
#   5. bench_data_parallel.py --device cuda --jobs 1: the GRU on TREC in one process and as a torchrun job
#      of one process (data_parallel=True, nccl) on the same GPU.
# Each step runs under `timeout`, and one failing does not stop the others. OUTPUT_DIR receives
# summary.txt (each step's start, end, seconds and exit status), each step's output (pytest's in
# pytest_cuda.txt) and the benchmarks' results/<output>.{json,md}; the output names carry the GPU's
# name (speed_h200, speed_h200_compile, quality_h200_trec, data_parallel_h200).
#
# --dry-run, or a machine without CUDA: the same steps on the CPU (CUDA hidden) at tiny sizes and with
# torch.compile switched off, to try the script end to end in a few minutes; the CUDA tests are then
# skipped, the output names end in _dryrun, and the results those runs write are removed from
# benchmarks/results/ once copied.
#
# The datasets: --data DIR, else $SKTEXTAE_DATA, else .gpu_data/ in the repository when it exists
# (benchmarks/gpu_wheels.sh copies ag_news and trec there), else ../shared/data beside the repository.
set -uo pipefail

usage() { echo "usage: bash benchmarks/gpu_check.sh OUTPUT_DIR [--dry-run] [--data DIR]" >&2; exit 2; }

OUT="" DRY_RUN=0 DATA=""
while [ $# -gt 0 ]; do
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        --data) [ $# -ge 2 ] || usage; DATA=$2; shift ;;
        --data=*) DATA=${1#--data=} ;;
        -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1" >&2; usage ;;
        *) [ -z "$OUT" ] || usage; OUT=$1 ;;
    esac
    shift
done
[ -n "$OUT" ] || usage

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
SITE=/tmp/site
RESULTS=$REPO/benchmarks/results
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
cd "$REPO" || exit 2
export PYTHONUNBUFFERED=1
if [ -z "$DATA" ]; then
    if [ -n "${SKTEXTAE_DATA:-}" ]; then DATA=$SKTEXTAE_DATA
    elif [ -d "$REPO/.gpu_data" ]; then DATA=$REPO/.gpu_data
    else DATA=$REPO/../shared/data
    fi
fi
export SKTEXTAE_DATA=$DATA

START=$(date +%s)
FAILED=()

log() { echo "$*" | tee -a "$SUMMARY"; }

# Budgets, in seconds: the whole script ends by DEADLINE (a step gets what its budget and the time left
# allow, minus KILL_AFTER, the grace before `timeout` sends SIGKILL; one with under 10 s left is skipped).
KILL_AFTER=5
set_budgets() {
    if [ "$DRY_RUN" = 1 ]; then
        TOTAL=400 SETUP=60 PYTEST=60 SPEED=150 COMPILE=90 QUALITY=90 DATA_PARALLEL=90
    else
        TOTAL=470 SETUP=20 PYTEST=90 SPEED=160 COMPILE=80 QUALITY=100 DATA_PARALLEL=60
    fi
    DEADLINE=$((START + TOTAL))
}
set_budgets

# step NAME BUDGET OUTPUT_FILE COMMAND...: run COMMAND under timeout, its output shown and saved; STATUS is
# its exit status (124: timed out, 137: killed after the grace).
step() {
    local name=$1 budget=$2 output=$3 begin left limit note=""
    shift 3
    begin=$(date +%s)
    left=$((DEADLINE - begin - KILL_AFTER))
    if [ "$left" -lt 10 ]; then
        log "$name: skipped, $((DEADLINE - begin)) s left of the $TOTAL s"
        FAILED+=("$name")
        STATUS=124
        return
    fi
    limit=$((budget < left ? budget : left))
    log "$name: start $(date +%T), timeout $limit s: $*"
    timeout -k "$KILL_AFTER" "$limit" "$@" 2>&1 | tee "$output"
    STATUS=${PIPESTATUS[0]}
    case $STATUS in
        0) ;;
        124|137) note=" (timed out)"; FAILED+=("$name") ;;
        *) FAILED+=("$name") ;;
    esac
    log "$name: end $(date +%T), $(($(date +%s) - begin)) s, exit $STATUS$note"
}

# copy_results NAME EXISTED: copy results/NAME.{json,md} into OUTPUT_DIR; in a dry run remove them from
# results/ unless they were there before the run (EXISTED=1).
copy_results() {
    local name=$1 existed=$2 copied=()
    for file in "$RESULTS/$name.json" "$RESULTS/$name.md"; do
        if [ -f "$file" ]; then
            cp "$file" "$OUT/" && copied+=("$(basename "$file")")
            [ "$DRY_RUN" = 1 ] && [ "$existed" = 0 ] && rm -f "$file"
        fi
    done
    log "  results: ${copied[*]:-none written}"
}

existed() { [ -e "$RESULTS/$1.json" ] || [ -e "$RESULTS/$1.md" ] && echo 1 || echo 0; }

# 1. Wheels, paths, torch.
if [ "$DRY_RUN" = 1 ]; then
    export CUDA_VISIBLE_DEVICES=""
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # a small, maybe shared CPU: see benchmarks/README.md
fi
log "gpu_check: $(date '+%F %T'), repository $REPO, data $DATA, output $OUT"
wheels=("$REPO"/.whl/*.whl)
if [ -e "${wheels[0]}" ]; then
    step install_wheels "$SETUP" "$OUT/install_wheels.txt" "$PYTHON" -m pip install -q --no-index --no-deps \
        --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
    export PYTHONPATH=$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}
else
    log "no .whl/*.whl: skorch and MiniLM must already be installed (bash benchmarks/gpu_wheels.sh makes them)"
    export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
fi
step import "$SETUP" "$OUT/import.txt" "$PYTHON" -c \
    'import torch, skorch, sktextae; print(torch.__version__, torch.cuda.is_available())'
# Whether to run on the GPU asks torch alone, so that a broken package does not turn it into a dry run.
CUDA=$(timeout 60 "$PYTHON" -c 'import torch; print(torch.cuda.is_available())' 2>/dev/null)
if [ "$DRY_RUN" = 0 ] && [ "$CUDA" != True ]; then
    log "CUDA is not available here: a dry run on the CPU instead"
    DRY_RUN=1
    export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    set_budgets
fi
if [ "$DRY_RUN" = 1 ]; then
    SLUG=cpu SUFFIX=_dryrun
    log "mode: dry run on the CPU (OMP_NUM_THREADS=$OMP_NUM_THREADS), tiny sizes; the whole check ends within $TOTAL s"
else
    GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
    [ -n "$GPU" ] || GPU=$(timeout 30 "$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0))' 2>/dev/null)
    SLUG=$(echo "$GPU" | tr '[:upper:]' '[:lower:]' | sed -e 's/nvidia//g' -e 's/geforce//g' \
        -e 's/[^a-z0-9]\{1,\}/_/g' -e 's/^_//' -e 's/_$//')  # NVIDIA H200 -> h200
    SLUG=${SLUG:-gpu} SUFFIX=""
    log "mode: GPU $GPU; the whole check ends within $TOTAL s"
    nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1
fi
for dataset in ag_news trec; do
    [ -f "$DATA/$dataset/train.csv" ] || log "warning: no $DATA/$dataset/train.csv (--data DIR or SKTEXTAE_DATA)"
done

# 2. The CUDA tests (all skipped on a CPU).
step pytest_cuda "$PYTEST" "$OUT/pytest_cuda.txt" "$PYTHON" -m pytest -m cuda tests -q -p no:cacheprovider

# 3. Speed, then the transformer compiled.
SPEED_NAME=speed_$SLUG$SUFFIX
COMPILE_NAME=speed_${SLUG}_compile$SUFFIX
# In a dry run torch.compile is switched off (TORCHDYNAMO_DISABLE=1: compile=True then runs eagerly), as
# compiling on a small CPU takes minutes: the step still goes through bench_speed.py --compile.
if [ "$DRY_RUN" = 1 ]; then
    SIZES=(--sizes 64 --max-epochs 1 --batch-size 32 --inference-batch-size 32) NO_DYNAMO=(env TORCHDYNAMO_DISABLE=1)
else
    SIZES=(--sizes 1000,10000) NO_DYNAMO=()
fi
before=$(existed "$SPEED_NAME")
step bench_speed "$SPEED" "$OUT/bench_speed.txt" "$PYTHON" benchmarks/bench_speed.py --data "$DATA" \
    --dataset ag_news "${SIZES[@]}" --methods minilm,sktextae-transformer,sktextae-gru,sktextae-bow \
    --output "$SPEED_NAME"
copy_results "$SPEED_NAME" "$before"
before=$(existed "$COMPILE_NAME")
step bench_speed_compile "$COMPILE" "$OUT/bench_speed_compile.txt" "${NO_DYNAMO[@]}" "$PYTHON" \
    benchmarks/bench_speed.py --data "$DATA" --dataset ag_news "${SIZES[@]}" --methods sktextae-transformer --compile \
    --output "$COMPILE_NAME"
copy_results "$COMPILE_NAME" "$before"

# 4. Quality on TREC beside LSA and MiniLM; with --encoders minilm (the autoencoder on MiniLM's encoder)
# where bench_quality.py has that option, else without MiniLM at all in a dry run (slow on a CPU).
QUALITY_NAME=quality_${SLUG}_trec$SUFFIX
ENCODERS=()
help=$(timeout 60 "$PYTHON" benchmarks/bench_quality.py --help 2>/dev/null) \
    || help=$(grep -o -- '"--encoders"' benchmarks/bench_quality.py)  # --help failed: its source then
if grep -q -- "--encoders" <<< "$help"; then
    ENCODERS=(--encoders minilm)
elif [ "$DRY_RUN" = 1 ]; then
    ENCODERS=(--no-minilm)
fi
log "bench_quality.py --encoders: $([ "${ENCODERS[0]:-}" = --encoders ] && echo accepted || echo not an option)"
if [ "$DRY_RUN" = 1 ]; then SUBSET=(--max-train 300 --max-test 100 --max-epochs 1); else SUBSET=(--max-epochs 10); fi
before=$(existed "$QUALITY_NAME")
step bench_quality "$QUALITY" "$OUT/bench_quality.txt" "$PYTHON" benchmarks/bench_quality.py --data "$DATA" \
    --datasets trec --architectures transformer --latent-dims 64 --objectives plain "${SUBSET[@]}" \
    "${ENCODERS[@]}" --output "$QUALITY_NAME"
copy_results "$QUALITY_NAME" "$before"

# 5. One model trained as a torchrun job of one process (the data-parallel path) beside one process.
DATA_PARALLEL_NAME=data_parallel_$SLUG$SUFFIX
if [ "$DRY_RUN" = 1 ]; then DP=(--device cpu --n-train 300 --epochs 1); else DP=(--device cuda); fi
before=$(existed "$DATA_PARALLEL_NAME")
step bench_data_parallel "$DATA_PARALLEL" "$OUT/bench_data_parallel.txt" "$PYTHON" benchmarks/bench_data_parallel.py \
    --data "$DATA" "${DP[@]}" --jobs 1 --output "$DATA_PARALLEL_NAME"
copy_results "$DATA_PARALLEL_NAME" "$before"

log "gpu_check: done $(date +%T), $(($(date +%s) - START)) s; failed: ${FAILED[*]:-none}"
[ ${#FAILED[@]} -eq 0 ]
