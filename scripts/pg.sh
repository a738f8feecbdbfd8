#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the store tests: a fresh cluster in a
# temporary directory, listening on 127.0.0.1 at a free port (and a unix
# socket in that directory), trust authentication on loopback only, with a
# database fristed_test.
#
# Usage:
#   source scripts/pg.sh      exports FRISTED_TEST_POSTGRES_URL, defines
#                             pg_stop, and stops the server when the shell
#                             exits
#   scripts/pg.sh start       starts one and prints its URL on the last line
#                             of stdout
#   scripts/pg.sh stop DIR    stops the one started in DIR (printed on
#                             stderr by start) and removes DIR
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# "postgres" user (or a system user "fristedpg", created if need be). The
# PostgreSQL binaries come from /usr/lib/postgresql/15/bin, else the newest
# installed version, else they are installed with apt-get. The server is for
# tests only: fsync is off.

_pg_log() { printf 'pg.sh: %s\n' "$*" >&2; }

# _pg_candidates prints where Debian puts PostgreSQL's binaries: 15 first,
# then the newest.
_pg_candidates() {
  echo /usr/lib/postgresql/15/bin
  printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -rn
}

# _pg_bindir prints the directory of pg_ctl, installing PostgreSQL if need be.
_pg_bindir() {
  local d
  for d in $(_pg_candidates); do
    if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then
      echo "$d"
      return 0
    fi
  done
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    _pg_log "PostgreSQL not found; install postgresql-15 (or postgresql)"
    return 1
  fi
  _pg_log "installing PostgreSQL"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || return 1
  apt-get install -y -qq postgresql-15 >&2 </dev/null ||
    apt-get install -y -qq postgresql >&2 </dev/null || return 1
  for d in $(_pg_candidates); do
    if [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  _pg_log "PostgreSQL installed but pg_ctl not found"
  return 1
}

# _pg_user prints the user to run the server as ("" for the current one).
_pg_user() {
  if [ "$(id -u)" != 0 ]; then
    echo ""
  elif id postgres >/dev/null 2>&1; then
    echo postgres
  else
    id fristedpg >/dev/null 2>&1 || useradd -r -M -d /nonexistent -s /usr/sbin/nologin fristedpg >&2 || return 1
    echo fristedpg
  fi
}

# _pg_as USER DIR CMD... runs CMD as USER with DIR as working directory.
_pg_as() {
  local user=$1 dir=$2
  shift 2
  if [ -z "$user" ]; then
    (cd "$dir" && "$@")
  elif command -v runuser >/dev/null 2>&1; then
    (cd "$dir" && runuser -u "$user" -- "$@")
  else
    (cd "$dir" && su -s /bin/sh "$user" -c "$(printf '%q ' "$@")")
  fi
}

# _pg_port_free PORT succeeds if nothing listens on 127.0.0.1:PORT.
_pg_port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# _pg_start starts a server and sets PG_DIR and FRISTED_TEST_POSTGRES_URL.
_pg_start() {
  local bin user tmp dir port _
  bin=$(_pg_bindir) || return 1
  user=$(_pg_user) || return 1
  # As another user the directory must be reachable by it: use /tmp, not a
  # TMPDIR that may be private to this one.
  tmp=${TMPDIR:-/tmp}
  [ -z "$user" ] || tmp=/tmp
  dir=$(mktemp -d "$tmp/fristed-pg.XXXXXX") || return 1
  chmod 700 "$dir"
  [ -z "$user" ] || chown "$user" "$dir"

  if ! _pg_as "$user" "$dir" "$bin/initdb" -D "$dir/data" -U postgres -A trust \
    -E UTF8 --no-locale --no-instructions >"$dir/initdb.log" 2>&1; then
    _pg_log "initdb failed:"
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    return 1
  fi
  # Trust, but only on the socket in $dir and on loopback.
  cat >"$dir/data/pg_hba.conf" <<'EOF'
local all all              trust
host  all all 127.0.0.1/32 trust
EOF

  for _ in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 40000))
    _pg_port_free "$port" || continue
    if _pg_as "$user" "$dir" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
      start >/dev/null 2>&1; then
      break
    fi
    port=""
  done
  if [ -z "$port" ]; then
    _pg_log "server did not start; its log:"
    tail -n 30 "$dir/server.log" >&2 2>/dev/null || true
    rm -rf "$dir"
    return 1
  fi
  for _ in $(seq 1 60); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres && break
    sleep 0.5
  done
  if ! "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE fristed_test" </dev/null >/dev/null; then
    _pg_log "create database failed"
    _pg_as "$user" "$dir" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    return 1
  fi
  PG_DIR=$dir
  PG_BIN=$bin
  FRISTED_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/fristed_test?sslmode=disable"
  export FRISTED_TEST_POSTGRES_URL
  _pg_log "PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
}

# _pg_stop_dir DIR stops the server whose cluster is in DIR and removes DIR.
_pg_stop_dir() {
  local dir=$1 bin user
  [ -n "$dir" ] && [ -d "$dir/data" ] || return 0
  bin=${PG_BIN:-$(_pg_bindir)} || return 1
  user=$(stat -c %U "$dir")
  [ "$user" != "$(id -un)" ] || user=""
  _pg_as "$user" "$dir" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

# pg_stop stops the server started by sourcing this file.
pg_stop() {
  if [ -n "${PG_DIR:-}" ]; then
    _pg_stop_dir "$PG_DIR"
    PG_DIR=""
    unset FRISTED_TEST_POSTGRES_URL
  fi
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: start, export, and stop when the shell exits (after any EXIT
  # trap already set).
  if _pg_start; then
    _pg_prev_trap=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
    # shellcheck disable=SC2064
    trap "pg_stop; ${_pg_prev_trap:-:}" EXIT
  else
    return 1
  fi
else
  set -euo pipefail
  case "${1:-}" in
  start)
    _pg_start
    _pg_log "stop it with: $0 stop $PG_DIR"
    echo "$FRISTED_TEST_POSTGRES_URL"
    ;;
  stop)
    [ -n "${2:-}" ] || { _pg_log "usage: $0 stop DIR"; exit 2; }
    _pg_stop_dir "$2"
    ;;
  *)
    _pg_log "usage: source $0 | $0 start | $0 stop DIR"
    exit 2
    ;;
  esac
fi
