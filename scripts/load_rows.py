"""Write a load-test workload into a directory: `mappings.csv` (the sandbox
mappings with one employee row per generated worker) and `entries.csv`
(N rows of timepost's generic CSV: N/8 workers, five days of March 2026
each, 50 minutes a row). Used by scripts/load-csv.sh and
scripts/archive-figures.sh.

Usage: python3 scripts/load_rows.py ROWS DIR
"""
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
