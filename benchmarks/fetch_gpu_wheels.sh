#!/usr/bin/env bash
# Download the wheels that the GPU machine lacks into <repo>/.whl (git-ignored through
# .git/info/exclude), so that a device run can carry them: run(..., carry=[".whl"]).
# benchmarks/gpu_check.sh installs every wheel it finds there into a private folder (--target),
# never touching the machine's torch. Only cityscapesScripts (label table of the synthetic data)
# and pycocotools (COCO outlier masks) are missing there; see /work/.library/device/KINDS.md.
# Usage: benchmarks/fetch_gpu_wheels.sh [python-version, default 3.12]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
pyver=${1:-3.12}
py=${PYTHON:-python3}
mkdir -p "$repo/.whl"
exclude=$(git -C "$repo" rev-parse --git-path info/exclude 2>/dev/null || true)
if [ -n "$exclude" ]; then
    case $exclude in /*) ;; *) exclude=$repo/$exclude ;; esac
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
fi
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$repo/.whl" \
    cityscapesScripts==2.3.0 pycocotools==2.0.11
ls -l "$repo/.whl"
