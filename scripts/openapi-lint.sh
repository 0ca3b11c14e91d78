#!/usr/bin/env bash
# Lints the OpenAPI document that examples/task_execution serves, once as
# an open service and once with API keys on (which adds the security
# scheme and the 401 answers), with Redocly's recommended rules. Exits
# non-zero on any lint error; warnings are printed and allowed.
#
# The service mounts every built-in route (tasks, jobs, artifacts, health,
# system, metrics, docs), so the two documents cover all of them.
# Needs go, curl, python3 and npx (the linter is fetched from npm at the
# pinned version below).
set -euo pipefail
cd "$(dirname "$0")/.."
redocly_version=2.77.0
port=${PORT:-18767}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/task-execution" ./examples/task_execution

# fetch NAME PORT [ENV=VALUE...]: starts the service with the given
# environment, writes its /openapi.json, indented (so that the linter's
# line numbers mean something), to $work/NAME.json.
fetch() {
  local name=$1 p=$2
  shift 2
  env "$@" "$work/task-execution" -addr "127.0.0.1:$p" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -fs "localhost:$p/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "localhost:$p/openapi.json" | python3 -m json.tool >"$work/$name.json"
}
fetch open "$port"
fetch auth "$((port + 1))" CHAPKIT_API_KEYS=sk_lint_0123456789

status=0
for name in open auth; do
  echo "== redocly lint ($name service)"
  (cd "$work" && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
    npx --yes "@redocly/cli@$redocly_version" lint --format=stylish "$name.json") || status=1
done
if [ "$status" -ne 0 ]; then
  echo "openapi lint: errors (see above)" >&2
  exit 1
fi
echo "openapi lint: ok"
