#!/usr/bin/env bash
# Adds an EF Core migration to a service: eng/add-migration.sh Gateway AddUsage
# dotnet-ef builds the service's host to find its DbContext, so it gets placeholder connection strings
# (nothing connects: migrations are generated from the model alone).
set -euo pipefail
cd "$(dirname "$0")/.."
service=${1:?usage: eng/add-migration.sh <Datasets|Training|Evaluation|Gateway> <MigrationName>}
name=${2:?usage: eng/add-migration.sh <service> <MigrationName>}
dotnet tool restore >/dev/null
export ConnectionStrings__datasetsdb="Host=127.0.0.1;Database=datasetsdb" \
  ConnectionStrings__trainingdb="Host=127.0.0.1;Database=trainingdb" \
  ConnectionStrings__evaluationdb="Host=127.0.0.1;Database=evaluationdb" \
  ConnectionStrings__gatewaydb="Host=127.0.0.1;Database=gatewaydb" \
  ConnectionStrings__redis="127.0.0.1:6379" \
  ConnectionStrings__rabbitmq="amqp://guest:guest@127.0.0.1:5672" \
  Internal__Token="design-time-placeholder-token"
dotnet ef migrations add "$name" --project "src/FineTunePlatform.$service" --output-dir Infrastructure/Migrations
