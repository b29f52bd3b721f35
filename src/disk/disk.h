/*
 * Disk images: what a block device (virtio-blk) needs from an image file,
 * whatever its format. disk_open() does what every format shares (open,
 * check, lock) and hands the file to a format backend (raw.c, qcow2.c),
 * which implements struct disk_ops: asynchronous requests whose
 * completions are signalled on disk->event_fd.
 *
 * Formats: an image's format is given, or probed from its first bytes.
 * Probing is only for files a user names on a command line: a raw image
 * whose guest writes a qcow2 header into it would otherwise be opened as
 * qcow2 next time, with a backing file of the guest's choosing (any host
 * file). So the manager records every disk's format in the VM definition
 * and always passes it (--disk PATH,format=raw), and a probed raw image
 * refuses guest writes that would put a qcow2 magic into its first sector.
 *
 * Image files are untrusted input: every failure is a negative errno and
 * one line that names the file, never a crash.
 *
 * Threading: a disk is not thread-safe. One thread at a time submits and
 * reaps (the device thread, or a vCPU thread holding the device's lock
 * during a reset).
 */
#ifndef TABIQUE_DISK_DISK_H
#define TABIQUE_DISK_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define DISK_SECTOR	512
#define DISK_SERIAL_MAX 20 /* virtio-blk's device ID string (VIRTIO 1.2, 5.2.6) */
#define DISK_MAX	16 /* --disk options per VM */

enum disk_format {
	DISK_FORMAT_AUTO, /* probe the magic: never for a disk a VM definition records */
	DISK_FORMAT_RAW,
	DISK_FORMAT_QCOW2,
};

/* "raw", "qcow2" ("auto" for DISK_FORMAT_AUTO). */
const char *disk_format_name(enum disk_format format);

/* "raw" or "qcow2" into *format; -EINVAL for anything else. */
int disk_format_parse(const char *name, enum disk_format *format);

/* One --disk PATH[,readonly][,serial=ID][,format=raw|qcow2] option, parsed. */
struct disk_spec {
	char *path;		 /* malloc'ed, ",," unescaped to "," */
	enum disk_format format; /* DISK_FORMAT_AUTO when none was given */
	bool readonly;
	char serial[DISK_SERIAL_MAX + 1]; /* "" when none was given */
};

/*
 * Parses a --disk value. Options after the path, comma-separated:
 * "readonly", "serial=ID" (1..20 printable ASCII characters, no comma),
 * "format=raw" or "format=qcow2" (default: probed, see above). A
 * comma in the path is written twice. Returns 0, or -EINVAL with why (a
 * short phrase, e.g. "unknown option 'foo'") in why[whylen]; the spec then
 * owns nothing. Free a parsed spec with disk_spec_free().
 */
int disk_parse_spec(const char *text, struct disk_spec *spec, char *why, size_t whylen);
void disk_spec_free(struct disk_spec *spec);

enum disk_op {
	DISK_READ,
	DISK_WRITE,
	DISK_FLUSH,	   /* up to stable storage: fdatasync */
	DISK_DISCARD,	   /* a hint: may do nothing */
	DISK_WRITE_ZEROES, /* reads return zeroes afterwards */
};

#define DISK_F_UNMAP 1u /* WRITE_ZEROES may deallocate */
#define DISK_F_FUA   2u /* WRITE, WRITE_ZEROES: stable when done (write-through) */

/*
 * One request, owned by the caller and left alone by it from submission
 * until done() runs. The backend may modify iov (short transfers are
 * continued in place).
 */
struct disk_req {
	enum disk_op op;
	unsigned flags;	   /* DISK_F_* */
	struct iovec *iov; /* READ, WRITE: the buffers, len bytes in all */
	unsigned niov;	   /* at most DISK_MAX_IOV */
	uint64_t offset;   /* bytes from the start of the disk */
	uint64_t len;	   /* bytes; offset + len <= disk size (the caller checks) */
	/* Called once, from disk_complete() or disk_drain(): ret is 0 or -errno. */
	void (*done)(struct disk_req *req, int ret);
	/* The backend's. */
	uint64_t progress; /* bytes done */
	unsigned stage;
};

/* What readv/writev take (UIO_MAXIOV). */
#define DISK_MAX_IOV 1024

struct disk;

struct disk_ops {
	const char *format;
	/*
	 * Queues req: done() follows later, from disk_complete() or
	 * disk_drain(). Returns 0, or -errno when req was not queued (done()
	 * is then never called): -EBUSY when max_inflight requests are queued.
	 */
	int (*submit)(struct disk *d, struct disk_req *req);
	/* Starts everything submitted since the last call: one system call per batch. */
	void (*commit)(struct disk *d);
	/* Runs done() for every finished request, without blocking; returns how many. */
	unsigned (*complete)(struct disk *d);
	/* Commits, then waits until no request is in flight, running done() for each. */
	void (*drain)(struct disk *d);
	/* Frees the backend's state; nothing is in flight. */
	void (*close)(struct disk *d);
};

struct disk {
	const struct disk_ops *ops;
	char *path;
	int fd;
	uint64_t size; /* bytes, a multiple of DISK_SECTOR */
	bool readonly;
	bool guard_magic;      /* a probed raw image: refuse writing a qcow2 magic at 0 */
	int event_fd;	       /* readable when completions wait: then call disk_complete() */
	unsigned max_inflight; /* requests queued at once */
	unsigned inflight;
	void *priv; /* the backend's */
};

/*
 * Opens, checks and locks an image for one VM: O_CLOEXEC, a regular file or
 * a block device, and an OFD lock on the whole file (a write lock, or a
 * read lock when readonly) so that no two VMs write one image. format
 * DISK_FORMAT_AUTO probes it (see above). A raw image must not be empty and
 * must be a whole number of 512-byte sectors (anything else is refused, not
 * rounded); a qcow2 image is checked as qcow2.h says, and its backing files
 * are opened read-only and read-locked. max_inflight (1..4096) bounds the
 * queued requests. Returns 0, or a negative errno after printing one line
 * that names the file.
 */
int disk_open(struct disk **out, const char *path, enum disk_format format, bool readonly,
	      unsigned max_inflight);

/* Drains, then closes and frees; NULL is fine. */
void disk_close(struct disk *d);

static inline int disk_submit(struct disk *d, struct disk_req *req)
{
	return d->ops->submit(d, req);
}

static inline void disk_commit(struct disk *d)
{
	d->ops->commit(d);
}

static inline unsigned disk_complete(struct disk *d)
{
	return d->ops->complete(d);
}

static inline void disk_drain(struct disk *d)
{
	d->ops->drain(d);
}

#endif
