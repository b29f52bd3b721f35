/* Reads a kernel module's dependencies from its ELF ".modinfo" section, the
 * information modprobe gets from modules.dep (which Debian's package lacks). */
#ifndef TABIQUE_GUEST_MODINFO_H
#define TABIQUE_GUEST_MODINFO_H

#include <stddef.h>

/* Largest module file modinfo_depends_file() accepts. */
#define MODINFO_MAX_FILE (64u << 20)

/* Copies the value of "depends=" (comma-separated module names, possibly empty)
 * of the 64-bit little-endian ELF module in buf[0..len) into out. The buffer is
 * untrusted: every offset is checked. Returns 0, -ENOEXEC if buf is not such an
 * ELF file (or is truncated), -ENOENT if it has no .modinfo section or no
 * depends= entry, -ENAMETOOLONG if out is too small. */
int modinfo_depends(const void *buf, size_t len, char *out, size_t outlen);

/* The same for the file at path; also -errno if it cannot be read, -EFBIG if it
 * is larger than MODINFO_MAX_FILE. */
int modinfo_depends_file(const char *path, char *out, size_t outlen);

#endif
