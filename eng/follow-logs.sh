#!/usr/bin/env bash
# Follows every *.log under a directory, printing each line with the log's name in front: [gateway] ...
# (tail marks each switch of file with a "==> path <==" header, which names the lines after it).
set -euo pipefail
tail -n 0 -F "$1"/*.log 2>/dev/null \
  | awk '/^==> .* <==$/ { n = split($2, parts, "/"); name = parts[n]; sub(/\.log$/, "", name); next }
         NF { printf "[%s] %s\n", name, $0; fflush() }'
