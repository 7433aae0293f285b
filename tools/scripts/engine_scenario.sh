#!/usr/bin/env bash
# The storage-engine acceptance scenario on debian-sift (IVF4096,PQ16): create, train, four adds
# of 250,000 (four segments), delete ids 0..99999, search 1,000 queries (no deleted id may come
# back), compact (one segment), stats, verify, and the same search again (must be identical).
# Then the open time and the peak RSS of a one-query search.
# usage: tools/scripts/engine_scenario.sh [DATA_DIR] [DB_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${1:-$here/../../../shared/data/debian-sift}
db=${2:-${TMPDIR:-/tmp}/vladdb-scenario}
v=${VLADDB:-$here/../../target/release/vladdb}
rm -rf "$db"
"$v" create "$db" --spec IVF4096,PQ16 --dim 128
"$v" train "$db" --input "$data/learn.bvecs"
for i in 0 1 2 3; do
  "$v" add "$db" --input "$data/base.bvecs" --offset $((i * 250000)) --limit 250000
done
"$v" stats "$db" --json
"$v" delete "$db" --ids 0..99999
"$v" search "$db" --input "$data/query.bvecs" --limit 1000 -k 100 --nprobe 16 --json > "$db.before.jsonl"
python3 - "$db.before.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bad = sum(1 for r in rows for i in r["ids"] if i < 100000)
print(f"searched {len(rows)} queries; deleted ids returned: {bad}")
sys.exit(1 if bad else 0)
PY
"$v" compact "$db"
"$v" search "$db" --input "$data/query.bvecs" --limit 1000 -k 100 --nprobe 16 --json > "$db.after.jsonl"
cmp "$db.before.jsonl" "$db.after.jsonl" && echo "search results after compaction equal those before"
"$v" stats "$db" --json
"$v" verify "$db"
# Open time (in-process, best of 5) and the whole process's peak RSS for one query.
"$v" search "$db" --input "$data/query.bvecs" --limit 1 -k 10 --nprobe 16 --timing > /dev/null
/usr/bin/time -f "peak RSS of a one-query search: %M KiB" "$v" search "$db" --input "$data/query.bvecs" --limit 1 -k 10 --nprobe 16 > /dev/null
