#!/usr/bin/env bash
# Initialise an empty data directory (superuser password, the init scripts), then run the server
# in the foreground. PGPORT moves it when several servers share the host's network.
set -euo pipefail
export POSTGRES_USER=${POSTGRES_USER:-postgres} POSTGRES_DB=${POSTGRES_DB:-postgres}
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
port=${PGPORT:-5432}
# A mounted volume arrives owned by root: the server runs as postgres, on a private directory.
mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp) && echo "$POSTGRES_PASSWORD" >"$pwfile" && chown postgres "$pwfile"
  su postgres -c "initdb -D '$PGDATA' -U '$POSTGRES_USER' --pwfile='$pwfile' -A scram-sha-256" >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  su postgres -c "pg_ctl -D '$PGDATA' -o \"-c listen_addresses='' -p $port\" -w start" >/dev/null
  for script in /docker-entrypoint-initdb.d/*.sh; do
    [ -e "$script" ] || continue
    PGPASSWORD=$POSTGRES_PASSWORD PGHOST=/var/run/postgresql PGPORT=$port bash "$script"
  done
  su postgres -c "pg_ctl -D '$PGDATA' -m fast -w stop" >/dev/null
fi
exec su postgres -c "postgres -D '$PGDATA' -c listen_addresses='*' -p $port"
