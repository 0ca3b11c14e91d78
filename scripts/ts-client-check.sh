#!/usr/bin/env bash
# Generates a TypeScript client from the /openapi.json of a freshly started
# examples/task_execution (openapi-typescript types, openapi-fetch calls),
# type-checks clients/ts/src/flow.ts against it with tsc, then runs the
# flow against the service: task, execute, job polling, jobs by status,
# artifact tags and $download, info and health. Fails on any step.
# Needs go, curl, node and npm; the tools come from clients/ts's lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-18769}
bin=$(mktemp -d)
go build -o "$bin/task-execution" ./examples/task_execution
"$bin/task-execution" -addr "127.0.0.1:$port" >"$bin/service.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$bin"' EXIT
for _ in $(seq 1 100); do
  curl -fs "localhost:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done

cd clients/ts
npm ci --no-audit --no-fund
curl -fsS "localhost:$port/openapi.json" -o openapi.json
echo "== generate types"
npx --no-install openapi-typescript openapi.json -o src/schema.d.ts
echo "== tsc --noEmit"
npx --no-install tsc --noEmit -p .
echo "== flow"
CHAPKIT_URL="http://localhost:$port" npx --no-install tsx src/flow.ts
kill -TERM $pid
wait $pid
echo "ts client check: ok"
