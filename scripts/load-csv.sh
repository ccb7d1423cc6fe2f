#!/usr/bin/env bash
# Measure CSV import: generate N rows of timepost's generic CSV (N/8 workers,
# five days each), then time `timepost ingest` enqueueing only, and enqueueing
# plus processing through the engine to the sandbox ledger.
# Usage: scripts/load-csv.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-50000}"
cargo build --release -q -p timepost-cli
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cp examples/sandbox/timepost.toml "$work/"
python3 scripts/load_rows.py "$rows" "$work"
cd "$work"
tp="$OLDPWD/target/release/timepost"
"$tp" mappings import mappings.csv >/dev/null
t0=$(date +%s.%N)
"$tp" ingest --source csv entries.csv --no-process --json >/dev/null
t1=$(date +%s.%N)
rm -rf .timepost; "$tp" mappings import mappings.csv >/dev/null
t2=$(date +%s.%N)
"$tp" ingest --source csv entries.csv --json > out.json
t3=$(date +%s.%N)
python3 - "$rows" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys, json
n = int(sys.argv[1]); t0, t1, t2, t3 = map(float, sys.argv[2:])
out = json.load(open("out.json"))
print(f"CSV import of {n} rows")
print(f"  parse + durable enqueue: {n / (t1 - t0):,.0f} entries/s ({t1 - t0:.2f} s)")
print(f"  end to end (enqueue, decide, post to sandbox ledger): {n / (t3 - t2):,.0f} entries/s ({t3 - t2:.2f} s); posted {out.get('posted', 0)}")
PY
