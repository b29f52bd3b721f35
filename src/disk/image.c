/* Offline operations on image files: new files, info, convert, resize. */
#include "disk/image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "disk/qcow2_int.h"
#include "util/log.h"

#define IMAGE_CHUNK (1u << 20)	/* bytes copied at a time */
#define IMAGE_BLOCK (64u << 10) /* zeroes this long are not written */

/* ---- new files ---- */

/* The directory part of path ("." when none). */
static void image_dir(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(out, len, ".");
	else if (slash == path)
		snprintf(out, len, "/");
	else
		snprintf(out, len, "%.*s", (int)(slash - path), path);
}

/* A named temporary file, for file systems without O_TMPFILE. */
static int image_named_tmp(struct disk_tmp *t, const char *dir)
{
	const char *slash = strrchr(t->path, '/');
	mode_t mask = umask(0);

	umask(mask);
	snprintf(t->name, sizeof(t->name), "%s/.%s.tmp-XXXXXX", dir,
		 slash != NULL ? slash + 1 : t->path);
	t->fd = mkostemp(t->name, O_CLOEXEC);
	if (t->fd < 0)
		return -errno;
	if (fchmod(t->fd, 0666 & ~mask) < 0)
		log_debug("disk %s: cannot set its mode: %s", t->path, strerror(errno));
	return 0;
}

int disk_tmp_create(struct disk_tmp *t, const char *path)
{
	char dir[PATH_MAX];
	struct stat st;
	int ret = 0;

	memset(t, 0, sizeof(*t));
	t->path = path;
	if (lstat(path, &st) == 0) {
		log_error("disk %s already exists: refusing to overwrite it", path);
		return -EEXIST;
	}
	image_dir(path, dir, sizeof(dir));
	/* Unnamed until complete: a crash or a kill leaves nothing behind. */
	t->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
	if (t->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
		ret = image_named_tmp(t, dir);
	else if (t->fd < 0)
		ret = -errno;
	if (ret != 0)
		log_error("disk %s: cannot create it: %s", path, strerror(-ret));
	return ret;
}

static int image_link(struct disk_tmp *t)
{
	char proc[64];

	if (t->name[0] != '\0') {
		if (renameat2(AT_FDCWD, t->name, AT_FDCWD, t->path, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EINVAL && errno != ENOSYS)
			return -errno;
		/* No RENAME_NOREPLACE here: link() never replaces either. */
		if (link(t->name, t->path) < 0)
			return -errno;
		unlink(t->name);
		t->name[0] = '\0';
		return 0;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, t->path, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno == EEXIST)
		return -errno;
	/* No /proc: AT_EMPTY_PATH does the same, with privileges. */
	return linkat(t->fd, "", AT_FDCWD, t->path, AT_EMPTY_PATH) == 0 ? 0 : -errno;
}

/* The new name survives a crash too. */
static void image_sync_dir(const char *path)
{
	char dir[PATH_MAX];
	int fd;

	image_dir(path, dir, sizeof(dir));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && fsync(fd) < 0)
		log_debug("disk %s: cannot sync its folder: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

int disk_tmp_commit(struct disk_tmp *t)
{
	int ret = fsync(t->fd) < 0 ? -errno : image_link(t);

	if (ret == -EEXIST)
		log_error("disk %s already exists: refusing to overwrite it", t->path);
	else if (ret != 0)
		log_error("disk %s: cannot create it: %s", t->path, strerror(-ret));
	if (ret != 0)
		return ret;
	image_sync_dir(t->path);
	close(t->fd);
	t->fd = -1;
	t->name[0] = '\0';
	return 0;
}

void disk_tmp_abort(struct disk_tmp *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (t->name[0] != '\0')
		unlink(t->name);
	t->name[0] = '\0';
}

int disk_create_raw(const char *path, uint64_t size)
{
	struct disk_tmp t;
	int ret;

	if (size == 0 || size % DISK_SECTOR != 0) {
		log_error("disk %s: the size must be a positive multiple of 512 bytes (%llu)", path,
			  (unsigned long long)size);
		return -EINVAL;
	}
	if ((ret = disk_tmp_create(&t, path)) != 0)
		return ret;
	/* Sparse: a hole of the whole size. */
	if (ftruncate(t.fd, (off_t)size) < 0) {
		ret = -errno;
		log_error("disk %s: cannot create it: %s", path, strerror(errno));
	}
	if (ret == 0 && (ret = disk_tmp_commit(&t)) == 0)
		return 0;
	disk_tmp_abort(&t);
	return ret;
}

/* ---- info ---- */

static void image_info_qcow2(const struct q2_image *img, struct disk_image_info *info)
{
	info->format = DISK_FORMAT_QCOW2;
	info->virtual_size = img->size;
	info->cluster_size = (uint32_t)img->cs;
	info->version = img->h.version;
	info->refcount_bits = 1u << img->h.refcount_order;
	info->dirty = (img->h.incompatible & Q2_INCOMPAT_DIRTY) != 0;
	info->corrupt = (img->h.incompatible & Q2_INCOMPAT_CORRUPT) != 0;
	info->backing_format = img->backing_format;
	if (img->backing_name != NULL)
		snprintf(info->backing, sizeof(info->backing), "%s", img->backing_name);
}

int disk_image_info(const char *path, enum disk_format format, struct disk_image_info *info)
{
	struct q2_image *img;
	struct stat st;
	int ret = q2_open(&img, path, -1, format, true, Q2_OPEN_NOLOCK);

	memset(info, 0, sizeof(*info));
	if (ret != 0)
		return ret;
	if (fstat(img->fd, &st) == 0)
		info->allocated = (uint64_t)st.st_blocks * 512;
	info->file_size = img->file_size;
	if (img->raw) {
		info->format = DISK_FORMAT_RAW;
		info->virtual_size = img->size;
	} else {
		image_info_qcow2(img, info);
	}
	q2_close(img);
	return 0;
}

/* ---- convert ---- */

struct image_copy {
	struct q2_image *src;
	struct q2_image *dst; /* NULL: a raw destination, written through fd */
	int fd;
	const char *dst_path;
	uint64_t size;
	uint8_t *buf;
	struct disk_convert_options *o;
};

static bool image_zero(const uint8_t *p, uint64_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static int image_write(struct image_copy *c, uint64_t off, const uint8_t *buf, uint64_t len)
{
	ssize_t n;

	if (c->dst != NULL)
		return q2_write_sync(c->dst, off, buf, len);
	for (uint64_t done = 0; done < len; done += (uint64_t)n) {
		n = pwrite(c->fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			n = 0;
		else if (n <= 0)
			return n < 0 ? -errno : -EIO;
	}
	return 0;
}

/* The bytes from at to the next block boundary of the disk (or to len). */
static uint64_t image_block(uint64_t off, uint64_t at, uint64_t len)
{
	uint64_t n = IMAGE_BLOCK - (off + at) % IMAGE_BLOCK;

	return n < len - at ? n : len - at;
}

/* Writes the runs of blocks of buf (the disk's [off, off + len)) that are not zeroes. */
static int image_write_data(struct image_copy *c, uint64_t off, uint64_t len)
{
	uint64_t at = 0;

	while (at < len) {
		uint64_t start;
		int ret;

		while (at < len && image_zero(c->buf + at, image_block(off, at, len)))
			at += image_block(off, at, len);
		for (start = at; at < len && !image_zero(c->buf + at, image_block(off, at, len));)
			at += image_block(off, at, len);
		if (at == start)
			continue;
		if ((ret = image_write(c, off + start, c->buf + start, at - start)) != 0)
			return ret;
		c->o->written += at - start;
	}
	return 0;
}

/* Bytes of a raw file's extent before its data starts: holes need no copy. */
static uint64_t image_hole(const struct q2_ext *e)
{
	off_t data;

	if (e->kind != Q2_EXT_DATA || !e->img->raw)
		return 0;
	data = lseek(e->img->fd, (off_t)e->host, SEEK_DATA);
	if (data < 0)
		return errno == ENXIO ? e->len : 0; /* ENXIO: a hole up to the end */
	return (uint64_t)data - e->host < e->len ? (uint64_t)data - e->host : e->len;
}

/* Copies what is not zeroes of [off, off + *len); *len shrinks to what it did. */
/* Whether an image of the chain already said what is wrong with it. */
static bool image_complained(const struct q2_image *img)
{
	for (; img != NULL; img = img->backing)
		if (img->complained)
			return true;
	return false;
}

/*
 * Copies what is not zeroes from off on; *len: how far it went. Zeroes go by
 * in one step however long; data a chunk at a time.
 */
static int image_copy_some(struct image_copy *c, uint64_t off, uint64_t *len)
{
	struct q2_ext e;
	uint64_t hole;
	int ret = q2_map(c->src, off, c->size - off, &e);

	if (ret != 0)
		return ret;
	*len = e.len;
	if (e.kind == Q2_EXT_ZERO)
		return 0;
	if ((hole = image_hole(&e)) > 0) {
		*len = hole;
		return 0;
	}
	*len = e.len < IMAGE_CHUNK ? e.len : IMAGE_CHUNK;
	if ((ret = q2_read_sync(c->src, off, c->buf, *len)) != 0) {
		if (!image_complained(c->src))
			log_error("disk %s: cannot read it: %s", c->src->path, strerror(-ret));
		return ret;
	}
	if ((ret = image_write_data(c, off, *len)) != 0 && !image_complained(c->dst))
		log_error("disk %s: cannot write it: %s", c->dst_path, strerror(-ret));
	return ret;
}

static int image_copy(struct image_copy *c)
{
	for (uint64_t off = 0; off < c->size;) {
		uint64_t len;
		int ret = image_copy_some(c, off, &len);

		if (ret != 0)
			return ret;
		off += len;
		if (c->o->progress != NULL && c->o->progress(off, c->size, c->o->opaque) != 0)
			return -ECANCELED;
	}
	return 0;
}

/* The destination's empty image in the temporary file. */
static int image_prepare_dst(struct image_copy *c, struct disk_tmp *t)
{
	uint64_t size = (c->size + DISK_SECTOR - 1) / DISK_SECTOR * DISK_SECTOR;
	unsigned cb = c->o->cluster_bits ? c->o->cluster_bits : QCOW2_DEFAULT_CLUSTER_BITS;
	int ret;

	c->fd = t->fd;
	if (c->o->dst_format != DISK_FORMAT_QCOW2) {
		if (ftruncate(t->fd, (off_t)c->size) == 0)
			return 0;
		log_error("disk %s: cannot create it: %s", c->dst_path, strerror(errno));
		return -errno;
	}
	if (cb < QCOW2_MIN_CLUSTER_BITS || cb > QCOW2_MAX_CLUSTER_BITS) {
		log_error("disk %s: clusters of 2^%u bytes are out of range", c->dst_path, cb);
		return -EINVAL;
	}
	if ((ret = q2_check_new_size(c->dst_path, size, cb)) != 0 ||
	    (ret = q2_format(t->fd, c->dst_path, size, NULL, DISK_FORMAT_AUTO, cb)) != 0)
		return ret;
	return q2_open(&c->dst, c->dst_path, t->fd, DISK_FORMAT_QCOW2, false, 0);
}

static int image_finish_dst(struct image_copy *c)
{
	int ret = c->dst != NULL ? q2_flush_all(c->dst) : 0;

	if (ret != 0)
		log_error("disk %s: cannot write it: %s", c->dst_path, strerror(-ret));
	return ret;
}

int disk_convert(const char *src, const char *dst, struct disk_convert_options *o)
{
	struct image_copy c = {.dst_path = dst, .o = o, .fd = -1};
	struct disk_tmp t = {.fd = -1};
	int ret;

	o->written = 0;
	if (o->dst_format != DISK_FORMAT_RAW && o->dst_format != DISK_FORMAT_QCOW2)
		return -EINVAL;
	if ((ret = q2_open(&c.src, src, -1, o->src_format, true, Q2_OPEN_BACKING)) != 0)
		return ret;
	c.size = c.src->size;
	c.buf = malloc(IMAGE_CHUNK);
	if (c.buf == NULL)
		ret = -ENOMEM;
	if (ret == 0 && (ret = disk_tmp_create(&t, dst)) == 0 &&
	    (ret = image_prepare_dst(&c, &t)) == 0 && (ret = image_copy(&c)) == 0 &&
	    (ret = image_finish_dst(&c)) == 0) {
		q2_close(c.dst);
		c.dst = NULL;
		ret = disk_tmp_commit(&t);
	}
	q2_close(c.dst);
	disk_tmp_abort(&t);
	q2_close(c.src);
	free(c.buf);
	return ret;
}

void disk_human_size(uint64_t bytes, char *out, size_t len)
{
	static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%llu bytes", (unsigned long long)bytes);
	else if (v == (double)(uint64_t)v)
		snprintf(out, len, "%.0f %s", v, units[u]);
	else
		snprintf(out, len, "%.1f %s", v, units[u]);
}

int disk_bar_progress(uint64_t done, uint64_t total, void *opaque)
{
	static const char hashes[] = "##############################";
	const int width = (int)sizeof(hashes) - 1;
	struct disk_bar *bar = opaque;
	unsigned pct = total ? (unsigned)(done * 100 / total) : 100;
	struct timespec now;
	char d[32], t[32];

	/* At most ten times a second: a terminal is slow. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (bar->shown && done < total &&
	    (now.tv_sec - bar->last.tv_sec) * 1000000000L + (now.tv_nsec - bar->last.tv_nsec) <
		100000000L)
		return 0;
	bar->last = now;
	bar->shown = true;
	disk_human_size(done, d, sizeof(d));
	disk_human_size(total, t, sizeof(t));
	fprintf(stderr, "\r[%-*.*s] %3u%% %s of %s   ", width, (int)(pct * (unsigned)width / 100),
		hashes, pct, d, t);
	return 0;
}

void disk_bar_end(struct disk_bar *bar)
{
	if (bar->shown)
		fputc('\n', stderr);
	bar->shown = false;
}

int disk_convert_images(const char *src, enum disk_format src_format, const char *dst,
			enum disk_format dst_format, bool bar)
{
	struct disk_bar b = {0};
	struct disk_convert_options o = {
	    .src_format = src_format,
	    .dst_format = dst_format,
	    .progress = bar ? disk_bar_progress : NULL,
	    .opaque = &b,
	};
	int ret = disk_convert(src, dst, &o);

	disk_bar_end(&b);
	return ret;
}

/* ---- resize ---- */

static int image_resize_raw(struct q2_image *img, uint64_t size, bool shrink)
{
	off_t data;

	if (size % DISK_SECTOR != 0) {
		log_error("disk %s: the size must be a multiple of 512 bytes (%llu)", img->path,
			  (unsigned long long)size);
		return -EINVAL;
	}
	if (size < img->size && !shrink) {
		log_error("disk %s: shrinking loses data: give --shrink to do it anyway",
			  img->path);
		return -EINVAL;
	}
	data = size < img->size ? lseek(img->fd, (off_t)size, SEEK_DATA) : -1;
	if (data >= 0 && (uint64_t)data < img->size) {
		log_error("disk %s: it has data past the new size: refusing to shrink it",
			  img->path);
		return -EINVAL;
	}
	if (ftruncate(img->fd, (off_t)size) < 0 || fsync(img->fd) < 0) {
		log_error("disk %s: cannot resize it: %s", img->path, strerror(errno));
		return -errno;
	}
	return 0;
}

int disk_resize(const char *path, enum disk_format format, uint64_t size, bool shrink)
{
	struct q2_image *img;
	int ret = q2_open(&img, path, -1, format, false, 0);

	if (ret != 0)
		return ret;
	ret = img->raw ? image_resize_raw(img, size, shrink) : q2_resize(img, size, shrink);
	/* Refusals (-EINVAL, -ENOSPC) and corruption were told already. */
	if (ret != 0 && ret != -EINVAL && ret != -ENOSPC && !img->raw && !img->complained)
		log_error("disk %s: cannot resize it: %s", path, strerror(-ret));
	q2_close(img);
	return ret;
}
