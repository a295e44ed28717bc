// How many vector integer instructions per cycle this core issues, in the mixes the k-quant
// kernels use (native/src/kquants.inc, packed GEMM). Inline assembly, so the compiler cannot
// fold or spill anything; the clock is taken from a chain of dependent scalar adds (1 cycle each).
//
//   gcc -O2 -mavx2 bench/native/int-pipes.c -o /tmp/int-pipes && /tmp/int-pipes
//
// 2-core AMD EPYC VM, Zen 3 (2026-12-07, four runs): clock 3.20 GHz; vpmaddubsw alone 0.50 cycles
// each (2 per cycle); maddubs + paddw pairs 0.63 cycles (the adds take issue slots from the
// multiplies); vpbroadcastd from memory + maddubs + paddw triples 0.66 cycles (the broadcast costs
// little); madd or maddubs each with an add 0.63 cycles. The first run of the session gave 0.97
// for the triples and 0.68 for the pairs, the reruns did not: quote these.

#include <stdio.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define REP8(x) x x x x x x x x
int main(){
  long N=100000000; double t0,t1;
  // clock: dependent scalar add chain, 1 cycle each
  t0=now();
  __asm__ volatile("mov %0, %%rcx\n1:\n" REP8("add $1, %%rax\n add $1, %%rax\n") "dec %%rcx\n jnz 1b\n" :: "r"(N) : "rax","rcx");
  t1=now(); double cyc=(t1-t0)/N/16; printf("cycle: %.4f ns (%.2f GHz)\n",cyc*1e9,1/cyc/1e9);
  t0=now();
  __asm__ volatile("vpxor %%ymm15,%%ymm15,%%ymm15\n mov %0, %%rcx\n1:\n"
    "vpmaddubsw %%ymm15, %%ymm0, %%ymm0\n vpmaddubsw %%ymm15, %%ymm1, %%ymm1\n vpmaddubsw %%ymm15, %%ymm2, %%ymm2\n vpmaddubsw %%ymm15, %%ymm3, %%ymm3\n"
    "vpmaddubsw %%ymm15, %%ymm4, %%ymm4\n vpmaddubsw %%ymm15, %%ymm5, %%ymm5\n vpmaddubsw %%ymm15, %%ymm6, %%ymm6\n vpmaddubsw %%ymm15, %%ymm7, %%ymm7\n"
    "vpmaddubsw %%ymm15, %%ymm8, %%ymm8\n vpmaddubsw %%ymm15, %%ymm9, %%ymm9\n vpmaddubsw %%ymm15, %%ymm10, %%ymm10\n vpmaddubsw %%ymm15, %%ymm11, %%ymm11\n"
    "dec %%rcx\n jnz 1b\n" :: "r"(N) : "rcx","xmm0","xmm1","xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm15");
  t1=now(); printf("maddubs x12 indep: %.3f cycles each\n",(t1-t0)/N/12/cyc);
  t0=now();
  __asm__ volatile("mov %0, %%rcx\n1:\n"
    "vpmaddubsw %%ymm15, %%ymm14, %%ymm0\n vpaddw %%ymm0, %%ymm8, %%ymm8\n"
    "vpmaddubsw %%ymm15, %%ymm13, %%ymm1\n vpaddw %%ymm1, %%ymm9, %%ymm9\n"
    "vpmaddubsw %%ymm15, %%ymm12, %%ymm2\n vpaddw %%ymm2, %%ymm10, %%ymm10\n"
    "vpmaddubsw %%ymm15, %%ymm11, %%ymm3\n vpaddw %%ymm3, %%ymm7, %%ymm7\n"
    "vpmaddubsw %%ymm15, %%ymm14, %%ymm4\n vpaddw %%ymm4, %%ymm8, %%ymm8\n"
    "vpmaddubsw %%ymm15, %%ymm13, %%ymm5\n vpaddw %%ymm5, %%ymm9, %%ymm9\n"
    "vpmaddubsw %%ymm15, %%ymm12, %%ymm6\n vpaddw %%ymm6, %%ymm10, %%ymm10\n"
    "vpmaddubsw %%ymm15, %%ymm11, %%ymm0\n vpaddw %%ymm0, %%ymm7, %%ymm7\n"
    "dec %%rcx\n jnz 1b\n" :: "r"(N) : "rcx","xmm0","xmm1","xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13","xmm14","xmm15");
  t1=now(); printf("maddubs+paddw: %.3f cycles per pair\n",(t1-t0)/N/8/cyc);
  static int x[64] __attribute__((aligned(64)));
  t0=now();
  __asm__ volatile("mov %0, %%rcx\n1:\n"
    "vpbroadcastd (%1), %%ymm0\n vpmaddubsw %%ymm0, %%ymm15, %%ymm0\n vpaddw %%ymm0, %%ymm8, %%ymm8\n"
    "vpbroadcastd 4(%1), %%ymm1\n vpmaddubsw %%ymm1, %%ymm14, %%ymm1\n vpaddw %%ymm1, %%ymm9, %%ymm9\n"
    "vpbroadcastd 8(%1), %%ymm2\n vpmaddubsw %%ymm2, %%ymm15, %%ymm2\n vpaddw %%ymm2, %%ymm10, %%ymm10\n"
    "vpbroadcastd 12(%1), %%ymm3\n vpmaddubsw %%ymm3, %%ymm14, %%ymm3\n vpaddw %%ymm3, %%ymm7, %%ymm7\n"
    "vpbroadcastd 16(%1), %%ymm4\n vpmaddubsw %%ymm4, %%ymm15, %%ymm4\n vpaddw %%ymm4, %%ymm8, %%ymm8\n"
    "vpbroadcastd 20(%1), %%ymm5\n vpmaddubsw %%ymm5, %%ymm14, %%ymm5\n vpaddw %%ymm5, %%ymm9, %%ymm9\n"
    "vpbroadcastd 24(%1), %%ymm6\n vpmaddubsw %%ymm6, %%ymm15, %%ymm6\n vpaddw %%ymm6, %%ymm10, %%ymm10\n"
    "vpbroadcastd 28(%1), %%ymm0\n vpmaddubsw %%ymm0, %%ymm14, %%ymm0\n vpaddw %%ymm0, %%ymm7, %%ymm7\n"
    "dec %%rcx\n jnz 1b\n" :: "r"(N), "r"(x) : "rcx","xmm0","xmm1","xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13","xmm14","xmm15");
  t1=now(); printf("bcast+maddubs+paddw: %.3f cycles per triple\n",(t1-t0)/N/8/cyc);
  t0=now();
  __asm__ volatile("mov %0, %%rcx\n1:\n"
    "vpmaddwd %%ymm15, %%ymm14, %%ymm0\n vpaddd %%ymm0, %%ymm8, %%ymm8\n"
    "vpmaddubsw %%ymm15, %%ymm13, %%ymm1\n vpaddw %%ymm1, %%ymm9, %%ymm9\n"
    "vpmaddwd %%ymm15, %%ymm12, %%ymm2\n vpaddd %%ymm2, %%ymm10, %%ymm10\n"
    "vpmaddubsw %%ymm15, %%ymm11, %%ymm3\n vpaddw %%ymm3, %%ymm7, %%ymm7\n"
    "dec %%rcx\n jnz 1b\n" :: "r"(N) : "rcx","xmm0","xmm1","xmm2","xmm3","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13","xmm14","xmm15");
  t1=now(); printf("mixed madd/maddubs + add: %.3f cycles per pair\n",(t1-t0)/N/4/cyc);
  return 0;
}
