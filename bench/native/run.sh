#!/usr/bin/env bash
# Builds a C++ harness (bench/native/NAME.cc) against this tree's AVX-512 kernels and runs it;
# needs g++ and an AVX-512 CPU (ISA=avx2: the AVX2 kernels instead, for AVX2-only CPUs).
# Usage: [ISA=avx2] bash bench/native/run.sh NAME [args]
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1
shift
out=bench/out/native
mkdir -p "$out"
isa=${ISA:-avx512}
# AVX2 builds get no AVX-512 flags, so that they run on AVX2-only CPUs
isaflags=$([ "$isa" = avx2 ] && echo "-mavx2 -mfma -mf16c" || echo "-mavx512f -mavx512vl -mavx512bw -mavx512vnni -mavx2 -mfma -mf16c")
flags="-std=c++17 -O3 -fno-math-errno -ffp-contract=off $isaflags -Inative/src -Ibench/native ${BFLAGS:-}"
def=$([ "$isa" = avx2 ] && echo "-DSS_ISA_AVX2=1 -DSS_NS=ss_avx2" || echo "-DSS_ISA_AVX512=1 -DSS_NS=ss_avx512")
g++ $flags $def -x c++ -c native/src/kernels.inc -o "$out/kernels_$isa.o"
g++ $flags $([ "$isa" = avx2 ] && echo -DSS_HARNESS_AVX2) "bench/native/$name.cc" "$out/kernels_$isa.o" -o "$out/$name" -lpthread
"$out/$name" "$@"
