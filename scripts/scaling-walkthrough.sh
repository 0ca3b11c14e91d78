#!/usr/bin/env bash
# Runs the "Scaling out" walkthrough of README.md exactly as written, with
# DATABASE_URL pointing at a throwaway PostgreSQL server, and checks what
# it printed: three live nodes, a job seen from every replica, and a cancel
# sent to one replica stopping the job wherever it ran.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/pg-throwaway.sh | sed 's/^/export /')"
cleanup() {
  pkill -f /tmp/chapkit-replica 2>/dev/null || true
  bash scripts/pg-throwaway.sh stop "$PGDIR"
}
trap cleanup EXIT
script=$(sed -n '/<!-- scaling:start -->/,/<!-- scaling:end -->/p' README.md | sed '/^```/d;/^<!--/d')
status=0
out=$(bash -euo pipefail -c "$script" 2>&1) || status=$?
echo "$out"
if [ "$status" != 0 ]; then
  echo "the walkthrough failed with status $status; replica logs:" >&2
  tail -n 20 /tmp/chapkit-replica-800*.log >&2 || true
  exit 1
fi
nodes=$(grep -o '"hostname"' <<<"$out" | wc -l)
[ "$nodes" -ge 3 ] || { echo "expected 3 nodes in the node list, saw $nodes" >&2; exit 1; }
grep -q '"status":"canceled"' <<<"$out" || { echo "the job was not canceled" >&2; exit 1; }
grep -q '"leader":true' <<<"$out" || { echo "no leader" >&2; exit 1; }
echo "scaling walkthrough: ok"
