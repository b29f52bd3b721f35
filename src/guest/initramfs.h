/* The recipe of the default guest's initramfs: busybox, an /init script, the
 * kernel modules for tabique's devices. */
#ifndef TABIQUE_GUEST_INITRAMFS_H
#define TABIQUE_GUEST_INITRAMFS_H

#include <stddef.h>

/* Bump whenever what initramfs_build() produces changes: caches made by an
 * older recipe are then rebuilt. */
#define INITRAMFS_RECIPE 3

/* The line /init prints once the guest is set up; the boot benchmark waits for it. */
#define INITRAMFS_READY_LINE "tabique: default guest ready"

struct initramfs_src {
	const char *moddir;  /* unpacked lib/modules/<release> of the kernel package */
	const char *release; /* e.g. "6.1.0-56-amd64" */
	const char *busybox; /* a statically linked busybox */
};

/* Writes the gzip-compressed initramfs to path (temporary files go next to it).
 * Sets *nmods to the number of modules carried. Returns 0 or a negative errno
 * after logging one error line. */
int initramfs_build(const struct initramfs_src *src, const char *path, size_t *nmods);

#endif
