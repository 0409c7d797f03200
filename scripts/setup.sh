#!/usr/bin/env bash
# Gets a checkout ready to run: Node >= 24 (scripts/env.sh), the npm dependencies as locked, and
# the external tools named as arguments (see scripts/provision-tools.sh). Idempotent and quick
# when nothing changed.
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$relais_root"

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "relais: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

if [ $# -gt 0 ]; then
  "$relais_root/scripts/provision-tools.sh" "$@"
fi
