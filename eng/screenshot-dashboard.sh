#!/usr/bin/env bash
# Takes the README's screenshot of the Aspire dashboard (docs/images/dashboard-resources.png) from a running
# platform (./run.sh --detach first): the Resources page once every resource reports Healthy.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -s .run/platform.env ] || { echo "start the platform first: ./run.sh --detach" >&2; exit 1; }
eng/packages.sh browser
# shellcheck disable=SC1091
. .run/platform.env
dotnet run --project eng/Screenshots -c Release -- "$FINETUNE_DASHBOARD_URL" docs/images/dashboard-resources.png --wait-for gateway --width 1600 --height 900
