#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (default 60s) each, one at a time.
# Usage: scripts/fuzz.sh [PACKAGE...]    e.g. FUZZTIME=10m scripts/fuzz.sh ./syncproto
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-60s}"
pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
  mapfile -t pkgs < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)
fi
total=0
for pkg in "${pkgs[@]}"; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    printf 'fuzz %s %s (%s)\n' "$pkg" "$target" "$fuzztime"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" 2>&1 | tail -n 3
    total=$((total + 1))
  done
done
if [ "$total" -eq 0 ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi
echo "fuzz: ran $total targets for $fuzztime each"
