/*
 * Raw images: the disk's bytes are the file's bytes. Requests go through one
 * io_uring per disk (readv/writev straight from the caller's iovecs, fsync,
 * fallocate), whose completions are signalled on disk->event_fd.
 */
#ifndef TABIQUE_DISK_RAW_H
#define TABIQUE_DISK_RAW_H

#include "disk/disk.h"

/*
 * Makes an opened, checked disk a raw one: an io_uring of d->max_inflight
 * entries and its eventfd. Returns 0, or a negative errno after one line
 * saying what was wrong.
 */
int raw_attach(struct disk *d);

#endif
