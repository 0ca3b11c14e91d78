#!/usr/bin/env bash
# Fails when the committed console bundle (internal/console/dist) differs
# from what the sources in console/ build: rebuilds into a temporary
# directory and compares byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
OUT_DIR="$out" bash scripts/console-build.sh
if ! diff -rq "$out" internal/console/dist; then
	echo "internal/console/dist is stale: run scripts/console-build.sh and commit the result" >&2
	exit 1
fi
echo "console bundle matches its sources"
