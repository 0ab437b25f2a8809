#!/usr/bin/env bash
# The Debian packages the tests start real servers and clients from. Run by
# `deno task test` before anything else, so the README's test command works on
# a fresh machine:
#   - all installed: exits at once (one dpkg-query call, no apt);
#   - some missing, root on Debian: installs them once, quietly, saying so;
#   - otherwise: stops with the exact command to run.
set -euo pipefail

PACKAGES=(openssl slapd ldap-utils postfix chromium haproxy redis-server 389-ds-base
  python3-dkim testssl.sh)
# Installing these starts system daemons; the tests run their own on free ports.
SERVICES=(slapd haproxy redis-server)
POSTFIX_SELECTION="postfix postfix/main_mailer_type select No configuration"

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  status=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)
  for package in "${PACKAGES[@]}"; do
    grep -qE "^${package//./\\.} ii" <<<"$status" || missing+=("$package")
  done
else
  missing=("${PACKAGES[@]}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "test deps: installing ${missing[*]} (Debian packages the tests need; once)"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix: the tests use only its smtp-sink; never configure a mail daemon.
  echo "$POSTFIX_SELECTION" | debconf-set-selections
  for attempt in 1 2 3; do
    if apt-get update -qq >/dev/null &&
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
      break
    fi
    if [ "$attempt" = 3 ]; then
      echo "test deps: apt-get failed three times" >&2
      exit 1
    fi
    echo "test deps: apt-get failed (attempt $attempt); retrying" >&2
    sleep 5
  done
  for service in "${SERVICES[@]}"; do
    service "$service" stop >/dev/null 2>&1 || true
  done
  exit 0
fi

echo "The tests need these Debian packages, not installed here: ${missing[*]}" >&2
echo "Install them (as root), then run the tests again:" >&2
echo "  sudo sh -c 'echo \"$POSTFIX_SELECTION\" | debconf-set-selections &&" \
  "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends" \
  "${missing[*]} && for s in ${SERVICES[*]}; do service \$s stop; done'" >&2
exit 1
