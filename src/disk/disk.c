#include "disk/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "disk/raw.h"
#include "util/log.h"

#define DISK_MAX_INFLIGHT 4096

const char *disk_format_name(enum disk_format format)
{
	switch (format) {
	case DISK_FORMAT_RAW:
		return "raw";
	case DISK_FORMAT_QCOW2:
		return "qcow2";
	default:
		return "auto";
	}
}

int disk_format_parse(const char *name, enum disk_format *format)
{
	if (strcmp(name, "raw") == 0)
		*format = DISK_FORMAT_RAW;
	else if (strcmp(name, "qcow2") == 0)
		*format = DISK_FORMAT_QCOW2;
	else
		return -EINVAL;
	return 0;
}

/* ---- --disk PATH[,readonly][,serial=ID] ---- */

/* Copies the path up to the first single comma, ",," meaning one comma; returns the rest. */
static const char *disk_spec_path(const char *text, char *path)
{
	size_t n = 0;

	while (*text != '\0') {
		if (text[0] == ',' && text[1] != ',')
			break;
		if (text[0] == ',')
			text++; /* ",," */
		path[n++] = *text++;
	}
	path[n] = '\0';
	return text;
}

static bool disk_serial_ok(const char *id, size_t len)
{
	if (len == 0 || len > DISK_SERIAL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (id[i] < 0x20 || id[i] > 0x7e)
			return false;
	return true;
}

/* "format=NAME", NAME being [name, name + len). Returns 0 or -EINVAL with why. */
static int disk_spec_format(struct disk_spec *spec, const char *name, size_t len, char *why,
			    size_t whylen)
{
	char buf[8];

	if (spec->format != DISK_FORMAT_AUTO) {
		snprintf(why, whylen, "'format' given twice");
		return -EINVAL;
	}
	if (len < sizeof(buf)) {
		memcpy(buf, name, len);
		buf[len] = '\0';
		if (disk_format_parse(buf, &spec->format) == 0)
			return 0;
	}
	snprintf(why, whylen, "unknown format '%.*s' (use format=raw or format=qcow2)",
		 len > 32 ? 32 : (int)len, name);
	return -EINVAL;
}

/* One option of [opt, opt + len). Returns 0 or -EINVAL with why. */
static int disk_spec_option(struct disk_spec *spec, const char *opt, size_t len, bool *seen_ro,
			    char *why, size_t whylen)
{
	static const char serial[] = "serial=", format[] = "format=";

	if (len == 0) {
		snprintf(why, whylen, "an empty option (a stray comma?)");
		return -EINVAL;
	}
	if (len == strlen("readonly") && strncmp(opt, "readonly", len) == 0) {
		if (*seen_ro) {
			snprintf(why, whylen, "'readonly' given twice");
			return -EINVAL;
		}
		*seen_ro = true;
		spec->readonly = true;
		return 0;
	}
	if (len >= strlen(serial) && strncmp(opt, serial, strlen(serial)) == 0) {
		const char *id = opt + strlen(serial);
		size_t idlen = len - strlen(serial);

		if (spec->serial[0] != '\0') {
			snprintf(why, whylen, "'serial' given twice");
			return -EINVAL;
		}
		if (!disk_serial_ok(id, idlen)) {
			snprintf(why, whylen, "serial must be 1 to %d printable ASCII characters",
				 DISK_SERIAL_MAX);
			return -EINVAL;
		}
		memcpy(spec->serial, id, idlen);
		spec->serial[idlen] = '\0';
		return 0;
	}
	if (len >= strlen(format) && strncmp(opt, format, strlen(format)) == 0)
		return disk_spec_format(spec, opt + strlen(format), len - strlen(format), why,
					whylen);
	snprintf(why, whylen, "unknown option '%.*s' (use readonly, serial=ID or format=FORMAT)",
		 len > 32 ? 32 : (int)len, opt);
	return -EINVAL;
}

int disk_parse_spec(const char *text, struct disk_spec *spec, char *why, size_t whylen)
{
	bool seen_ro = false;
	const char *rest;
	int ret = 0;

	memset(spec, 0, sizeof(*spec));
	why[0] = '\0';
	spec->path = malloc(strlen(text) + 1);
	if (spec->path == NULL) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	rest = disk_spec_path(text, spec->path);
	if (spec->path[0] == '\0') {
		snprintf(why, whylen, "no image path");
		ret = -EINVAL;
	}
	while (ret == 0 && *rest == ',') {
		const char *opt = rest + 1, *end = strchr(opt, ',');
		size_t len = end != NULL ? (size_t)(end - opt) : strlen(opt);

		ret = disk_spec_option(spec, opt, len, &seen_ro, why, whylen);
		rest = opt + len;
	}
	if (ret != 0)
		disk_spec_free(spec);
	return ret;
}

void disk_spec_free(struct disk_spec *spec)
{
	free(spec->path);
	memset(spec, 0, sizeof(*spec));
}

/* ---- opening an image ---- */

static void disk_open_error(const char *path, int err, bool readonly)
{
	if (err == EISDIR)
		log_error("disk %s is a directory, not an image file", path);
	else if (err == EACCES || err == EPERM)
		log_error("disk %s: permission denied (%s)", path,
			  readonly ? "it must be readable"
				   : "it must be readable and writable, "
				     "or add ,readonly");
	else if (err == EROFS)
		log_error("disk %s is on a read-only file system: add ,readonly", path);
	else
		log_error("disk %s: %s", path, strerror(err));
}

/*
 * O_NONBLOCK only while opening: a FIFO must not block us here. It must not
 * stay either: io_uring answers -EAGAIN instead of waiting on such files.
 */
static int disk_open_fd(const char *path, bool readonly)
{
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int flags;

	if (fd < 0) {
		int err = errno;

		disk_open_error(path, err, readonly);
		return -err;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		int err = errno;

		log_error("disk %s: %s", path, strerror(err));
		close(fd);
		return -err;
	}
	return fd;
}

/* The size in bytes of a regular file or a block device. */
static int disk_probe_size(struct disk *d)
{
	struct stat st;
	uint64_t bytes;

	if (fstat(d->fd, &st) < 0) {
		log_error("disk %s: %s", d->path, strerror(errno));
		return -errno;
	}
	if (S_ISDIR(st.st_mode)) {
		log_error("disk %s is a directory, not an image file", d->path);
		return -EISDIR;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(d->fd, BLKGETSIZE64, &bytes) < 0) {
			log_error("disk %s: cannot read the device's size: %s", d->path,
				  strerror(errno));
			return -errno;
		}
	} else if (S_ISREG(st.st_mode)) {
		bytes = (uint64_t)st.st_size;
	} else {
		log_error("disk %s is neither an image file nor a block device", d->path);
		return -EINVAL;
	}
	d->size = bytes;
	return 0;
}

/*
 * An OFD lock belongs to this open file: a second VM, or a second --disk of
 * the same file in this VM, conflicts; readers share. It goes with the fd.
 */
static int disk_lock(struct disk *d)
{
	struct flock fl = {
	    .l_type = d->readonly ? F_RDLCK : F_WRLCK,
	    .l_whence = SEEK_SET,
	};

	if (fcntl(d->fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES) {
		log_error("disk %s is in use by another VM (locked)", d->path);
		return -EBUSY;
	}
	/* A file system without locks: say so, but the image stays usable. */
	log_warn("disk %s cannot be locked (%s): make sure no other VM uses it", d->path,
		 strerror(errno));
	return 0;
}

static int disk_check_size(const struct disk *d)
{
	if (d->size == 0) {
		log_error("disk %s is empty: give it a size first (e.g. truncate -s 1G %s)",
			  d->path, d->path);
		return -EINVAL;
	}
	/* Refused, not rounded down: a guest must see every byte of its image. */
	if (d->size % DISK_SECTOR != 0) {
		log_error("disk %s is %llu bytes, not a multiple of %d: resize it (truncate -s "
			  "%llu %s)",
			  d->path, (unsigned long long)d->size, DISK_SECTOR,
			  (unsigned long long)(d->size / DISK_SECTOR + 1) * DISK_SECTOR, d->path);
		return -EINVAL;
	}
	return 0;
}

/* DISK_FORMAT_AUTO: qcow2 if the file starts with its magic, else raw. */
static int disk_probe_format(const struct disk *d, enum disk_format *format)
{
	uint8_t magic[4];
	ssize_t n = pread(d->fd, magic, sizeof(magic), 0);

	if (n < 0) {
		log_error("disk %s: %s", d->path, strerror(errno));
		return -errno;
	}
	*format = qcow2_probe(magic, (size_t)n) ? DISK_FORMAT_QCOW2 : DISK_FORMAT_RAW;
	return 0;
}

/* Hands the opened, locked file to its format's backend. */
static int disk_attach(struct disk *d, enum disk_format format)
{
	int ret;

	if (format == DISK_FORMAT_AUTO) {
		ret = disk_probe_format(d, &format);
		if (ret != 0)
			return ret;
		/* Probed raw: a guest must not make it look like qcow2 next time. */
		d->guard_magic = format == DISK_FORMAT_RAW;
	}
	if (format == DISK_FORMAT_QCOW2)
		return qcow2_attach(d);
	ret = disk_check_size(d);
	return ret != 0 ? ret : raw_attach(d);
}

int disk_open(struct disk **out, const char *path, enum disk_format format, bool readonly,
	      unsigned max_inflight)
{
	struct disk *d;
	int ret;

	*out = NULL;
	if (max_inflight == 0 || max_inflight > DISK_MAX_INFLIGHT)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (d == NULL || (d->path = strdup(path)) == NULL) {
		free(d);
		log_error("disk %s: out of memory", path);
		return -ENOMEM;
	}
	d->fd = d->event_fd = -1;
	d->readonly = readonly;
	d->max_inflight = max_inflight;
	ret = d->fd = disk_open_fd(path, readonly);
	if (ret >= 0 && (ret = disk_probe_size(d)) == 0 && (ret = disk_lock(d)) == 0)
		ret = disk_attach(d, format);
	if (ret < 0) {
		disk_close(d);
		return ret;
	}
	*out = d;
	return 0;
}

void disk_close(struct disk *d)
{
	if (d == NULL)
		return;
	if (d->ops != NULL) {
		disk_drain(d);
		d->ops->close(d);
	}
	if (d->fd >= 0)
		close(d->fd); /* and the lock with it */
	free(d->path);
	free(d);
}
