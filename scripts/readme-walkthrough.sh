#!/usr/bin/env bash
# Runs the curl walkthrough of README.md, exactly as written there, against
# a freshly started examples/task_execution, and fails if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-18765}
go build -o /tmp/chapkit-task-execution ./examples/task_execution
/tmp/chapkit-task-execution -addr "127.0.0.1:$port" >/tmp/chapkit-walkthrough.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "localhost:$port/health" >/dev/null && break
  sleep 0.1
done
# The README's block, with its port replaced.
script=$(sed -n '/<!-- walkthrough:start -->/,/<!-- walkthrough:end -->/p' README.md | sed '/^```/d;/^<!--/d' | sed "s/localhost:8000/localhost:$port/g")
out=$(bash -euo pipefail -c "$script")
echo "$out"
grep -q '"stdout":"Hello from chapkit\\n"' <<<"$out"
grep -q '"status":"completed"' <<<"$out"
kill -TERM $pid
wait $pid
echo "walkthrough: ok (service exited with status $?)"
