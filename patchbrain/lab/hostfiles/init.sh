#!/bin/sh
# init.sh HOSTDIR NAME LOWERDIRS: PID 1 of a lab host. Mounts the host's root (an overlay over the shared
# base), its /proc, /sys, /dev and /run, sets the hostname, pivots into the root and execs the supervisor.
set -eu
hostdir=$1
name=$2
lower=$3
root=$hostdir/merged

mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$hostdir/upper,workdir=$hostdir/work" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o nosuid,nodev,noexec,ro sysfs "$root/sys"
mount -t tmpfs -o mode=0755,nosuid,size=1m devtmpfs "$root/dev"
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/zero" c 1 5
mknod -m 666 "$root/dev/full" c 1 7
mknod -m 666 "$root/dev/random" c 1 8
mknod -m 666 "$root/dev/urandom" c 1 9
mknod -m 666 "$root/dev/tty" c 5 0
mkdir -m 755 "$root/dev/pts"
mkdir -m 1777 "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev,size=64m shm "$root/dev/shm"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m run "$root/run"
mkdir -m 755 "$root/run/patchbrain"
cat /proc/sys/kernel/random/uuid > "$root/run/patchbrain/boot_id"
hostname "$name"

cd "$root"
pivot_root . mnt
umount -l /mnt
exec /usr/bin/python3 -I /usr/local/sbin/patchbrain-supervisor
