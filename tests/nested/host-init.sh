#!/bin/sh
# /init of the nested test host (busybox sh, PID 1).
#
# Loads KVM and 9p, mounts the outer machine's root filesystem read-only over
# 9p and chroots into it, so tabique, QEMU, python3 and their libraries are used
# in place, never copied.  Everything written inside lands in tmpfs, except the
# writable 9p shares named by tabique.rw=.
#
# Kernel command line parameters read here:
#   tabique.epoch=SECONDS   outer time at launch: the clock is never set earlier
#   tabique.rw=TAG:PATH,..  writable 9p shares, each mounted over PATH

export PATH=/bin
/bin/busybox --install -s /bin

say() { echo "tabique-nested-host: $*"; }
die() { say "FATAL: $*"; poweroff -f; sleep 60; }

param() {
	for w in $(cat /proc/cmdline); do
		case "$w" in tabique.$1=*) echo "${w#*=}" ;; esac
	done
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# The RTC QEMU gives us is right; the epoch only guards against a bad one.
epoch=$(param epoch)
if [ -n "$epoch" ] && [ "$(date +%s)" -lt "$epoch" ]; then
	date -s "@$epoch" >/dev/null
fi

for m in $(cat /lib/modules/load-order); do
	insmod "/lib/modules/$m.ko" || die "insmod $m failed"
done
[ -c /dev/kvm ] || die "no /dev/kvm after loading kvm-amd (no svm in this CPU?)"

R=/mnt/root
# msize: bigger 9p messages mean fewer (slow, emulated) round trips.
NINEP=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$NINEP,ro,cache=loose" hostroot $R || die "cannot mount hostroot"

mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
ln -sf pts/ptmx $R/dev/ptmx
for d in tmp run var/tmp dev/shm; do
	mount -t tmpfs -o mode=1777 tmpfs "$R/$d" || die "tmpfs on /$d"
done
mkdir -p $R/run/lock

for share in $(param rw | tr , ' '); do
	tag=${share%%:*}
	path=${share#*:}
	# The mount point may lie in one of the tmpfs above (a tree cloned in /tmp).
	mkdir -p "$R$path" 2>/dev/null
	mount -t 9p -o "$NINEP,rw" "$tag" "$R$path" || die "cannot mount $tag on $path"
done

say "ready, $(nproc) cpus, kvm ok, $(uname -r)"
# From now on the console belongs to the shell and the inner VMs: only
# emergencies (a panic) may interrupt them; dmesg still has everything.
echo 1 > /proc/sys/kernel/printk

# A shell on ttyS0 as its controlling tty, so programs like tabique can put the
# console in raw mode and job control works, exactly as on a real machine.
setsid -c chroot $R /usr/bin/env -i \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root TERM=linux LANG=C.UTF-8 PS1='nested-host# ' \
	/bin/sh -i <>/dev/ttyS0 >&0 2>&0
say "shell exited with status $?, powering off"
sync
poweroff -f
sleep 60
