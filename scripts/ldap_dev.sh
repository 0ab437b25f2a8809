#!/usr/bin/env bash
# scripts/ldap_dev.sh — a local LDAP directory for developing and trying relay's LDAP backend,
# in the prototype's layout, on 127.0.0.1:3389 (ldap://, StartTLS offered) and :3636 (ldaps://).
#
# Usage:
#   scripts/ldap_dev.sh [start]      OpenLDAP slapd in the background (data in $RELAY_LDAP_DEV_DIR)
#   scripts/ldap_dev.sh run          the same in the foreground, logging to the terminal (Ctrl-C stops)
#   scripts/ldap_dev.sh stop         stop it (data kept)
#   scripts/ldap_dev.sh status       is it running; print the [ldap] config to use
#   scripts/ldap_dev.sh reset        stop and delete the data; the next start seeds afresh
#   scripts/ldap_dev.sh 389 [start|stop|status|reset]
#                                    389 Directory Server instead (instance "relaydev", made with
#                                    dscreate; needs root; works without systemd through
#                                    scripts/ldap/systemctl_shim.sh). Start only one of the two.
#
# Environment: RELAY_LDAP_DEV_DIR (default data/ldap-dev), LDAP_PORT (3389), LDAPS_PORT (3636).
# Needs:   apt-get install -y slapd ldap-utils openssl     (389 route: apt-get install -y 389-ds-base)
#
# Layout (both servers):
#   dc=example,dc=com and dc=company,dc=com, each with ou=users
#   uid=<local>,ou=users,dc=<domain labels>   inetOrgPerson + posixAccount: uid cn sn givenName mail
#                                             uidNumber gidNumber homeDirectory loginShell userPassword
#     john.doe@example.com / john-dev-pass    alice@company.com / alice-dev-pass
#     locked@example.com   / locked-dev-pass  (disabled: pwdAccountLockedTime or nsAccountLock)
#   cn=relay,ou=services,dc=example,dc=com / relay-dev-pass   read-only service account ([ldap] bind_dn)
#   admin: cn=admin,dc=example,dc=com / admin-dev-pass (OpenLDAP),
#          cn=Directory Manager / Directory-Manager-dev-pass (389)
# These passwords are for a developer's machine only.
#
# Then, e.g.:  deno task relay user add --ldap bob@company.com --first Bob --last Builder
# with the [ldap] / [ldap.admin] settings printed by `start` or `status` in config/relay.toml.
set -euo pipefail

cd "$(dirname "$0")/.."
DIR="${RELAY_LDAP_DEV_DIR:-data/ldap-dev}"
LDAP_PORT="${LDAP_PORT:-3389}"
LDAPS_PORT="${LDAPS_PORT:-3636}"
SUFFIXES=("dc=example,dc=com" "dc=company,dc=com")
ADMIN_DN="cn=admin,dc=example,dc=com"
ADMIN_PASSWORD="admin-dev-pass"
SERVICE_DN="cn=relay,ou=services,dc=example,dc=com"
SERVICE_PASSWORD="relay-dev-pass"
INSTANCE=relaydev
DM_PASSWORD="Directory-Manager-dev-pass"

die() { echo "ldap_dev: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || die "$1 not found: $2"; }

# LDIF for the tree below one suffix: $1 suffix, $2 domain, $3 command printing a userPassword
# value for a password, $4 the attribute line that locks an account on this server.
seed_ldif() {
  local suffix="$1" domain="$2" hash="$3" lock_attr="$4"
  cat <<LDIF
dn: ou=users,$suffix
objectClass: organizationalUnit
ou: users

LDIF
  if [ "$suffix" = "dc=example,dc=com" ]; then
    cat <<LDIF
dn: ou=services,$suffix
objectClass: organizationalUnit
ou: services

dn: $SERVICE_DN
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: relay
description: relay's read-only service account
userPassword: $($hash "$SERVICE_PASSWORD")

LDIF
    user_ldif "john.doe" "$domain" "$suffix" John Doe 10001 "" "$hash" john-dev-pass
    user_ldif "locked" "$domain" "$suffix" Locked Out 10002 "$lock_attr" "$hash" locked-dev-pass
  else
    user_ldif "alice" "$domain" "$suffix" Alice Smith 10003 "" "$hash" alice-dev-pass
  fi
}

# One user entry: $1 local $2 domain $3 suffix $4 given $5 surname $6 uidNumber
# $7 lock attribute line (or "") $8 hash command $9 password (as the header above lists it)
user_ldif() {
  cat <<LDIF
dn: uid=$1,ou=users,$3
objectClass: top
objectClass: inetOrgPerson
objectClass: posixAccount
uid: $1
cn: $4 $5
givenName: $4
sn: $5
mail: $1@$2
uidNumber: $6
gidNumber: $6
homeDirectory: /home/$2/$1
loginShell: /usr/sbin/nologin
userPassword: $($8 "$9")
LDIF
  [ -n "$7" ] && echo "$7"
  echo
}

print_config() {
  local ca="$1" admin_dn="$2" admin_password="$3" host="${4:-127.0.0.1}"
  cat <<TOML
# config/relay.toml
[auth]
backends = ["ldap"]          # or ["file", "ldap"]

[ldap]
url = "ldap://$host:$LDAP_PORT"
starttls = true              # or url = "ldaps://$host:$LDAPS_PORT" without starttls
ca = "$ca"
bind_dn = "$SERVICE_DN"
bind_password = "$SERVICE_PASSWORD"

[ldap.admin]
bind_dn = "$admin_dn"
bind_password = "$admin_password"
TOML
}

# ---------------------------------------------------------------- OpenLDAP slapd

openldap_running() { [ -f "$DIR/slapd.pid" ] && kill -0 "$(cat "$DIR/slapd.pid")" 2>/dev/null; }

ssha() { /usr/sbin/slappasswd -h '{SSHA}' -s "$1"; }

openldap_init() {
  need /usr/sbin/slapd "apt-get install -y slapd ldap-utils"
  need /usr/sbin/slapadd "apt-get install -y slapd ldap-utils"
  need /usr/sbin/slappasswd "apt-get install -y slapd ldap-utils"
  need openssl "apt-get install -y openssl"
  [ -f "$DIR/slapd.conf" ] && return 0
  echo "ldap_dev: creating a directory in $DIR"
  mkdir -p "$DIR"
  local abs
  abs="$(cd "$DIR" && pwd)"
  # A development CA and a certificate for 127.0.0.1 / localhost.
  (
    cd "$abs"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
      -out ca.pem -days 3650 -subj "/CN=relay dev LDAP CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
      -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
      -days 825 -extfile server.ext 2>/dev/null
    chmod 600 ca.key server.key
  )
  {
    for schema in core cosine inetorgperson nis; do echo "include /etc/ldap/schema/$schema.schema"; done
    cat <<CONF
pidfile $abs/slapd.pid
argsfile $abs/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
moduleload pw-sha2
TLSCACertificateFile $abs/ca.pem
TLSCertificateFile $abs/server.pem
TLSCertificateKeyFile $abs/server.key
access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
CONF
    local i=0 rootpw
    for suffix in "${SUFFIXES[@]}"; do
      rootpw=""
      # One admin for both databases: binds go to the first, whose rootpw checks them.
      [ $i -eq 0 ] && rootpw="rootpw $(ssha "$ADMIN_PASSWORD")"
      cat <<CONF

database mdb
suffix "$suffix"
rootdn "$ADMIN_DN"
$rootpw
directory $abs/db$i
maxsize 104857600
index objectClass,mail,uid,uidNumber eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="$SERVICE_DN" read by self read by * none
overlay ppolicy
ppolicy_default "cn=default,ou=policies,$suffix"
CONF
      i=$((i + 1))
    done
  } >"$abs/slapd.conf"
  local i=0
  for suffix in "${SUFFIXES[@]}"; do mkdir -p "$abs/db$i"; i=$((i + 1)); done
  i=0
  for suffix in "${SUFFIXES[@]}"; do
    local domain
    domain="$(echo "$suffix" | sed -e 's/dc=//g' -e 's/,/./g')"
    {
      cat <<LDIF
dn: $suffix
objectClass: top
objectClass: dcObject
objectClass: organization
dc: ${domain%%.*}
o: $domain

dn: ou=policies,$suffix
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,$suffix
objectClass: applicationProcess
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE

LDIF
      seed_ldif "$suffix" "$domain" ssha "pwdAccountLockedTime: 000001010000Z"
    } >"$abs/seed$i.ldif"
    /usr/sbin/slapadd -q -f "$abs/slapd.conf" -b "$suffix" -l "$abs/seed$i.ldif"
    i=$((i + 1))
  done
}

openldap_urls() { echo "ldap://127.0.0.1:$LDAP_PORT/ ldaps://127.0.0.1:$LDAPS_PORT/"; }

openldap_start() {
  openldap_running && { echo "ldap_dev: slapd already running (pid $(cat "$DIR/slapd.pid"))"; return 0; }
  openldap_init
  /usr/sbin/slapd -h "$(openldap_urls)" -f "$DIR/slapd.conf"
  for _ in $(seq 1 100); do
    ldapwhoami -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "$ADMIN_DN" -w "$ADMIN_PASSWORD" \
      >/dev/null 2>&1 && break
    sleep 0.1
  done
  openldap_status
}

openldap_run() {
  openldap_running && die "slapd already running (pid $(cat "$DIR/slapd.pid")): $0 stop first"
  openldap_init
  print_config "$(cd "$DIR" && pwd)/ca.pem" "$ADMIN_DN" "$ADMIN_PASSWORD"
  exec /usr/sbin/slapd -h "$(openldap_urls)" -f "$DIR/slapd.conf" -d stats
}

openldap_stop() {
  if openldap_running; then
    kill "$(cat "$DIR/slapd.pid")"
    for _ in $(seq 1 100); do openldap_running || break; sleep 0.1; done
    echo "ldap_dev: slapd stopped"
  else
    echo "ldap_dev: slapd is not running"
  fi
}

openldap_status() {
  if openldap_running; then
    echo "ldap_dev: slapd running (pid $(cat "$DIR/slapd.pid")) on ldap://127.0.0.1:$LDAP_PORT" \
      "and ldaps://127.0.0.1:$LDAPS_PORT"
    print_config "$(cd "$DIR" && pwd)/ca.pem" "$ADMIN_DN" "$ADMIN_PASSWORD"
  else
    echo "ldap_dev: slapd is not running"
    return 1
  fi
}

openldap_reset() {
  openldap_stop
  rm -rf "$DIR"
  echo "ldap_dev: removed $DIR"
}

# ---------------------------------------------------------------- 389 Directory Server

ds_tools() {
  [ "$(id -u)" -eq 0 ] || die "the 389 route needs root (dscreate writes /etc/dirsrv, /var/lib/dirsrv)"
  need dscreate "apt-get install -y 389-ds-base"
  need dsconf "apt-get install -y 389-ds-base"
  # Without systemd as PID 1, dscreate/dsctl would fail on `systemctl start dirsrv@...`.
  if [ ! -d /run/systemd/system ]; then
    SHIM_DIR="$(mktemp -d)"
    cp scripts/ldap/systemctl_shim.sh "$SHIM_DIR/systemctl"
    chmod +x "$SHIM_DIR/systemctl"
    export PATH="$SHIM_DIR:$PATH"
    trap 'rm -rf "$SHIM_DIR"' EXIT
  fi
}

ds_exists() { [ -d "/etc/dirsrv/slapd-$INSTANCE" ]; }

plain_password() { echo "$1"; } # 389 DS hashes a plain userPassword itself on add (PBKDF2-SHA512)

ds_start() {
  ds_tools
  if ! ds_exists; then
    local inf
    inf="$(mktemp)"
    cat >"$inf" <<INF
[general]
full_machine_name = localhost
strict_host_checking = False
start = True
[slapd]
instance_name = $INSTANCE
port = $LDAP_PORT
secure_port = $LDAPS_PORT
root_password = $DM_PASSWORD
self_sign_cert = True
[backend-example]
suffix = dc=example,dc=com
create_suffix_entry = True
sample_entries = no
[backend-company]
suffix = dc=company,dc=com
create_suffix_entry = True
sample_entries = no
INF
    echo "ldap_dev: dscreate from-file (instance $INSTANCE)"
    dscreate from-file "$inf"
    rm -f "$inf"
    # Developers' directories answer on loopback only.
    dsconf "$INSTANCE" config replace nsslapd-listenhost=127.0.0.1 \
      nsslapd-securelistenhost=127.0.0.1 >/dev/null
    dsctl "$INSTANCE" restart
    ds_wait
    # Named attributes: operational ones (nsAccountLock) are not in "*", and passwords stay hidden.
    local attrs="objectClass || uid || cn || sn || givenName || mail || uidNumber || gidNumber"
    attrs="$attrs || homeDirectory || loginShell || nsAccountLock || passwordExpirationTime"
    local aci="(targetattr=\"$attrs\")(version 3.0; acl \"relay service read\"; allow (read, search, compare) userdn=\"ldap:///$SERVICE_DN\";)"
    {
      for suffix in "${SUFFIXES[@]}"; do
        printf 'dn: %s\nchangetype: modify\nadd: aci\naci: %s\n\n' "$suffix" "$aci"
      done
      for suffix in "${SUFFIXES[@]}"; do
        local domain
        domain="$(echo "$suffix" | sed -e 's/dc=//g' -e 's/,/./g')"
        seed_ldif "$suffix" "$domain" plain_password "nsAccountLock: true" |
          awk 'BEGIN { RS = ""; ORS = "\n\n" } { sub(/\n/, "\nchangetype: add\n"); print }'
      done
    } | ldapmodify -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=Directory Manager" \
      -w "$DM_PASSWORD" >/dev/null
  else
    dsctl "$INSTANCE" start
    ds_wait
  fi
  ds_status
}

ds_wait() {
  for _ in $(seq 1 150); do
    ldapwhoami -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=Directory Manager" -w "$DM_PASSWORD" \
      >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "389 DS instance $INSTANCE does not answer on port $LDAP_PORT"
}

ds_status() {
  if ldapwhoami -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=Directory Manager" -w "$DM_PASSWORD" \
    >/dev/null 2>&1; then
    echo "ldap_dev: 389 DS instance $INSTANCE running on ldap://127.0.0.1:$LDAP_PORT and" \
      "ldaps://127.0.0.1:$LDAPS_PORT"
    # dscreate's self-signed certificate names "localhost" only, not 127.0.0.1.
    print_config "/etc/dirsrv/slapd-$INSTANCE/ca.crt" "cn=Directory Manager" "$DM_PASSWORD" localhost
  else
    echo "ldap_dev: 389 DS instance $INSTANCE is not answering"
    return 1
  fi
}

ds_stop() {
  ds_tools
  ds_exists && dsctl "$INSTANCE" stop
}

ds_reset() {
  ds_tools
  ds_exists && dsctl "$INSTANCE" remove --do-it
  echo "ldap_dev: removed instance $INSTANCE"
}

# ---------------------------------------------------------------- main

if [ "${1:-}" = "389" ]; then
  case "${2:-start}" in
    start) ds_start ;;
    stop) ds_stop ;;
    status) ds_status ;;
    reset) ds_reset ;;
    *) die "usage: $0 389 [start|stop|status|reset]" ;;
  esac
else
  case "${1:-start}" in
    start) openldap_start ;;
    run) openldap_run ;;
    stop) openldap_stop ;;
    status) openldap_status ;;
    reset) openldap_reset ;;
    *) die "usage: $0 [start|run|stop|status|reset] | $0 389 [start|stop|status|reset]" ;;
  esac
fi
