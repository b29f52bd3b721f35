/*
 * libFuzzer target for qcow2 images: the input is an image file (untrusted:
 * anyone may hand tabique one) followed by requests to run on it, as a
 * guest would send them. The image goes into a memfd, is opened through
 * disk_open (format qcow2, its checks, caches, allocator, io_uring), then
 * the requests run, several in flight at once.
 *
 * Input layout, from the end:
 *   last byte     bits 0-5: number of requests N (at most 63), bit 6: all
 *                 in flight at once, completed through the eventfd (else
 *                 one by one), bit 7: read-only, and then the image is
 *                 converted (small ones) or else grown by 1 MiB
 *   N x 8 bytes   requests: op (low 3 bits: read, write, write-zeroes,
 *                 write-zeroes with unmap, discard, flush, write-through
 *                 write), data byte, first sector (4 bytes, little
 *                 endian, modulo the disk), sectors - 1 (2 bytes, at most
 *                 256)
 *   the rest      the image file; shorter than 4 bytes: a new image made by
 *                 qcow2_create (8 MiB, clusters of 2^(9 + first byte % 13),
 *                 64 KiB without one), and requests run one by one are
 *                 checked against a model of what the disk holds
 *
 * Invariants checked: every request is answered exactly once, nothing is in
 * flight afterwards, the image info call agrees on the size, an image that
 * opened read-write opens again after tabique wrote to it (its metadata is
 * still consistent), a new image reads what was written; the sanitizers
 * watch every byte.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "disk/disk.h"
#include "disk/image.h"
#include "disk/qcow2.h"

#define MAX_REQS    63
#define REQ_BYTES   8
#define MAX_SECTORS 256
#define CONVERT_MAX (8u << 20) /* bytes of disk worth converting */
#define NEW_SIZE    (8u << 20) /* a new image's */
#define UNKNOWN	    0x100      /* a sector the model does not know */

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_req {
	struct disk_req req;
	struct iovec iov[2];
	uint8_t *buf;
	unsigned answers;
};

static void fuzz_done(struct disk_req *r, int ret)
{
	struct fuzz_req *f = (struct fuzz_req *)r;

	(void)ret;
	f->answers++;
}

/* One request from its 8 bytes; false when it does not fit the disk. */
static bool fuzz_prepare(struct fuzz_req *f, const uint8_t *b, uint64_t disk_size)
{
	static const enum disk_op ops[] = {DISK_READ,	      DISK_WRITE,   DISK_WRITE_ZEROES,
					   DISK_WRITE_ZEROES, DISK_DISCARD, DISK_FLUSH,
					   DISK_WRITE,	      DISK_READ};
	uint64_t sectors = disk_size / 512, first, n;

	memset(&f->req, 0, sizeof(f->req));
	f->answers = 0;
	f->req.op = ops[b[0] & 7];
	f->req.flags = (b[0] & 7) == 3 ? DISK_F_UNMAP : (b[0] & 7) == 6 ? DISK_F_FUA : 0;
	f->req.done = fuzz_done;
	if (f->req.op == DISK_FLUSH)
		return true;
	if (sectors == 0)
		return false;
	first =
	    (b[2] | (uint64_t)b[3] << 8 | (uint64_t)b[4] << 16 | (uint64_t)b[5] << 24) % sectors;
	n = (uint64_t)(b[6] | b[7] << 8) % MAX_SECTORS + 1;
	if (n > sectors - first)
		n = sectors - first;
	f->req.offset = first * 512;
	f->req.len = n * 512;
	if (f->req.op == DISK_READ || f->req.op == DISK_WRITE) {
		memset(f->buf, b[1], f->req.len);
		/* Two iovecs: pieces cross their boundary. */
		f->iov[0] = (struct iovec){f->buf, (size_t)(f->req.len / 2 + 3)};
		f->iov[1] =
		    (struct iovec){f->buf + f->iov[0].iov_len, f->req.len - f->iov[0].iov_len};
		f->req.iov = f->iov;
		f->req.niov = 2;
	}
	return true;
}

/*
 * The model of a new image, one entry per sector: its byte, or UNKNOWN.
 * A discard zeroes whole clusters (nothing backs a new image) and leaves
 * the parts of others.
 */
struct fuzz_model {
	uint16_t sector[NEW_SIZE / 512];
	uint64_t cs;
};

static void fuzz_model_apply(struct fuzz_model *m, const struct fuzz_req *f)
{
	uint64_t first = f->req.offset / 512, n = f->req.len / 512, spc = m->cs / 512;

	for (uint64_t s = first; s < first + n; s++) {
		switch (f->req.op) {
		case DISK_READ:
			for (unsigned i = 0; m->sector[s] != UNKNOWN && i < 512; i++)
				CHECK(f->buf[(s - first) * 512 + i] == m->sector[s]);
			break;
		case DISK_WRITE:
			m->sector[s] = f->buf[0];
			break;
		case DISK_WRITE_ZEROES:
			m->sector[s] = 0;
			break;
		case DISK_DISCARD:
			if (s / spc * spc >= first && (s / spc + 1) * spc <= first + n)
				m->sector[s] = 0;
			break;
		default:
			break;
		}
	}
}

/* As the device thread does: wait on the eventfd, then complete. */
static void fuzz_complete(struct disk *d)
{
	disk_commit(d);
	for (int round = 0; round < 1000 && d->inflight > 0; round++) {
		struct pollfd p = {.fd = d->event_fd, .events = POLLIN};

		if (poll(&p, 1, 1000) == 1)
			disk_complete(d);
	}
}

static void fuzz_run(struct disk *d, const uint8_t *reqs, unsigned n, bool batch,
		     struct fuzz_model *model)
{
	static struct fuzz_req f[MAX_REQS];
	bool submitted[MAX_REQS] = {false};

	for (unsigned i = 0; i < n; i++) {
		if (f[i].buf == NULL && (f[i].buf = malloc(MAX_SECTORS * 512)) == NULL)
			abort();
		if (!fuzz_prepare(&f[i], reqs + i * REQ_BYTES, d->size))
			continue;
		submitted[i] = disk_submit(d, &f[i].req) == 0;
		if (batch)
			continue;
		disk_drain(d);
		if (model != NULL && submitted[i])
			fuzz_model_apply(model, &f[i]);
	}
	if (batch)
		fuzz_complete(d);
	disk_drain(d);
	CHECK(d->inflight == 0);
	for (unsigned i = 0; i < n; i++)
		CHECK(f[i].answers == (submitted[i] ? 1u : 0u));
}

/* The offline operations: converting (the synchronous writer) or growing. */
static void fuzz_offline(const char *path, bool readonly, uint64_t size)
{
	struct disk_convert_options o = {.dst_format = DISK_FORMAT_QCOW2, .cluster_bits = 12};
	char out[64];

	if (size == UINT64_MAX)
		return;
	if (!readonly) {
		disk_resize(path, DISK_FORMAT_QCOW2, size + (1u << 20), false);
		return;
	}
	if (size > CONVERT_MAX)
		return;
	snprintf(out, sizeof(out), "/dev/shm/tabique-fuzz-qcow2-%d", (int)getpid());
	if (disk_convert(path, out, &o) == 0)
		unlink(out);
}

static int fuzz_image(const uint8_t *image, size_t len, char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);

	if (fd < 0)
		abort();
	if (len > 0 && write(fd, image, len) != (ssize_t)len)
		abort();
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

/* A new image (made by tabique, so consistent): what it reads is checked. */
static void fuzz_new_image(const uint8_t *image, size_t len, const uint8_t *reqs, unsigned n,
			   bool batch)
{
	static struct fuzz_model model;
	unsigned cb = len > 0 ? 9 + image[0] % 13 : 16;
	struct disk *d;
	char path[64];

	snprintf(path, sizeof(path), "/dev/shm/tabique-fuzz-qcow2-new-%d", (int)getpid());
	unlink(path);
	CHECK(qcow2_create(path, NEW_SIZE, NULL, NULL, cb) == 0);
	CHECK(disk_open(&d, path, DISK_FORMAT_QCOW2, false, 16) == 0);
	memset(model.sector, 0, sizeof(model.sector));
	model.cs = 1ull << cb;
	fuzz_run(d, reqs, n, batch, &model);
	disk_close(d);
	CHECK(disk_open(&d, path, DISK_FORMAT_QCOW2, false, 16) == 0);
	disk_close(d);
	unlink(path);
}

/* An image from the input: anything may be wrong with it. */
static void fuzz_given_image(const uint8_t *image, size_t len, const uint8_t *reqs, unsigned n,
			     bool batch, bool readonly)
{
	struct disk_image_info info;
	struct disk *d;
	char path[64];
	int fd = fuzz_image(image, len, path, sizeof(path));

	if (disk_image_info(path, DISK_FORMAT_QCOW2, &info) != 0)
		info.virtual_size = UINT64_MAX;
	if (disk_open(&d, path, DISK_FORMAT_QCOW2, readonly, 16) == 0) {
		CHECK(d->size == info.virtual_size);
		fuzz_run(d, reqs, n, batch, NULL);
		disk_close(d);
		/* What tabique wrote is valid qcow2: it opens again. */
		CHECK(readonly || disk_open(&d, path, DISK_FORMAT_QCOW2, false, 16) == 0);
		if (!readonly)
			disk_close(d);
	}
	fuzz_offline(path, readonly, info.virtual_size);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned n;
	bool batch, readonly;

	if (size < 1)
		return 0;
	n = data[size - 1] & 0x3f;
	batch = data[size - 1] & 0x40;
	readonly = data[size - 1] & 0x80;
	if ((size - 1) / REQ_BYTES < n)
		n = (unsigned)((size - 1) / REQ_BYTES);
	size -= 1 + (size_t)n * REQ_BYTES;
	if (size < 4)
		fuzz_new_image(data, size, data + size, n, batch);
	else
		fuzz_given_image(data, size, data + size, n, batch, readonly);
	return 0;
}
