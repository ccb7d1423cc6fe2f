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
python3 - "$rows" "$work" <<'PY'
import sys
n, work = int(sys.argv[1]), sys.argv[2]
users = max(1, n // 8)
with open(f"{work}/mappings.csv", "w") as m:
    m.write("table,key,target,attrs\n")
    for u in range(users):
        m.write(f"employee,u{u},E-100,\n")
    for line in open("examples/sandbox/mappings.csv").read().splitlines()[1:]:
        if not line.startswith("employee,"):
            m.write(line + "\n")
with open(f"{work}/entries.csv", "w") as f:
    f.write("entry_id,updated_at,user_id,start,end,project_id,task_id,billable,rate,currency,notes,approval\n")
    for i in range(n):
        d = 2 + (i // users) % 5
        h = 8 + (i // (users * 5)) % 8
        f.write(f"e{i},2026-03-09T00:00:00Z,u{i % users},2026-03-{d:02d} {h:02d}:00,2026-03-{d:02d} {h:02d}:50,p-acme-web,t-dev,true,150.00,USD,row {i},approved\n")
PY
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
