#!/usr/bin/env bash
# Starts the local PostgreSQL, MariaDB and Redis the test suite uses, when they are installed
# here but not running. Does nothing for a service that already answers.
set -u

wait_for() { # name, command
  for _ in $(seq 1 30); do
    if eval "$2" >/dev/null 2>&1; then echo "$1: up"; return 0; fi
    sleep 1
  done
  echo "$1: not reachable" >&2
  return 1
}

if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
fi
command -v pg_isready >/dev/null 2>&1 && wait_for postgresql "pg_isready -q -h 127.0.0.1 -p 5432"

if command -v mariadb-admin >/dev/null 2>&1 && ! mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
command -v mariadb-admin >/dev/null 2>&1 && wait_for mariadb "mariadb-admin -h 127.0.0.1 -u root ping"

if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
command -v redis-cli >/dev/null 2>&1 && wait_for redis "redis-cli -h 127.0.0.1 ping"
exit 0
