#!/usr/bin/env bash
# The GEMM harness (bench/native/gemm.cc). Usage: bash bench/native/gemm.sh [M N K [f32|f16]]
exec bash "$(dirname "$0")/run.sh" gemm "$@"
