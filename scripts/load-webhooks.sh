#!/usr/bin/env bash
# Measure webhook throughput and latency of `timepost serve` on this machine:
# a release server on a loopback port, the load generator in a second
# process. Usage: scripts/load-webhooks.sh [REQUESTS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
requests="${1:-20000}"; conc="${2:-32}"
cargo build --release -q -p timepost-cli -p timepost-tests --bin timepost --bin webhook-load
work="$(mktemp -d)"; trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
cp examples/sandbox/timepost.toml "$work/"
mkdir -p "$work/.timepost"
printf 'toggl_webhook_secret = "load-secret"\n' > "$work/.timepost/secrets.toml"
chmod 600 "$work/.timepost/secrets.toml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && TIMEPOST_LOG=warn exec "$OLDPWD/target/release/timepost" serve --bind "127.0.0.1:$port" >/dev/null) &
pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
./target/release/webhook-load --addr "127.0.0.1:$port" --secret load-secret --requests "$requests" --concurrency "$conc"
