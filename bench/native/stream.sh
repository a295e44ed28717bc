#!/usr/bin/env bash
# Read bandwidth kept while computing, in decode attention's access pattern
# (bench/native/stream.cc). Usage: bash bench/native/stream.sh
exec bash "$(dirname "$0")/run.sh" stream
