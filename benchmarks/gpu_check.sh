#!/usr/bin/env bash
# The device check (benchmarks/gpu_check.py): every CUDA path of oodbench run once and measured,
# reported to $OUT (or --out) as gpu_check.json + gpu_check.md + gpu_check.log, within --budget s.
#   benchmarks/gpu_check.sh --commit <sha>                    # on the lent GPU machine
#   benchmarks/gpu_check.sh --device cpu --quick --out DIR    # the CPU rehearsal (CI slow test)
# PYTHON selects the interpreter (default python3, the one that holds torch on the GPU machine).
set -u
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python3}" "$here/gpu_check.py" "$@"
