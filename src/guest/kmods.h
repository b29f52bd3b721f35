/* Chooses which modules of an unpacked kernel package a guest carries, and the
 * order to insmod them in (there is no modules.dep and no modprobe). */
#ifndef TABIQUE_GUEST_KMODS_H
#define TABIQUE_GUEST_KMODS_H

#include <stddef.h>

struct kmod_list {
	size_t n;
	char **paths; /* relative to the modules directory, e.g. "kernel/fs/fuse/fuse.ko" */
};

/* Resolves wanted[] against moddir (lib/modules/<release> of the package, which
 * must hold modules.order and modules.builtin). An entry ending in '/' means every
 * module under kernel/<entry>; any other entry is a module name ('-' and '_' are
 * the same). Dependencies come from each module's .modinfo and are listed before
 * their users; built-in modules are left out. A wanted module the kernel lacks
 * entirely is skipped with a warning. Returns 0 and fills out (free it with
 * kmods_free()), or a negative errno after logging one error line. */
int kmods_resolve(const char *moddir, const char *const *wanted, size_t nwanted,
		  struct kmod_list *out);

void kmods_free(struct kmod_list *l);

#endif
