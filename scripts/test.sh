#!/usr/bin/env bash
# Run every check and test of the workspace, as CI does. Installs what the
# tests need when it is missing (nothing beyond the Rust toolchain yet:
# later stages add moto server and chromium here).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked
