#!/usr/bin/env bash
# A/B of two builds of the kernels in one process, alternating, so that this VM's drifting
# memory speed hits both alike: A is native/src at git revision REV, B this working tree.
#   bash bench/native/ab.sh REV attention [f32|f16]   (SS_HQ / SS_HKV: head counts; SS_ROWS_A: A's prefill rows
#     per task; SS_ROUNDS: rounds, 6 by default; prints the mean and the median of the rounds' B/A)
#   bash bench/native/ab.sh REV gemm [M N K [f32|f16|bf16|q8_0]]   (SS_COPIES=N: weights rotated over N copies)
# ISA=avx2 builds both for AVX2 instead of AVX-512 (default); BFLAGS adds compiler flags to B
# (-DNAME for an experiment behind #ifdef). The two revisions must share kernels.h's argument
# structs up to the fields A knows (fields appended since are fine), and, for attention, the KV
# cache layout.
set -euo pipefail
cd "$(dirname "$0")/../.."
rev=$1 harness=$2
shift 2
out=bench/out/native/ab
rm -rf "$out" && mkdir -p "$out/a"
for f in kernels.inc kernels.h simd.h; do git show "$rev:native/src/$f" > "$out/a/$f"; done
isa=${ISA:-avx512}
# AVX2 builds get no AVX-512 flags, so that they run on AVX2-only CPUs
isaflags=$([ "$isa" = avx2 ] && echo "-mavx2 -mfma -mf16c" || echo "-mavx512f -mavx512vl -mavx512bw -mavx512vnni -mavx2 -mfma -mf16c")
flags="-std=c++17 -O3 -fno-math-errno -ffp-contract=off $isaflags -Ibench/native"
def=$([ "$isa" = avx2 ] && echo -DSS_ISA_AVX2=1 || echo -DSS_ISA_AVX512=1)
g++ $flags -I"$out/a" $def -DSS_NS=ss_a -x c++ -c "$out/a/kernels.inc" -o "$out/a.o" &
g++ $flags -Inative/src $def ${BFLAGS:-} -DSS_NS=ss_b -x c++ -c native/src/kernels.inc -o "$out/b.o" &
wait
g++ $flags -Inative/src -DSS_AB "bench/native/$harness.cc" "$out/a.o" "$out/b.o" -o "$out/$harness" -lpthread
echo "A = $rev, B = working tree, $isa"
"$out/$harness" "$@"
