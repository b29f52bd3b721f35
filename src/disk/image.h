/*
 * Offline operations on image files, whatever their format: what `tabique
 * disk` and the manager (clones, VM creation) need. qcow2_create() (qcow2.h)
 * makes new qcow2 images. Every function prints one line naming the file
 * at fault before returning a negative errno; none leaves a half-written
 * file behind (new files appear under their name only when complete).
 */
#ifndef TABIQUE_DISK_IMAGE_H
#define TABIQUE_DISK_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "disk/disk.h"

#define DISK_BACKING_MAX 1024 /* a qcow2 backing file name, with its NUL */

/*
 * Creates a raw image of size bytes (a positive multiple of 512, sparse) at
 * path, which must not exist. Returns 0 or a negative errno (-EEXIST).
 */
int disk_create_raw(const char *path, uint64_t size);

struct disk_image_info {
	enum disk_format format;
	uint64_t virtual_size; /* bytes the guest sees */
	uint64_t file_size;    /* bytes of the file (st_size) */
	uint64_t allocated;    /* bytes the file takes on the host's disk */
	uint32_t cluster_size; /* qcow2; 0 for raw */
	unsigned version;      /* qcow2: 2 or 3 */
	unsigned refcount_bits;
	bool dirty, corrupt;		 /* qcow2's incompatible feature bits */
	char backing[DISK_BACKING_MAX];	 /* as stored (relative to the image); "" when none */
	enum disk_format backing_format; /* AUTO when the image does not record it */
};

/*
 * Describes the image at path, read-locked (format AUTO probes it). Backing
 * files are named, not opened. Returns 0 or a negative errno.
 */
int disk_image_info(const char *path, enum disk_format format, struct disk_image_info *info);

/* Progress of a long operation: bytes of the disk done so far, out of total. A
 * non-zero return cancels the operation (-ECANCELED). */
typedef int (*disk_progress_fn)(uint64_t done, uint64_t total, void *opaque);

struct disk_convert_options {
	enum disk_format src_format; /* AUTO: probed */
	enum disk_format dst_format; /* RAW or QCOW2 */
	unsigned cluster_bits;	     /* a qcow2 destination's; 0: 16 (64 KiB) */
	disk_progress_fn progress;   /* NULL: none */
	void *opaque;
	uint64_t written; /* out: data bytes written (what was not zeroes) */
};

/*
 * Copies the disk src shows (through its backing chain) into a new image at
 * dst, which must not exist. Sparse: unallocated and zero parts are not
 * written. dst appears only once complete. Returns 0 or a negative errno.
 */
int disk_convert(const char *src, const char *dst, struct disk_convert_options *o);

/* "1.5 GiB", "512 bytes": sizes for people, binary units. */
void disk_human_size(uint64_t bytes, char *out, size_t len);

/* A disk_progress_fn that draws a bar on stderr; opaque: a zeroed struct disk_bar. */
struct disk_bar {
	struct timespec last;
	bool shown;
};
int disk_bar_progress(uint64_t done, uint64_t total, void *opaque);
/* Ends the bar's line, if one was drawn. */
void disk_bar_end(struct disk_bar *bar);

/*
 * disk_convert() with the default cluster size and, when bar, a progress
 * bar on stderr (give isatty(STDERR_FILENO)). Returns 0 or a negative errno.
 */
int disk_convert_images(const char *src, enum disk_format src_format, const char *dst,
			enum disk_format dst_format, bool bar);

/*
 * Sets the virtual size of the image at path (a multiple of 512),
 * write-locked. Shrinking needs shrink, and is refused if anything is
 * allocated past size. Returns 0 or a negative errno.
 */
int disk_resize(const char *path, enum disk_format format, uint64_t size, bool shrink);

#endif
