#!/bin/sh
# patchbrain lab: shutdown / reboot / halt / poweroff for hosts that have no init system.
# A reboot sends this host's PID 1 (the patchbrain supervisor) a reboot request (SIGUSR1): the lab boots
# the host again with fresh namespaces and a new /run/patchbrain/boot_id; its disk is kept. A halt or
# poweroff stops the host (SIGTERM) until `patchbrain lab up` or `patchbrain lab reset` starts it again.
action=halt
case "${0##*/}" in
    reboot) action=reboot ;;
esac
for arg in "$@"; do
    case "$arg" in
        -r | --reboot) action=reboot ;;
        -c) echo "shutdown: no scheduled shutdown to cancel" >&2; exit 0 ;;
    esac
done
signal=TERM
[ "$action" = reboot ] && signal=USR1
# Detached and delayed, so the command that asked (an SSH session, Ansible) gets its answer first.
setsid sh -c "sleep 1; kill -s $signal 1" </dev/null >/dev/null 2>&1 &
echo "patchbrain lab: $action in 1 s" >&2
exit 0
