#!/usr/bin/env bash
# libvirtd kept running on a machine with no init system to do it (where systemd runs, its
# libvirtd.service restarts the daemon on failure). Debian 12's libvirtd 9.0 once died under the
# suite's load (a general protection fault in an RPC worker thread): every later test on this
# machine's libvirtd failed. One supervisor at a time; started by scripts/setup.sh.
set -u
# Under tini as a subreaper: the QEMU processes libvirtd starts are orphans, and libvirtd waits for a
# stopped one's pid to be gone; an init that reaps orphans late (this sandbox's, every 2 s or so)
# made each VM's stop take that long.
if [ -z "${VMSITE_SUPERVISOR_REAPED:-}" ] && command -v tini >/dev/null; then
    VMSITE_SUPERVISOR_REAPED=1 exec tini -s -- bash "$0" "$@"
fi
exec 9>/run/vmsite-libvirtd-supervisor.lock
flock -n 9 || exit 0
while true; do
    libvirtd 2>>/var/log/libvirt/libvirtd.log  # its warnings and errors (a client's keepalive timeout...)
    status=$?
    echo "$(date -Is) libvirtd exited with status $status; starting it again" >> /var/log/libvirt/vmsite-supervisor.log
    sleep 1
done
