#!/usr/bin/env bash
# Builds and runs bench/native/stream.cc (read bandwidth kept while computing, in decode
# attention's access pattern); needs g++ and an AVX-512 CPU. Usage: bash bench/native/stream.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/out/native
mkdir -p "$out"
g++ -std=c++17 -O2 -mavx512f -mfma -Ibench/native bench/native/stream.cc -o "$out/stream" -lpthread
"$out/stream"
