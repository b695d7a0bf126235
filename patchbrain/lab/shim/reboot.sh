#!/bin/sh
# reboot / shutdown / poweroff / halt for a patchbrain lab host (no init system, no kernel of its own).
# PID 1 of the host is patchbrain's supervisor: SIGUSR1 asks it to reboot the host (its processes restart,
# /run is fresh, /run/patchbrain/boot_id is new); SIGTERM stops the host. The signal is sent a moment
# later from a detached job, so the command itself returns and a remote caller (Ansible) sees success.
set -eu
prog=$(basename "$0")
action=
case "$prog" in
    reboot) action=reboot ;;
    poweroff|halt) action=stop ;;
    shutdown)
        for arg in "$@"; do
            case "$arg" in
                -r|--reboot) action=reboot ;;
                -h|-P|-H|--halt|--poweroff) [ -n "$action" ] || action=stop ;;
                -c)
                    echo "$prog: no pending shutdown to cancel in the lab" >&2
                    exit 1 ;;
            esac
        done
        [ -n "$action" ] || action=stop ;;
    *)
        echo "$prog: unknown name (reboot, shutdown, poweroff, halt)" >&2
        exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
    echo "$prog: must be root" >&2
    exit 1
fi
if [ "$action" = reboot ]; then signal=USR1; else signal=TERM; fi
setsid -f sh -c "sleep 1; kill -$signal 1" </dev/null >/dev/null 2>&1
echo "patchbrain lab: $action requested (PID 1 gets SIG$signal in 1 s)" >&2
exit 0
