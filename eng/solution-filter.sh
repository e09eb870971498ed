#!/usr/bin/env bash
# Writes a solution filter of FineTunePlatform.sln's projects whose path matches a pattern, for building a part of the
# solution: eng/solution-filter.sh OUT.slnf [REGEX]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: eng/solution-filter.sh OUT.slnf [REGEX]}
pattern=${2:-.}
mkdir -p "$(dirname "$out")"
dotnet sln FineTunePlatform.sln list | grep -E '\.csproj$' | grep -E "$pattern" \
  | awk -v sln="$(pwd)/FineTunePlatform.sln" '
      BEGIN { printf "{\"solution\":{\"path\":\"%s\",\"projects\":[", sln }
      { printf "%s\"%s\"", (NR > 1 ? "," : ""), $0 }
      END { print "]}}" }' > "$out"
