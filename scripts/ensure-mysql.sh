#!/usr/bin/env bash
# Makes sure the MySQL-compatible server the tests use answers at
# 127.0.0.1:3306 (root, empty password): starts the local MariaDB when it is
# down, installing it from Debian's packages if this machine has none.
set -euo pipefail

ping_db() { mariadb-admin --host=127.0.0.1 --port=3306 --user=root --connect-timeout=2 ping >/dev/null 2>&1; }

if [ -n "${PAYMENTS_TEST_MYSQL_DSN:-}" ]; then
  exit 0 # an external server was chosen; nothing to start
fi
if command -v mariadb-admin >/dev/null 2>&1 && ping_db; then
  exit 0
fi
if [ ! -x /usr/sbin/mariadbd ]; then
  echo "ensure-mysql: installing mariadb-server" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
fi
echo "ensure-mysql: starting MariaDB" >&2
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
for _ in $(seq 1 120); do
  if ping_db; then
    echo "ensure-mysql: MariaDB is up" >&2
    exit 0
  fi
  sleep 0.5
done
echo "ensure-mysql: MariaDB did not answer at 127.0.0.1:3306 within 60s" >&2
exit 1
