#!/usr/bin/env bash
# Runs every test: vet, unit and end-to-end tests (SQLite and a throwaway
# PostgreSQL), then a short run of every fuzz target.
# Usage: scripts/test.sh            (everything)
#        FUZZTIME=10s scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CGO_ENABLED=1
step() { printf '\n== %s\n' "$*"; }

step "toolchain"
go version
command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc; }

step "go vet"
go vet ./...

if [ -z "${FRISTED_TEST_POSTGRES_URL:-}" ]; then
  step "PostgreSQL (throwaway)"
  # shellcheck source=scripts/pg.sh
  source scripts/pg.sh
fi

step "go test"
go test -count=1 -timeout 20m ./...

step "fuzz (short)"
FUZZTIME="${FUZZTIME:-3s}" scripts/fuzz.sh
