/*
 * Helpers for the disk image tests: a scratch folder, synchronous and
 * batched requests through the disk API, stderr capture, shell commands
 * (qemu-img, qemu-io) and patching image files in place.
 */
#ifndef TABIQUE_TESTS_DISK_HELPERS_H
#define TABIQUE_TESTS_DISK_HELPERS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "disk/disk.h"

static char dir[64];

static inline void dir_make(void)
{
	snprintf(dir, sizeof(dir), "/tmp/tabique-q2-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static inline void dir_remove(void)
{
	char cmd[128];

	if (getenv("TABIQUE_TEST_KEEP") != NULL) {
		fprintf(stderr, "kept %s\n", dir);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (dir[0] != '\0' && system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* dir/name, in one of a few rotating buffers. */
static inline const char *in_dir(const char *name)
{
	static char bufs[8][256];
	static unsigned next;
	char *b = bufs[next++ % 8];

	snprintf(b, 256, "%s/%s", dir, name);
	return b;
}

/* Runs a shell command in dir; returns its exit status. */
static inline int __attribute__((format(printf, 1, 2))) sh(const char *fmt, ...)
{
	char cmd[2048];
	size_t n;
	va_list ap;
	int st;

	n = (size_t)snprintf(cmd, sizeof(cmd), "cd '%s' && ", dir);
	va_start(ap, fmt);
	vsnprintf(cmd + n, sizeof(cmd) - n, fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline void need_qemu_tools(void)
{
	cr_assert_eq(system("command -v qemu-img >/dev/null && command -v qemu-io >/dev/null"), 0,
		     "qemu-img and qemu-io are needed: scripts/install-deps installs qemu-utils");
}

/* The byte the tests write at disk offset off with a given seed. */
static inline uint8_t pattern(uint64_t off, unsigned seed)
{
	uint64_t x = (off >> 3) * 0x9e3779b97f4a7c15ull + seed * 0x632be59bd9b4e019ull;

	return (uint8_t)(x >> 56) | 1; /* never zero: zeroes are a different story */
}

static inline void fill(uint8_t *buf, uint64_t off, uint64_t len, unsigned seed)
{
	for (uint64_t i = 0; i < len; i++)
		buf[i] = pattern(off + i, seed);
}

/* ---- requests ---- */

struct io {
	struct disk_req req;
	struct iovec iov[3];
	int ret;
	bool done;
};

static inline void io_done(struct disk_req *r, int ret)
{
	struct io *io = (struct io *)r;

	cr_assert_not(io->done, "done() called twice");
	io->ret = ret;
	io->done = true;
}

/* buf split over up to three iovecs, so pieces cross iovec boundaries. */
static inline void io_init(struct io *io, enum disk_op op, void *buf, uint64_t len, uint64_t off,
			   unsigned flags)
{
	memset(io, 0, sizeof(*io));
	io->req.op = op;
	io->req.flags = flags;
	io->req.offset = off;
	io->req.len = len;
	io->req.done = io_done;
	if (buf == NULL)
		return;
	if (len >= 3 * 512) {
		uint64_t a = len / 3 + 7, b = len / 3;

		io->iov[0] = (struct iovec){buf, a};
		io->iov[1] = (struct iovec){(uint8_t *)buf + a, b};
		io->iov[2] = (struct iovec){(uint8_t *)buf + a + b, len - a - b};
		io->req.niov = 3;
	} else {
		io->iov[0] = (struct iovec){buf, len};
		io->req.niov = 1;
	}
	io->req.iov = io->iov;
}

/* Completes everything through the eventfd, as the device thread does. */
static inline void io_wait_all(struct disk *d, struct io *ios, unsigned n)
{
	disk_commit(d);
	for (int spins = 0; spins < 100000; spins++) {
		struct pollfd p = {.fd = d->event_fd, .events = POLLIN};
		unsigned left = 0;

		for (unsigned i = 0; i < n; i++)
			left += !ios[i].done;
		if (left == 0)
			return;
		cr_assert_geq(poll(&p, 1, 5000), 1, "no completion signalled in 5 s (%u left)",
			      left);
		disk_complete(d);
	}
	cr_assert_fail("requests never finished");
}

/* One request, completed through the eventfd. */
static inline int io_run(struct disk *d, enum disk_op op, void *buf, uint64_t len, uint64_t off,
			 unsigned flags)
{
	struct io io;
	int ret;

	io_init(&io, op, buf, len, off, flags);
	ret = disk_submit(d, &io.req);
	if (ret != 0)
		return ret;
	io_wait_all(d, &io, 1);
	return io.ret;
}

static inline void write_pattern(struct disk *d, uint64_t off, uint64_t len, unsigned seed)
{
	uint8_t *b = malloc(len);

	fill(b, off, len, seed);
	cr_assert_eq(io_run(d, DISK_WRITE, b, len, off, 0), 0, "write %llu+%llu",
		     (unsigned long long)off, (unsigned long long)len);
	free(b);
}

/* Reads [off, off + len) and compares with expected (NULL: zeroes). */
static inline void read_expect(struct disk *d, uint64_t off, uint64_t len, const uint8_t *expected)
{
	uint8_t *b = malloc(len);

	memset(b, 0xee, len);
	cr_assert_eq(io_run(d, DISK_READ, b, len, off, 0), 0, "read %llu+%llu",
		     (unsigned long long)off, (unsigned long long)len);
	for (uint64_t i = 0; i < len; i++)
		cr_assert_eq(b[i], expected ? expected[i] : 0, "byte %llu: %#x, expected %#x",
			     (unsigned long long)(off + i), b[i], expected ? expected[i] : 0);
	free(b);
}

static inline void read_pattern(struct disk *d, uint64_t off, uint64_t len, unsigned seed)
{
	uint8_t *b = malloc(len);

	fill(b, off, len, seed);
	read_expect(d, off, len, b);
	free(b);
}

/* ---- stderr ---- */

static int saved_stderr = -1, capture_fd = -1;
static char captured[8192];

static inline void capture_start(void)
{
	fflush(stderr);
	saved_stderr = dup(2);
	capture_fd = memfd_create("stderr", MFD_CLOEXEC);
	cr_assert_geq(capture_fd, 0);
	dup2(capture_fd, 2);
}

static inline const char *capture_end(void)
{
	ssize_t n;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	n = pread(capture_fd, captured, sizeof(captured) - 1, 0);
	captured[n > 0 ? n : 0] = '\0';
	close(capture_fd);
	return captured;
}

/* What went to stderr was one line, containing want. */
static inline void one_line_with(const char *got, const char *want, const char *what)
{
	const char *nl = strchr(got, '\n');

	cr_expect(nl != NULL && nl[1] == '\0', "%s: expected one line, got '%s'", what, got);
	cr_expect(strstr(got, want) != NULL, "%s: '%s' not in '%s'", what, want, got);
}

/* ---- patching files ---- */

static inline void put_be(const char *path, uint64_t off, uint64_t v, unsigned bytes)
{
	uint8_t b[8];
	int fd = open(path, O_WRONLY);

	cr_assert_geq(fd, 0, "%s", path);
	for (unsigned i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	cr_assert_eq(pwrite(fd, b, bytes, (off_t)off), (ssize_t)bytes);
	close(fd);
}

static inline uint64_t get_be(const char *path, uint64_t off, unsigned bytes)
{
	uint8_t b[8];
	uint64_t v = 0;
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(pread(fd, b, bytes, (off_t)off), (ssize_t)bytes);
	close(fd);
	for (unsigned i = 0; i < bytes; i++)
		v = v << 8 | b[i];
	return v;
}

#endif
