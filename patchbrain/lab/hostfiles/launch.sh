#!/bin/sh
# launch.sh INIT HOSTDIR NAME LOWERDIRS: run one lab host inside its network namespace.
# The host gets its own mount, UTS, IPC and pid namespaces; INIT is its PID 1 until it execs the supervisor.
# When PID 1 exits with 100 (a reboot request), the host boots again with a fresh /run and a new boot id.
while :; do
    unshare --mount --uts --ipc --pid --fork --kill-child -- /bin/sh "$@"
    rc=$?
    [ "$rc" -eq 100 ] || exit "$rc"
    echo "patchbrain-lab: $3 rebooting" >&2
done
