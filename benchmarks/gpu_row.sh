#!/usr/bin/env bash
# The full-size REM row of BENCHMARKS.md ("GPU row"), as one script for a short GPU lease:
#
#     bash benchmarks/gpu_row.sh [OUT]        # OUT: where the JSON rows and the Markdown go
#
# A tiny model first (imports, build, inference, training step on the GPU: a broken environment
# stops here within seconds, before the full-size builds), then rem-ms in bf16 (72-frame window),
# rem-wan-1.3b in bf16 (its 73-frame window, 17-frame training clips) and rem-ms inference in fp32.
# Each step has its own time limit, so that one slow step leaves the others their time. Random
# weights only: nothing is downloaded.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-benchmarks/results/gpu}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
START=$(date +%s)
log() { echo "[$(($(date +%s) - START)) s] $*"; }
bench() { python3 benchmarks/bench_rem.py --device cuda "$@" 2>&1 | grep -v Warning | tail -8; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
python3 - <<'PY' 2>&1 | tee -a "$OUT/machine.txt"
import importlib, platform
print("python", platform.python_version())
for name in ["torch", "diffusers", "transformers", "accelerate", "peft", "numpy", "huggingface_hub"]:
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:  # the report names what is missing; the smoke step then stops the run
        print(name, "MISSING", exc)
PY

log "smoke: rem-tiny"
timeout 90 python3 benchmarks/bench_rem.py --device cuda --config rem-tiny --frames 24 --frame-size 256x144 \
  --end-to-end --dtypes bf16 --repeats 1 >"$OUT/smoke.log" 2>&1
status=$?
tail -3 "$OUT/smoke.log"
[ "$status" = 0 ] || { log "the smoke step failed (exit $status): see $OUT/smoke.log"; exit 4; }

log "rem-ms bf16"
timeout 180 bash -c "$(declare -f bench); bench --config rem-ms --end-to-end --dtypes bf16 \
  --json '$OUT/rem-ms-bf16.json' --markdown '$OUT/rem.md'"
log "rem-wan-1.3b bf16"
timeout 200 bash -c "$(declare -f bench); bench --config rem-wan-1.3b --end-to-end --dtypes bf16 --frames 73 \
  --train-frames 17 --json '$OUT/rem-wan-1.3b-bf16.json' --markdown '$OUT/rem.md'"
log "rem-ms fp32 (inference only, one repeat)"
timeout 60 bash -c "$(declare -f bench); bench --config rem-ms --dtypes fp32 --repeats 1 --skip-training \
  --json '$OUT/rem-ms-fp32.json' --markdown '$OUT/rem.md'"
log done
