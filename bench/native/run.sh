#!/usr/bin/env bash
# Builds a C++ harness (bench/native/NAME.cc) against this tree's AVX-512 kernels and runs it;
# needs g++ and an AVX-512 CPU. Usage: bash bench/native/run.sh NAME [args]
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1
shift
out=bench/out/native
mkdir -p "$out"
flags="-std=c++17 -O3 -fno-math-errno -ffp-contract=off -mavx512f -mavx512vl -mavx512bw -mavx512vnni -mavx2 -mfma -mf16c -Inative/src -Ibench/native ${BFLAGS:-}"
g++ $flags -DSS_ISA_AVX512=1 -DSS_NS=ss_avx512 -x c++ -c native/src/kernels.inc -o "$out/kernels_avx512.o"
g++ $flags "bench/native/$name.cc" "$out/kernels_avx512.o" -o "$out/$name" -lpthread
"$out/$name" "$@"
