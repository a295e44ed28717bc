#!/usr/bin/env bash
# Builds and runs the GEMM harness (bench/native/gemm.cc) against the AVX-512 kernels in
# native/src; needs g++ and an AVX-512 CPU. Usage: bash bench/native/gemm.sh [M N K [f32|f16]]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/out/native
mkdir -p "$out"
flags="-std=c++17 -O3 -fno-math-errno -mavx512f -mavx512vl -mavx512bw -mavx512vnni -mavx2 -mfma -mf16c -Inative/src -Ibench/native"
g++ $flags -DSS_ISA_AVX512=1 -DSS_NS=ss_avx512 -x c++ -c native/src/kernels.inc -o "$out/kernels_avx512.o"
g++ $flags bench/native/gemm.cc "$out/kernels_avx512.o" -o "$out/gemm" -lpthread
"$out/gemm" "$@"
