#!/usr/bin/env bash
# Measure webhook throughput and latency of `timepost serve` on this machine:
# a release server on a loopback port, the load generator in a second
# process. Usage: scripts/load-webhooks.sh [REQUESTS] [CONCURRENCY] [STORE]
# With STORE (an existing SQLite store, e.g. one `scale-bench --build-only
# --dir D` built: D/scale.sqlite), the server runs on it and a third process
# loads the console's dashboard and exceptions page over and over during the
# run, printing how many it loaded and their median and slowest times: what
# a console page over a big store costs the webhooks (CONSOLE_LOAD=0: the
# big store without the pages). The deliveries are added to STORE.
set -euo pipefail
cd "$(dirname "$0")/.."
requests="${1:-20000}"; conc="${2:-32}"; store="${3:-}"
cargo build --release -q --all-features -p timepost-cli -p timepost-tests --bin timepost --bin webhook-load
work="$(mktemp -d)"; trap 'kill "${pid:-}" "${pages:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
cp examples/sandbox/timepost.toml "$work/"
mkdir -p "$work/.timepost"
token="load-webhooks-admin-token-0123456789abcdef"
printf 'toggl_webhook_secret = "load-secret"\nadmin_token = "%s"\n' "$token" > "$work/.timepost/secrets.toml"
chmod 600 "$work/.timepost/secrets.toml"
if [ -n "$store" ]; then
  store="$(realpath "$store")"
  sed -i "s|^path = \".timepost/timepost.sqlite\"|path = \"$store\"|" "$work/timepost.toml"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && TIMEPOST_LOG=warn exec "$OLDPWD/target/release/timepost" serve --bind "127.0.0.1:$port" >/dev/null) &
pid=$!
for _ in $(seq 3000); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
if [ -n "$store" ] && [ "${CONSOLE_LOAD:-1}" != 0 ]; then
  (
    n=0; : > "$work/pages.txt"
    while :; do
      for p in /console /console/exceptions; do
        curl -fs -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" \
          "http://127.0.0.1:$port$p" >> "$work/pages.txt" || true
      done
    done
  ) &
  pages=$!
fi
./target/release/webhook-load --addr "127.0.0.1:$port" --secret load-secret --requests "$requests" --concurrency "$conc"
if [ -n "${pages:-}" ]; then
  kill "$pages" 2>/dev/null || true; wait "$pages" 2>/dev/null || true
  sort -n "$work/pages.txt" | awk '{v[NR]=$1} END {if (NR) printf "{\"console_pages_during_the_run\": %d, \"p50_ms\": %.1f, \"max_ms\": %.1f}\n", NR, v[int((NR+1)/2)]*1000, v[NR]*1000}'
fi
