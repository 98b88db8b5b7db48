#!/usr/bin/env bash
# Makes sure the PostgreSQL server that Temporal's cluster tests, the drills
# and `make cluster` persist to answers at 127.0.0.1:5432 (user postgres,
# trust auth): starts the local cluster when it is down, installing it from
# Debian's packages if this machine has none.
set -euo pipefail

ping_pg() { pg_isready -h 127.0.0.1 -p 5432 -U postgres -t 2 >/dev/null 2>&1; }

if command -v pg_isready >/dev/null 2>&1 && ping_pg; then
  exit 0
fi
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "ensure-postgres: installing postgresql" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  version=$(ls /etc/postgresql | head -1)
  # Trust local TCP connections, as the tests expect of a throwaway server.
  sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\)\S\+/\1trust/' "/etc/postgresql/$version/main/pg_hba.conf"
fi
echo "ensure-postgres: starting PostgreSQL" >&2
pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
for _ in $(seq 1 120); do
  if ping_pg; then
    echo "ensure-postgres: PostgreSQL is up" >&2
    exit 0
  fi
  sleep 0.5
done
echo "ensure-postgres: PostgreSQL did not answer at 127.0.0.1:5432 within 60s" >&2
exit 1
