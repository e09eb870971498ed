#!/usr/bin/env bash
# The whole test suite against real PostgreSQL, Redis and RabbitMQ: installs what the tests need (eng/packages.sh
# test), starts its own private servers (separate from a running ./run.sh), runs every test project (the AppHost test
# starts the platform under Aspire itself), stops the servers whatever happens, and exits with the tests' status.
# Extra arguments go to `dotnet test` (e.g. ./test.sh --filter "FullyQualifiedName~Files").
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)

servers="$root/.test-run/servers-$$"
results="$root/.test-run/results-$$"
cleanup() {
  local status=$?
  eng/servers.sh stop "$servers" || true
  rm -rf "$servers"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FTP_SERVERS_FAST=1 FTP_PACKAGES_PROFILE=test eng/servers.sh start "$servers"
# shellcheck disable=SC1091
. "$servers/servers.env"

target=FineTunePlatform.sln
dotnet build "$target" -c Release -nologo -clp:ErrorsOnly
set +e
dotnet test "$target" -c Release --no-build -nologo --results-directory "$results" "$@" 2>&1 | tee "$results.log"
status=${PIPESTATUS[0]}
set -e

# One closing line over every test assembly: "N passed, N failed, N skipped".
awk '/^(Passed|Failed)! +- +Failed:/ {
       gsub(",", ""); for (i = 1; i <= NF; i++) { if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$results.log"
rm -rf "$results" "$results.log"
exit "$status"
