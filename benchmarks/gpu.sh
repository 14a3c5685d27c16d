#!/usr/bin/env bash
# Every GPU row of benchmarks/README.md in one call (issue 12), <= 8 min on
# one H100/H200-class GPU:
#   1. training throughput at paper size (HuBERT-large + DeBERTaV3-large from
#      their configs, random weights): fp32 fixed batches of 16 vs bf16,
#      bf16 + dynamic batching; peak memory; the estimated 20-epoch fold and
#      10-fold times;
#   2. inference latency of a 5 s utterance, fp32 and bf16;
#   3. a cached vs uncached fold of the recipe (frozen paper-size encoders,
#      bf16): wall time, test metrics, checkpoint bytes;
#   4. our training step vs the bare encoders' forward + backward.
#
#   bash benchmarks/gpu.sh --prepare   # where the package registry is
#       reachable: wheels of what the GPU machine lacks (SpeechBrain,
#       HyperPyYAML, ruamel.yaml, joblib, sentencepiece) into
#       benchmarks/gpu_wheels/ (git-ignored, a few MB)
#   bash benchmarks/gpu.sh             # on the GPU machine; with the device
#       tool: carry ["benchmarks/gpu_wheels"], timeout_s 540
#   bash benchmarks/gpu.sh --dry-run   # on a CPU: the same steps with tiny
#       models, to check the script (a few minutes)
#   GPU_BENCH_WORK=DIR bash benchmarks/gpu.sh [--dry-run]   # the work
#       folder (models, corpora, runs; kept); default: a new temporary one
#
# The package itself is used from the working tree (PYTHONPATH), not
# installed. Figures print to stdout; keep them in benchmarks/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
wheels="benchmarks/gpu_wheels"
mode="${1:-run}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ "$mode" = "--prepare" ]; then
    rm -rf "$wheels" && mkdir -p "$wheels"
    pins=(speechbrain==1.1.2 HyperPyYAML==1.2.3 ruamel.yaml==0.18.17
          joblib==1.6.0)
    python -m pip download --quiet --no-deps -d "$wheels" "${pins[@]}"
    for version in 3.10 3.11 3.12 3.13; do  # compiled: one per Python
        python -m pip download --quiet --no-deps -d "$wheels" \
            --only-binary=:all: --platform manylinux_2_28_x86_64 \
            --python-version "$version" sentencepiece==0.2.3 \
            || echo "no sentencepiece wheel for Python $version"
    done
    du -sh "$wheels" && ls "$wheels"
    exit 0
fi

case "$mode" in
    run) size=large; device_args=(); work="${OUT:-/tmp}/gpu_bench"
         utterances=128; repeats=20; folds=2; epochs=3; corpus=small
         precision=bf16; device=cuda:0; step_size=large ;;
    --dry-run) size=tiny; device_args=(--force-cpu)
         work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_dry_run.XXXXXX")
         utterances=24; repeats=3; folds=2; epochs=1; corpus=tiny
         precision=fp32; device=cpu; step_size=tiny ;;
    *) echo "usage: bash benchmarks/gpu.sh [--prepare|--dry-run]" >&2; exit 2 ;;
esac
work="${GPU_BENCH_WORK:-$work}"
echo "work folder: $work"

# What the GPU machine lacks is installed from the wheels that came along
missing=$(python - <<'PY'
import importlib.util
needed = ["speechbrain", "hyperpyyaml", "ruamel.yaml", "joblib",
          "sentencepiece"]
print(" ".join(m for m in needed if importlib.util.find_spec(m) is None))
PY
)
if [ -n "$missing" ]; then
    [ -d "$wheels" ] || { echo "missing $missing and no $wheels: run" \
        "'bash benchmarks/gpu.sh --prepare' where the registry is reachable" \
        "and carry $wheels" >&2; exit 1; }
    echo "installing from $wheels: $missing"
    # shellcheck disable=SC2086  # one name per missing module
    python -m pip install --quiet --no-index --no-deps --find-links "$wheels" \
        $missing
fi
python - <<'PY'
import importlib.util
import sys

import torch
for module in ("scipy", "numpy", "transformers", "torchaudio", "soundfile"):
    if importlib.util.find_spec(module) is None:
        sys.exit(f"gpu.sh: {module} is missing on this machine; carry its "
                 f"wheel for Python {sys.version_info.major}."
                 f"{sys.version_info.minor} in benchmarks/gpu_wheels")
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"torch {torch.__version__}, GPU: {gpu}")
PY
mkdir -p "$work"
step() {  # a step that fails or runs out of time does not stop the others
    local seconds="$1"; shift
    echo; echo "### $*"
    timeout "$seconds" "$@" || echo "### failed or timed out ($?): $*"
}
step 240 python benchmarks/throughput.py --gpu-only "${device_args[@]}" \
    --paper-size "$size" --utterances "$utterances" --work "$work/throughput"
step 90 python benchmarks/latency.py --gpu-only "${device_args[@]}" \
    --paper-size "$size" --durations 5 --repeats "$repeats" \
    --work "$work/latency"
step 60 python benchmarks/step_overhead.py --size "$step_size" \
    --device "$device" --repeats 3 --work "$work/step_overhead"
step 170 python benchmarks/cache_cv.py --runner recipe --encoders "$size" \
    --folds "$folds" --epochs "$epochs" --size "$corpus" --device "$device" \
    --precision "$precision" --work "$work/cache_cv"
