/* A writer for "newc" cpio archives, the format Linux unpacks as an initramfs. */
#ifndef TABIQUE_GUEST_CPIO_H
#define TABIQUE_GUEST_CPIO_H

#include <stddef.h>
#include <sys/types.h>

struct cpio;

/* Creates (or truncates) the archive file at path. Returns NULL with errno set.
 * Entries are written in call order: add a directory before what it contains,
 * since the kernel does not create missing parents. Names may start with '/'. */
struct cpio *cpio_create(const char *path);

/* Each add returns 0 or a negative errno; after an error every later call fails
 * with the same error, so callers may check only cpio_close(). mode holds the
 * permission bits (07777); the file type comes from the function. */
int cpio_add_dir(struct cpio *c, const char *name, mode_t mode);
int cpio_add_file(struct cpio *c, const char *name, mode_t mode, const void *data, size_t len);
/* Copies the regular file at hostpath (which must not change while it is copied). */
int cpio_add_file_from(struct cpio *c, const char *name, mode_t mode, const char *hostpath);
int cpio_add_symlink(struct cpio *c, const char *name, const char *target);
/* A device node: type is S_IFCHR or S_IFBLK. */
int cpio_add_node(struct cpio *c, const char *name, mode_t type, mode_t mode, unsigned int major,
		  unsigned int minor);

/* Writes the trailer, syncs and closes the file, frees c. Returns 0 or the first
 * negative errno met while writing the archive. */
int cpio_close(struct cpio *c);

#endif
