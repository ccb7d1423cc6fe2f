#!/usr/bin/env bash
# Scale benchmark of the local store: builds a store of N entry states
# (300 workers, 30 projects, three years; through EntryStore::put, so the
# aggregates are kept as in production), serves the console on a loopback
# port and prints JSON lines: state writes/s, each page's p50 / p99 of 20
# requests, the outcome report's time, the aggregate rebuild, peak RSS and
# store bytes per entry. Usage: scripts/load-scale.sh [N] [--release] [scale-bench flags,
# e.g. --put-batch 1000 to build a store of millions K states a transaction]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"; shift || true
profile=debug; flag=()
if [ "${1:-}" = "--release" ]; then profile=release; flag=(--release); shift; fi
cargo build "${flag[@]}" -q --workspace --all-features
"./target/$profile/scale-bench" --entries "$n" "$@"
