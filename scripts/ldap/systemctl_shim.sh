#!/bin/sh
# A stand-in for `systemctl` that lets 389 DS's dscreate/dsctl run where systemd is not PID 1
# (containers, CI). scripts/ldap_dev.sh puts it first on PATH as `systemctl` for those tools only.
# It understands start/stop/restart/is-active for dirsrv@INSTANCE units and ignores everything else.
verb="$1"
shift
unit=""
for arg in "$@"; do
  case "$arg" in -*) ;; *) unit="$arg" ;; esac
done
case "$unit" in
  dirsrv@*) instance="${unit#dirsrv@}"; instance="${instance%.service}" ;;
  *) exit 0 ;;
esac
pidfile="/run/dirsrv/slapd-$instance.pid"
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
case "$verb" in
  start)
    running && exit 0
    mkdir -p /run/dirsrv "/var/log/dirsrv/slapd-$instance" "/var/lock/dirsrv/slapd-$instance"
    chown dirsrv:dirsrv /run/dirsrv "/var/log/dirsrv/slapd-$instance" \
      "/var/lock/dirsrv/slapd-$instance" 2>/dev/null
    # A socket left by the last run would end the wait below before the server listens.
    rm -f "/run/slapd-$instance.socket"
    /usr/sbin/ns-slapd -D "/etc/dirsrv/slapd-$instance" -i "$pidfile" || exit 1
    # ns-slapd forks before it listens; dscreate connects right after we return, so wait
    # until it answers (an anonymous root DSE read over LDAPI), not just for the socket file.
    i=0
    until ldapsearch -x -H "ldapi://%2Frun%2Fslapd-$instance.socket" -b "" -s base \
      >/dev/null 2>&1; do
      [ $i -ge 300 ] && exit 1
      sleep 0.1
      i=$((i + 1))
    done
    ;;
  stop)
    running && kill "$(cat "$pidfile")"
    i=0
    while running && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    rm -f "$pidfile"
    ;;
  restart) "$0" stop "$unit" && "$0" start "$unit" ;;
  is-active) running ;;
  *) exit 0 ;;
esac
