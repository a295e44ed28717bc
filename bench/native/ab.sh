#!/usr/bin/env bash
# A/B of two builds of the kernels in one process, alternating, so that this VM's drifting
# memory speed hits both alike: A is native/src at git revision REV, B this working tree.
#   bash bench/native/ab.sh REV attention [f32|f16]   (SS_HQ / SS_HKV: head counts; SS_ROWS_A: A's prefill rows
#     per task; SS_ROUNDS: rounds, 6 by default; prints the mean and the median of the rounds' B/A)
#   bash bench/native/ab.sh REV gemm [M N K [f32|f16|bf16|q8_0]]   (SS_COPIES=N: weights rotated over N copies)
# ISA=avx2 builds both for AVX2 instead of AVX-512 (default); BFLAGS adds compiler flags to B
# (-DNAME for an experiment behind #ifdef). The two revisions must share kernels.h's argument
# structs up to the fields A knows (fields appended since are fine), and, for attention, the KV
# cache layout; A's kernel table is copied into this tree's layout by ab_adapter.cc, so it needs
# every field this tree's table has (revisions from 19ae7ba on have them).
set -euo pipefail
cd "$(dirname "$0")/../.."
rev=$1 harness=$2
shift 2
out=bench/out/native/ab
rm -rf "$out" && mkdir -p "$out/a"
for f in kernels.inc kernels.h simd.h rowops.inc; do  # rowops.inc: since issue 18
  git show "$rev:native/src/$f" > "$out/a/$f" 2>/dev/null || rm -f "$out/a/$f"
done
isa=${ISA:-avx512}
if [ "$isa" = avx2 ]; then  # no AVX-512 flags: the build must run on AVX2-only CPUs
  flags="-std=c++17 -O3 -fno-math-errno -ffp-contract=off -mavx2 -mfma -mf16c -Ibench/native" def=-DSS_ISA_AVX2=1
else
  flags="-std=c++17 -O3 -fno-math-errno -ffp-contract=off -mavx512f -mavx512vl -mavx512bw -mavx512vnni -mavx2 -mfma -mf16c -Ibench/native" def=-DSS_ISA_AVX512=1
fi
g++ $flags -I"$out/a" $def -DSS_NS=ss_a0 -x c++ -c "$out/a/kernels.inc" -o "$out/a.o" &
g++ $flags -Inative/src $def ${BFLAGS:-} -DSS_NS=ss_b -x c++ -c native/src/kernels.inc -o "$out/b.o" &
wait
# A's table re-laid as this tree's struct (the tables differ where fields were removed)
g++ $flags -Inative/src -I"$out" -c bench/native/ab_adapter.cc -o "$out/a_table.o"
g++ $flags -Inative/src -DSS_AB "bench/native/$harness.cc" "$out/a.o" "$out/a_table.o" "$out/b.o" -o "$out/$harness" -lpthread
echo "A = $rev, B = working tree, $isa"
"$out/$harness" "$@"
