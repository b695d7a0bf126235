#!/bin/sh
# patchbrain lab: shutdown / reboot / halt / poweroff for hosts that have no init system.
# A reboot sends this host's PID 1 (the patchbrain supervisor) a reboot request (SIGUSR1): the lab boots
# the host again with fresh namespaces and a new /run/patchbrain/boot_id; its disk is kept. A halt or
# poweroff (SIGUSR2) stops the host until `patchbrain lab up` or `patchbrain lab reset` starts it again.
# PID 1 acts one second after the request, so the command that asked (an SSH session, Ansible) gets its
# answer first; the signal itself is sent now, by this command (no background job that could be lost).
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
signal=USR2
[ "$action" = reboot ] && signal=USR1
kill -s "$signal" 1 || exit 1
echo "patchbrain lab: $action in 1 s" >&2
exit 0
