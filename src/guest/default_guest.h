/* The default guest: what `tabique run` boots without --kernel. Its kernel and
 * an initramfs (busybox shell on ttyS0, virtio modules) are made once from
 * Debian's linux-image-amd64 and busybox-static packages and kept in a cache. */
#ifndef TABIQUE_GUEST_DEFAULT_GUEST_H
#define TABIQUE_GUEST_DEFAULT_GUEST_H

#include <limits.h>
#include <stddef.h>

struct default_guest {
	char kernel[PATH_MAX];
	char initrd[PATH_MAX];
	char cmdline[512];
};

/* Makes sure the default guest exists in the cache (preparing it if needed)
 * and fills out. A cache made by the current recipe is used as is, without
 * asking apt (`tabique prepare-guest` looks for a newer kernel). Returns 0 or a
 * negative errno after one clear error line (e.g. apt-get missing, package not
 * downloadable: "run apt-get update"). */
int default_guest_prepare(struct default_guest *out);

/* The cache directory: $TABIQUE_CACHE, else $XDG_CACHE_HOME/tabique, else
 * ~/.cache/tabique. Returns 0, -ENAMETOOLONG or -ENOENT (no home directory). */
int default_guest_cache_dir(char *buf, size_t len);

/* `tabique prepare-guest [--force]`: prepares the default guest again when the
 * cache is missing, made by an older recipe, or Debian's kernel package has
 * changed (--force: always), then prints the kernel and initrd paths. argv[0]
 * is the command name. Returns the exit status: 0, 1 (failure), 2 (usage). */
int default_guest_main(int argc, char **argv);

#endif
