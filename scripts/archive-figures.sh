#!/usr/bin/env bash
# Measure archival: a store of N entries (the rows of scripts/load-csv.sh:
# N/8 workers, five days of March 2026 each, processed to the sandbox
# ledger), then time `timepost archive run --period 2026-03` and
# `archive verify`, and print the snapshot's size per 1,000 entries.
# Usage: scripts/archive-figures.sh [ROWS]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-20000}"
cargo build --release -q -p timepost-cli
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cp examples/sandbox/timepost.toml "$work/"
python3 scripts/load_rows.py "$rows" "$work"
cd "$work"
tp="$OLDPWD/target/release/timepost"
"$tp" mappings import mappings.csv >/dev/null
"$tp" ingest --source csv entries.csv --json >/dev/null
t0=$(date +%s.%N)
"$tp" archive run --period 2026-03 --json > run.json
t1=$(date +%s.%N)
"$tp" archive verify >/dev/null
t2=$(date +%s.%N)
"$tp" export --all bundle >/dev/null
t3=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$t3" <<'PY'
import json, sys, os
t0, t1, t2, t3 = map(float, sys.argv[1:])
r = json.load(open("run.json"))[0]
d = ".timepost/archive/snapshots/2026-03/rev-1"
sizes = {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)}
total = sum(sizes.values())
n = r["entries"]
print(f"entries archived:            {n}")
print(f"snapshot bytes:              {total}  ({total * 1000 / n:,.0f} bytes per 1,000 entries)")
for f in sorted(sizes, key=sizes.get, reverse=True)[:6]:
    print(f"  {f:28} {sizes[f]:>10}")
print(f"archive run (collect+write): {t1 - t0:.2f} s  ({n / (t1 - t0):,.0f} entries/s)")
print(f"archive verify:              {t2 - t1:.2f} s")
print(f"export --all:                {t3 - t2:.2f} s")
PY
