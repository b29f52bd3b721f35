#include "guest/cpio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CPIO_HDR_LEN 110 /* "070701" + 13 fields of 8 hex digits */
#define CPIO_TRAILER "TRAILER!!!"

struct cpio {
	FILE *f;
	uint64_t off;	   /* bytes written so far: padding is relative to the archive start */
	uint32_t next_ino; /* unique per entry, so the kernel never sees hard links */
	int err;
};

struct cpio_entry {
	const char *name;
	uint32_t mode; /* type and permissions */
	uint32_t nlink;
	uint64_t size;
	uint32_t rmajor, rminor;
};

struct cpio *cpio_create(const char *path)
{
	struct cpio *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->f = fopen(path, "wbe");
	if (!c->f) {
		free(c);
		return NULL;
	}
	c->next_ino = 1;
	return c;
}

static void cpio_write(struct cpio *c, const void *buf, size_t len)
{
	if (c->err || len == 0)
		return;
	if (fwrite(buf, 1, len, c->f) != len) {
		c->err = errno ? -errno : -EIO;
		return;
	}
	c->off += len;
}

/* newc aligns both the header+name and the data on 4 bytes. */
static void cpio_pad4(struct cpio *c)
{
	static const char zeros[4];

	cpio_write(c, zeros, (4 - (c->off & 3)) & 3);
}

/* Strips leading slashes: the kernel unpacks names relative to the root. */
static const char *cpio_relname(const char *name)
{
	while (*name == '/')
		name++;
	return name;
}

static int cpio_header(struct cpio *c, const struct cpio_entry *e)
{
	char hdr[CPIO_HDR_LEN + 1];
	const char *name = cpio_relname(e->name);
	size_t namesize = strlen(name) + 1;

	if (c->err)
		return c->err;
	if (namesize == 1 || namesize > PATH_MAX)
		return c->err = -EINVAL;
	if (e->size > UINT32_MAX)
		return c->err = -EFBIG;
	snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 c->next_ino++, e->mode, 0u, 0u, e->nlink, 0u, (uint32_t)e->size, 0u, 0u, e->rmajor,
		 e->rminor, (uint32_t)namesize, 0u);
	cpio_write(c, hdr, CPIO_HDR_LEN);
	cpio_write(c, name, namesize);
	cpio_pad4(c);
	return c->err;
}

int cpio_add_dir(struct cpio *c, const char *name, mode_t mode)
{
	struct cpio_entry e = {.name = name, .mode = S_IFDIR | (mode & 07777), .nlink = 2};

	return cpio_header(c, &e);
}

int cpio_add_file(struct cpio *c, const char *name, mode_t mode, const void *data, size_t len)
{
	struct cpio_entry e = {
	    .name = name, .mode = S_IFREG | (mode & 07777), .nlink = 1, .size = len};

	if (cpio_header(c, &e))
		return c->err;
	cpio_write(c, data, len);
	cpio_pad4(c);
	return c->err;
}

int cpio_add_symlink(struct cpio *c, const char *name, const char *target)
{
	size_t len = strlen(target);
	struct cpio_entry e = {.name = name, .mode = S_IFLNK | 0777, .nlink = 1, .size = len};

	if (len == 0)
		return c->err ? c->err : (c->err = -EINVAL);
	if (cpio_header(c, &e))
		return c->err;
	cpio_write(c, target, len); /* the target is stored without its NUL */
	cpio_pad4(c);
	return c->err;
}

int cpio_add_node(struct cpio *c, const char *name, mode_t type, mode_t mode, unsigned int major,
		  unsigned int minor)
{
	struct cpio_entry e = {.name = name,
			       .mode = type | (mode & 07777),
			       .nlink = 1,
			       .rmajor = major,
			       .rminor = minor};

	if (type != S_IFCHR && type != S_IFBLK)
		return c->err ? c->err : (c->err = -EINVAL);
	return cpio_header(c, &e);
}

/* Copies exactly size bytes from fd, failing if the file is shorter. */
static void cpio_copy_fd(struct cpio *c, int fd, uint64_t size)
{
	char buf[65536];

	while (size > 0 && !c->err) {
		size_t want = size < sizeof(buf) ? (size_t)size : sizeof(buf);
		ssize_t n = read(fd, buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			c->err = n < 0 ? -errno : -EIO;
			return;
		}
		cpio_write(c, buf, (size_t)n);
		size -= (uint64_t)n;
	}
}

int cpio_add_file_from(struct cpio *c, const char *name, mode_t mode, const char *hostpath)
{
	struct cpio_entry e = {.name = name, .mode = S_IFREG | (mode & 07777), .nlink = 1};
	struct stat st;
	int fd;

	if (c->err)
		return c->err;
	fd = open(hostpath, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return c->err = -errno;
	if (fstat(fd, &st) < 0)
		c->err = -errno;
	else if (!S_ISREG(st.st_mode))
		c->err = -EINVAL;
	if (c->err) {
		close(fd);
		return c->err;
	}
	e.size = (uint64_t)st.st_size;
	if (cpio_header(c, &e) == 0) {
		cpio_copy_fd(c, fd, e.size);
		cpio_pad4(c);
	}
	close(fd);
	return c->err;
}

int cpio_close(struct cpio *c)
{
	struct cpio_entry e = {.name = CPIO_TRAILER, .nlink = 1};
	int err;

	c->next_ino = 0; /* the trailer conventionally has inode 0 */
	cpio_header(c, &e);
	if (!c->err && fflush(c->f) != 0)
		c->err = -errno;
	if (!c->err && fsync(fileno(c->f)) < 0)
		c->err = -errno;
	if (fclose(c->f) != 0 && !c->err)
		c->err = -errno;
	err = c->err;
	free(c);
	return err;
}
