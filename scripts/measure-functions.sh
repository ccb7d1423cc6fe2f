#!/usr/bin/env bash
# Measure the Lambda functions locally (figures for docs/performance.md and
# docs/cost-model.md): release binary size, init time, first-call time and
# peak memory of each function under a minimal Lambda Runtime API emulator
# (lambda-init), and the AWS requests per entry end to end (aws-costs).
# Everything runs against moto server on loopback.
#
#   scripts/measure-functions.sh [--runs 10] [--entries 500]
#
# The binaries are built for this machine's architecture; the deployed ones
# are arm64 (`cargo lambda build --release --arm64`, see docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=10
entries=500
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --entries) entries=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

./scripts/pytools.sh
fns=(webhook poller sync admin archive)
# One build per function, as SAM builds them: each with its own features
# (the webhook function's timepost-web without `console`); a shared build
# would unify the features of all five.
for f in "${fns[@]}"; do
  cargo build --release --locked -p "timepost-fn-$f"
done
cargo build --release --locked -p timepost-tests --bin lambda-init --bin aws-costs

# shellcheck source=scripts/moto.sh
source ./scripts/moto.sh
moto_start
trap moto_stop EXIT

echo "== cold start (release, $(uname -m), $runs runs each)"
target/release/lambda-init --runs "$runs" $(printf -- '--bin target/release/timepost-%s ' "${fns[@]}")
echo
echo "== AWS requests per entry ($entries entries)"
target/release/aws-costs --entries "$entries"
