#!/usr/bin/env bash
# Measure CSV import: generate N rows of timepost's generic CSV (N/8 workers,
# five days each), then time `timepost ingest` enqueueing only, and enqueueing
# plus processing through the engine to the sandbox ledger (import → posted),
# first into an empty store, then into a store already holding STORE entries
# (built by `scale-bench --build-only`: 300 other workers, three years, through
# the same state writes), so the two end-to-end rates show whether the import
# slows as the store grows. STORE=0 skips the second run.
# Usage: scripts/load-csv.sh [ROWS] [STORE]   (defaults: 50000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-50000}"
store="${2:-100000}"
cargo build --release -q --all-features -p timepost-cli -p timepost-tests --bin timepost --bin scale-bench
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cp examples/sandbox/timepost.toml "$work/"
python3 scripts/load_rows.py "$rows" "$work"
bin="$PWD/target/release"
if [ "$store" -gt 0 ]; then
  "$bin/scale-bench" --entries "$store" --dir "$work/pre" --build-only >/dev/null
fi
cd "$work"
tp="$bin/timepost"
"$tp" mappings import mappings.csv >/dev/null
t0=$(date +%s.%N)
"$tp" ingest --source csv entries.csv --no-process --json >/dev/null
t1=$(date +%s.%N)
rm -rf .timepost; "$tp" mappings import mappings.csv >/dev/null
t2=$(date +%s.%N)
"$tp" ingest --source csv entries.csv --json > out.json
t3=$(date +%s.%N)
t4=0; t5=0; echo '{}' > out2.json
if [ "$store" -gt 0 ]; then
  rm -rf .timepost; mkdir -m 700 .timepost
  cp pre/scale.sqlite .timepost/timepost.sqlite
  if [ -f pre/scale.sqlite-wal ]; then cp pre/scale.sqlite-wal .timepost/timepost.sqlite-wal; fi
  "$tp" mappings import mappings.csv >/dev/null
  t4=$(date +%s.%N)
  "$tp" ingest --source csv entries.csv --json > out2.json
  t5=$(date +%s.%N)
fi
python3 - "$rows" "$store" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" <<'PY'
import sys, json
n, m = int(sys.argv[1]), int(sys.argv[2]); t0, t1, t2, t3, t4, t5 = map(float, sys.argv[3:])
out = json.load(open("out.json"))
print(f"CSV import of {n} rows")
print(f"  parse + durable enqueue: {n / (t1 - t0):,.0f} entries/s ({t1 - t0:.2f} s)")
e0 = n / (t3 - t2)
print(f"  end to end (enqueue, decide, post to sandbox ledger), empty store: {e0:,.0f} entries/s ({t3 - t2:.2f} s); posted {out.get('posted', 0)}")
if m > 0:
    out2 = json.load(open("out2.json"))
    e1 = n / (t5 - t4)
    print(f"  end to end, store already holding {m:,} entries: {e1:,.0f} entries/s ({t5 - t4:.2f} s); posted {out2.get('posted', 0)}")
    print(f"  ratio (store of {m:,} / empty): {e1 / e0:.2f}")
PY
