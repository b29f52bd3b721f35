/*
 * qcow2 images (QEMU's format, docs/interop/qcow2.txt), version 3 read and
 * written, version 2 read. Cluster sizes 512 B to 2 MiB; 16-bit refcounts
 * for writing (any width for reading); zero clusters; compressed (zlib)
 * clusters are read, never written; backing files (qcow2 or raw, read-only,
 * chains up to 16 deep). Refused with one line naming the file: encryption,
 * external data files, extended L2 entries, zstd compression, unknown
 * incompatible features, internal snapshots or version 2 for writing, the
 * dirty bit for writing (run `qemu-img check -r all` first), anything out of
 * range, outside the file, misaligned or overlapping.
 *
 * Crash safety: data reaches the disk before the refcounts that allocate
 * it, and those before the L2/L1 entries that point at it; clusters are
 * freed only once the tables that stopped using them are on disk. A crash
 * leaks clusters at worst (`qemu-img check -r leaks` reclaims them).
 */
#ifndef TABIQUE_DISK_QCOW2_H
#define TABIQUE_DISK_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk/disk.h"

#define QCOW2_MIN_CLUSTER_BITS	   9  /* 512 B */
#define QCOW2_MAX_CLUSTER_BITS	   21 /* 2 MiB */
#define QCOW2_DEFAULT_CLUSTER_BITS 16 /* 64 KiB, as qemu-img */
#define QCOW2_MAX_CHAIN		   16 /* backing files behind one image */

/* Whether the first len bytes of a file are qcow2's magic "QFI\xfb". */
bool qcow2_probe(const uint8_t *head, size_t len);

/*
 * Makes an opened, locked disk a qcow2 one (disk_open calls it): checks the
 * image, opens its backing chain read-only and read-locked, sets d->size to
 * the virtual size. Returns 0, or a negative errno after one line naming the
 * file at fault.
 */
int qcow2_attach(struct disk *d);

/*
 * Creates a qcow2 v3 image at path, which must not exist: size bytes (a
 * multiple of 512; 0 with a backing file: the backing file's size),
 * cluster_bits 9..21 (0: 16). backing (NULL: none) is stored as given: a
 * relative name is relative to path's directory; it must open (the whole
 * chain is checked). backing_format "qcow2", "raw" or NULL (probed once,
 * then recorded: the image never needs probing again). The image is written
 * to an unnamed file that appears at path only when complete; it takes a
 * few clusters whatever the size. Returns 0, or a negative errno after one
 * line (-EEXIST: path exists).
 */
int qcow2_create(const char *path, uint64_t size, const char *backing, const char *backing_format,
		 unsigned cluster_bits);

#endif
