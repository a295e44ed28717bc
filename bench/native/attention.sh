#!/usr/bin/env bash
# The decode-attention harness (bench/native/attention.cc). Usage: bash bench/native/attention.sh [f32|f16]
exec bash "$(dirname "$0")/run.sh" attention "${1:-f32}"
