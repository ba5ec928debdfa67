#!/usr/bin/env bash
# Builds the CUDA addon on a machine without a CUDA toolkit: nvcc, headers and the CUDA 13
# libraries come from PyPI's NVIDIA wheels; cudarc links against libcuda at build time, so a stub
# (every driver symbol cudarc declares, as empty functions) stands in for the driver here.
# The GPU machine needs the real driver and the same major version of cuBLAS / cuRAND at run time.
#
# Usage: scripts/cuda-from-pip.sh [DIR] [COMPUTE_CAP]   (default DIR .cuda13, COMPUTE_CAP 90)
set -euo pipefail
DIR=$(realpath -m "${1:-.cuda13}")
CAP=${2:-90}
R=$DIR/x/nvidia/cu13
if [ ! -x "$R/bin/nvcc" ]; then
  mkdir -p "$DIR"
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$DIR" \
    "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" \
    "nvidia-nvvm==13.0.*" "nvidia-cublas==13.*" "nvidia-curand" "nvidia-cuda-nvrtc==13.0.*"
  for w in "$DIR"/*.whl; do unzip -q -o "$w" -d "$DIR/x"; done
fi
CUDARC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* 2>/dev/null | head -1)
[ -n "$CUDARC" ] || { cargo fetch >/dev/null; CUDARC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | head -1); }
mkdir -p "$R/lib/stubs"
grep -oE "^\s+fn cu[A-Za-z0-9_]+\(" "$CUDARC/src/driver/sys/mod.rs" | sed -E 's/\s+fn //; s/\(//' | sort -u |
  awk '{print "void " $1 "(void){}"}' > "$DIR/libcuda-stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$R/lib/stubs/libcuda.so" "$DIR/libcuda-stub.c"
(cd "$R/lib" && for l in cublas cublasLt nvrtc cudart; do ln -sf "lib$l.so.13" "lib$l.so"; done && ln -sf libcurand.so.10 libcurand.so)
export CUDA_PATH=$R CUDA_ROOT=$R CUDA_COMPUTE_CAP=$CAP CUDARC_CUDA_VERSION=13000 PATH=$R/bin:$PATH
npx napi build --platform --release --features cuda --output-dir binding --js index.js --dts index.d.ts
