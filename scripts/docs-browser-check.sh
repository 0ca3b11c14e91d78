#!/usr/bin/env bash
# Renders the /docs page of examples/task_execution in headless Chromium and
# checks that Swagger UI drew the operations from the embedded assets and
# the generated /openapi.json (no network access is needed or used).
#
#   scripts/docs-browser-check.sh            # port 18765
#   PORT=9000 scripts/docs-browser-check.sh
#
# Installs Debian's chromium with apt-get when no chromium is found.
set -euo pipefail

cd "$(dirname "$0")/.."
PORT="${PORT:-18765}"
WANT="${WANT:-\$execute}"

browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [[ -z "$browser" ]]; then
	echo "installing chromium (apt-get)" >&2
	SUDO=""
	[[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
	browser="$(command -v chromium)"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
	if [[ -n "$server_pid" ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/task_execution" ./examples/task_execution
# Auth off for the check: the example enables it only when these are set.
env -u CHAPKIT_API_KEYS -u CHAPKIT_API_KEY_FILE \
	"$work/task_execution" -addr "127.0.0.1:$PORT" >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
	if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
		break
	fi
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null

"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
	--disable-component-update --disable-sync --no-first-run \
	--user-data-dir="$(mktemp -d -p "$work")" --virtual-time-budget=10000 \
	--dump-dom "http://127.0.0.1:$PORT/docs" >"$work/dom.html" 2>"$work/browser.log"

echo "rendered DOM: $(wc -c <"$work/dom.html") bytes, $(grep -o 'class="opblock ' "$work/dom.html" | wc -l) operations"
if grep -q -- "$WANT" "$work/dom.html" && grep -q 'class="opblock ' "$work/dom.html"; then
	grep -o "data-path=\"[^\"]*${WANT}[^\"]*\"" "$work/dom.html" | sort -u || true
	echo "OK: /docs rendered operations including $WANT"
else
	echo "FAIL: $WANT not found in the rendered /docs page" >&2
	tail -20 "$work/browser.log" >&2
	exit 1
fi
