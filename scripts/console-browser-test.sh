#!/usr/bin/env bash
# Runs the console's browser test (console/tests/) with playwright-core
# driving Debian's Chromium against a freshly built examples/task_execution.
# Screenshots land in console/tests/screenshots/.
#
# Installs Debian's chromium with apt-get when none is found.
set -euo pipefail
cd "$(dirname "$0")/.."

browser="$(command -v chromium || true)"
if [[ -z "$browser" ]]; then
	echo "installing chromium (apt-get)" >&2
	SUDO=""
	[[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
	browser="$(command -v chromium)"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
go build -o "$work/task_execution" ./examples/task_execution
(cd console && npm ci --no-audit --no-fund --loglevel=error)
cd console
CHROMIUM="$browser" CHAPKIT_EXAMPLE_BIN="$work/task_execution" node --test tests/
