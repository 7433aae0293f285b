#!/usr/bin/env bash
# The issue-7 user-level crash check: `vladdb add` SIGKILLed at random moments on
# debian-sift, then `vladdb verify` must exit 0 and `stats` must report exactly the
# vectors of the adds that returned success, plus at most whole adds that were in flight.
#
# Usage: tools/scripts/kill_add.sh [KILLS=30] [ROWS_PER_ADD=20000]
# Env: DATA (default /work/shared/data/debian-sift), VLADDB (binary; default: builds
#      target/release/vladdb), SPEC (default IVF256,PQ16), WORK (scratch dir; default mktemp),
#      TRAIN_LIMIT (default 50000 rows of learn.bvecs), KILL_FROM (default 0: kill moments
#      are drawn from [KILL_FROM, 110] percent of one add's duration; e.g. 70 aims at the
#      log write, flush and automatic compaction at the end of an add).
set -euo pipefail

KILLS=${1:-30}
ROWS=${2:-20000}
DATA=${DATA:-/work/shared/data/debian-sift}
SPEC=${SPEC:-IVF256,PQ16}
TRAIN_LIMIT=${TRAIN_LIMIT:-50000}
KILL_FROM=${KILL_FROM:-0}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -z "${VLADDB:-}" ]]; then
  (cd "$ROOT" && cargo build --release -p vladdb-tools --bin vladdb >&2)
  VLADDB=$ROOT/target/release/vladdb
fi
WORK=${WORK:-$(mktemp -d)}
DB=$WORK/db
rm -rf "$DB"
BASE=$DATA/base.bvecs
TOTAL_ROWS=1000000

"$VLADDB" create "$DB" --spec "$SPEC" --dim 128 >/dev/null
"$VLADDB" train "$DB" --input "$DATA/learn.bvecs" --limit "$TRAIN_LIMIT" >/dev/null

now_ms() { date +%s%3N; }

# Time one add that is not killed: the kill moments are drawn from [KILL_FROM%, 110%] of
# this, so most adds are killed (at every stage: open, encode, log, flush, compaction).
start=$(now_ms)
"$VLADDB" add "$DB" --input "$BASE" --offset 0 --limit "$ROWS" >/dev/null
full_ms=$(( $(now_ms) - start ))
acked=1
killed=0
killed_rows=0
attempt=1
echo "one add of $ROWS rows takes ${full_ms} ms; killing adds at random moments" >&2

while (( killed < KILLS )); do
  offset=$(( attempt * ROWS ))
  if (( offset + ROWS > TOTAL_ROWS )); then
    echo "ran out of base rows after $attempt adds ($killed kills)" >&2
    break
  fi
  "$VLADDB" add "$DB" --input "$BASE" --offset "$offset" --limit "$ROWS" >/dev/null 2>"$WORK/add.err" &
  pid=$!
  delay_ms=$(( full_ms * (KILL_FROM + RANDOM * (110 - KILL_FROM) / 32767) / 100 ))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  status=0
  { wait "$pid"; } 2>/dev/null || status=$?
  if (( status == 0 )); then
    acked=$((acked + 1))
  elif (( status == 137 )); then
    killed=$((killed + 1))
    killed_rows=$((killed_rows + ROWS))
  else
    echo "add at offset $offset failed with status $status: $(cat "$WORK/add.err")" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
done

"$VLADDB" verify "$DB"
vectors=$("$VLADDB" stats "$DB" --json | sed -n 's/.*"vectors":\([0-9]*\).*/\1/p')
expected=$(( acked * ROWS ))
extra=$(( vectors - expected ))
echo "adds: $attempt, acknowledged: $acked, killed: $killed; stats vectors: $vectors," \
     "acknowledged rows: $expected, extra rows from killed adds: $extra"
if (( extra < 0 )); then
  echo "FAIL: acknowledged rows missing" >&2; exit 1
fi
if (( extra % ROWS != 0 || extra > killed_rows )); then
  echo "FAIL: a killed add is partly visible" >&2; exit 1
fi
echo "PASS: verify clean, every acknowledged add present, $(( extra / ROWS )) killed adds fully present, none partial"
rm -rf "$WORK"
