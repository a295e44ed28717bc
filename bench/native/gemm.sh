#!/usr/bin/env bash
# The GEMM harness (bench/native/gemm.cc). Usage: [SS_COPIES=N] bash bench/native/gemm.sh [M N K [f32|f16|bf16|q8_0]]
exec bash "$(dirname "$0")/run.sh" gemm "$@"
