#!/usr/bin/env bash
# Run every check and test of the workspace, as CI does. Installs what the
# tests need when it is missing: the Python tools (moto server, cfn-lint,
# the SAM CLI, schemathesis) into ./.venv, and headless Chromium with its
# WebDriver for the console's browser tests. Starts moto server on a free
# loopback port for the AWS adapter tests and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# A CI run builds once: incremental state would only add gigabytes to its disk.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "each Lambda function, and the CLI, on its own features"
# SAM builds every function alone, with the features it names (the
# webhook function: no SQLite, no HTTP clients, no console), and a user
# builds the CLI alone, with or without `aws`; the lint above sees the
# workspace's union of features only.
for f in functions/*/; do
  cargo clippy --locked -p "timepost-fn-$(basename "$f")" --all-targets -- -D warnings
done
cargo clippy --locked -p timepost-cli -- -D warnings
cargo clippy --locked -p timepost-cli --features aws -- -D warnings

step "python tools (.venv)"
./scripts/pytools.sh

step "SAM template (cfn-lint, sam validate --lint)"
# Both run offline: no AWS credentials, no network. `sam validate` without
# --lint would build an IAM client to resolve managed policies, so only the
# --lint form is used; SAM's telemetry is switched off for the same reason.
.venv/bin/cfn-lint infra/template.yaml
SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --template infra/template.yaml --region us-east-1

step "moto server"
# shellcheck source=scripts/moto.sh
source ./scripts/moto.sh
moto_start
trap moto_stop EXIT
echo "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"

step "browser (chromium)"
# Never fails: without a browser the browser tests fail under CI=true.
./scripts/chromium.sh

step "tests"
cargo test --workspace --all-features --locked --no-fail-fast

step "api fuzz (schemathesis)"
./scripts/schemathesis.sh
