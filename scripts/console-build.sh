#!/usr/bin/env bash
# Rebuilds the web console's bundle (internal/console/dist) from the sources
# in console/, with the exact npm versions of console/package-lock.json.
#
#   scripts/console-build.sh                 # into internal/console/dist
#   OUT_DIR=/tmp/x scripts/console-build.sh  # somewhere else
set -euo pipefail
cd "$(dirname "$0")/../console"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
