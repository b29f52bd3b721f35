#include "disk/raw.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "util/log.h"

/* Writing zeroes by hand (no fallocate here) goes this many bytes at a time. */
#define RAW_ZERO_CHUNK (256u << 10)

/* Where a WRITE_ZEROES request is (disk_req.stage). */
enum {
	RAW_WZ_PUNCH,	   /* fallocate(PUNCH_HOLE): UNMAP allows deallocating */
	RAW_WZ_ZERO_RANGE, /* fallocate(ZERO_RANGE): the blocks stay allocated */
	RAW_WZ_WRITE,	   /* the file system has neither: write zero buffers */
	RAW_WZ_SYNC,	   /* after a fallocate in write-through mode */
};

#define RAW_KEEP_SIZE FALLOC_FL_KEEP_SIZE

struct raw {
	struct io_uring ring;
	bool no_zero_range; /* the file system refused FALLOC_FL_ZERO_RANGE */
	bool no_punch_hole; /* ... and FALLOC_FL_PUNCH_HOLE */
};

/* Only ever read: the kernel copies from it when writing zeroes. */
static const uint8_t raw_zeroes[RAW_ZERO_CHUNK];

static struct raw *raw_of(struct disk *d)
{
	return d->priv;
}

/* ---- submission ---- */

/* How a WRITE_ZEROES starts, given what the file system refused so far. */
static unsigned raw_wz_stage(const struct raw *r, const struct disk_req *req)
{
	if ((req->flags & DISK_F_UNMAP) && !r->no_punch_hole)
		return RAW_WZ_PUNCH;
	/* Without UNMAP the blocks must stay allocated: a punched hole is no substitute. */
	if (!r->no_zero_range)
		return RAW_WZ_ZERO_RANGE;
	return RAW_WZ_WRITE;
}

static void raw_prep_wz(struct disk *d, struct io_uring_sqe *sqe, struct disk_req *req)
{
	uint64_t off = req->offset + req->progress, left = req->len - req->progress;

	switch (req->stage) {
	case RAW_WZ_PUNCH:
		io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_PUNCH_HOLE | RAW_KEEP_SIZE,
					(off_t)off, (off_t)left);
		break;
	case RAW_WZ_ZERO_RANGE:
		io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_ZERO_RANGE | RAW_KEEP_SIZE,
					(off_t)off, (off_t)left);
		break;
	case RAW_WZ_WRITE:
		io_uring_prep_write(sqe, d->fd, raw_zeroes,
				    left < RAW_ZERO_CHUNK ? (unsigned)left : RAW_ZERO_CHUNK, off);
		sqe->rw_flags = (req->flags & DISK_F_FUA) ? RWF_DSYNC : 0;
		break;
	default:
		io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
		break;
	}
}

static void raw_prep(struct disk *d, struct io_uring_sqe *sqe, struct disk_req *req)
{
	uint64_t off = req->offset + req->progress;

	switch (req->op) {
	case DISK_READ:
		io_uring_prep_readv(sqe, d->fd, req->iov, req->niov, off);
		break;
	case DISK_WRITE:
		io_uring_prep_writev2(sqe, d->fd, req->iov, req->niov, off,
				      (req->flags & DISK_F_FUA) ? RWF_DSYNC : 0);
		break;
	case DISK_FLUSH:
		io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
		break;
	case DISK_DISCARD:
		io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_PUNCH_HOLE | RAW_KEEP_SIZE,
					(off_t)off, (off_t)req->len);
		break;
	case DISK_WRITE_ZEROES:
		raw_prep_wz(d, sqe, req);
		break;
	}
	io_uring_sqe_set_data(sqe, req);
}

/* Puts req (again) on the submission ring; it goes to the kernel at the next commit. */
static int raw_queue(struct disk *d, struct disk_req *req)
{
	struct raw *r = raw_of(d);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (sqe == NULL) {
		/* The ring holds max_inflight entries, so this is only a full batch. */
		io_uring_submit(&r->ring);
		sqe = io_uring_get_sqe(&r->ring);
		if (sqe == NULL)
			return -EAGAIN;
	}
	raw_prep(d, sqe, req);
	return 0;
}

static bool raw_req_ok(const struct disk *d, const struct disk_req *req)
{
	bool writes =
	    req->op == DISK_WRITE || req->op == DISK_DISCARD || req->op == DISK_WRITE_ZEROES;

	if (writes && d->readonly)
		return false;
	if (req->op == DISK_FLUSH)
		return true;
	if (req->len == 0 || req->offset > d->size || req->len > d->size - req->offset)
		return false;
	if (req->op == DISK_READ || req->op == DISK_WRITE)
		return req->iov != NULL && req->niov > 0 && req->niov <= DISK_MAX_IOV;
	return req->op == DISK_DISCARD || req->op == DISK_WRITE_ZEROES;
}

/*
 * A raw image whose format was probed would be opened as qcow2 next time if
 * the guest wrote a qcow2 header into it, with a backing file of the guest's
 * choosing: such a write is refused (QEMU does the same).
 */
static bool raw_writes_magic(const struct disk *d, const struct disk_req *req)
{
	uint8_t head[4];
	size_t n = 0;

	if (!d->guard_magic || req->op != DISK_WRITE || req->offset != 0)
		return false;
	for (unsigned i = 0; i < req->niov && n < sizeof(head); i++) {
		size_t take =
		    req->iov[i].iov_len < sizeof(head) - n ? req->iov[i].iov_len : sizeof(head) - n;

		memcpy(head + n, req->iov[i].iov_base, take);
		n += take;
	}
	if (!qcow2_probe(head, n))
		return false;
	log_warn("disk %s: the guest tried to write a qcow2 header into this raw image: refused "
		 "(give format=raw to allow it)",
		 d->path);
	return true;
}

static int raw_submit(struct disk *d, struct disk_req *req)
{
	int ret;

	if (d->inflight >= d->max_inflight)
		return -EBUSY;
	if (!raw_req_ok(d, req))
		return d->readonly ? -EROFS : -EINVAL;
	if (raw_writes_magic(d, req))
		return -EPERM;
	req->progress = 0;
	req->stage = req->op == DISK_WRITE_ZEROES ? raw_wz_stage(raw_of(d), req) : 0;
	ret = raw_queue(d, req);
	if (ret == 0)
		d->inflight++;
	return ret;
}

static void raw_commit(struct disk *d)
{
	struct raw *r = raw_of(d);

	for (int tries = 0; io_uring_sq_ready(&r->ring) > 0 && tries < 8; tries++) {
		int ret = io_uring_submit(&r->ring);

		if (ret >= 0 || (ret != -EINTR && ret != -EAGAIN)) {
			if (ret < 0)
				log_warn("disk %s: cannot submit I/O: %s", d->path, strerror(-ret));
			return;
		}
	}
}

/* ---- completion ---- */

static void raw_done(struct disk *d, struct disk_req *req, int ret)
{
	d->inflight--;
	req->done(req, ret);
}

/* Moves the iovecs past n bytes done: a short transfer continues where it stopped. */
static void raw_advance(struct disk_req *req, size_t n)
{
	while (req->niov > 0 && n >= req->iov->iov_len) {
		n -= req->iov->iov_len;
		req->iov++;
		req->niov--;
	}
	if (req->niov > 0) {
		req->iov->iov_base = (uint8_t *)req->iov->iov_base + n;
		req->iov->iov_len -= n;
	}
}

/* Returns true when req goes on (requeued), false when it is finished with *ret. */
static bool raw_transfer_done(struct disk_req *req, int res, int *ret, bool vectored)
{
	if (res == -EAGAIN || res == -EINTR)
		return true;
	if (res <= 0) {
		/* 0: the file ended early, someone shrank it under us. */
		*ret = res < 0 ? res : -EIO;
		return false;
	}
	if ((uint64_t)res > req->len - req->progress) {
		*ret = -EIO;
		return false;
	}
	req->progress += (uint64_t)res;
	if (vectored && req->progress < req->len)
		raw_advance(req, (size_t)res);
	*ret = 0;
	return req->progress < req->len;
}

static bool raw_unsupported(int res)
{
	return res == -EOPNOTSUPP || res == -ENOTSUP || res == -ENOSYS || res == -EINVAL;
}

/* After a fallocate: durable in write-through mode, or, if refused, the next way. */
static bool raw_wz_fallocate_done(struct disk *d, struct disk_req *req, int res, int *ret)
{
	struct raw *r = raw_of(d);

	*ret = res;
	if (res == 0) {
		req->stage = RAW_WZ_SYNC;
		return (req->flags & DISK_F_FUA) != 0;
	}
	if (!raw_unsupported(res))
		return false;
	/* Remembered for the disk: the file system will not change its mind. */
	if (req->stage == RAW_WZ_PUNCH)
		r->no_punch_hole = true;
	else
		r->no_zero_range = true;
	req->stage = raw_wz_stage(r, req);
	return true;
}

/* Whether req goes on; else *ret is its result. */
static bool raw_step(struct disk *d, struct disk_req *req, int res, int *ret)
{
	switch (req->op) {
	case DISK_READ:
	case DISK_WRITE:
		return raw_transfer_done(req, res, ret, true);
	case DISK_DISCARD:
		/* A hint: a file system that cannot punch holes just keeps the data. */
		*ret = raw_unsupported(res) ? 0 : res;
		return false;
	case DISK_WRITE_ZEROES:
		if (req->stage == RAW_WZ_PUNCH || req->stage == RAW_WZ_ZERO_RANGE)
			return raw_wz_fallocate_done(d, req, res, ret);
		if (req->stage == RAW_WZ_WRITE)
			return raw_transfer_done(req, res, ret, false);
		*ret = res;
		return false;
	default:
		*ret = res;
		return false;
	}
}

static void raw_finish(struct disk *d, struct disk_req *req, int res)
{
	int ret = 0;

	if (raw_step(d, req, res, &ret)) {
		ret = raw_queue(d, req);
		if (ret == 0)
			return;
	}
	raw_done(d, req, ret > 0 ? 0 : ret);
}

static unsigned raw_reap(struct disk *d)
{
	struct raw *r = raw_of(d);
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (io_uring_peek_cqe(&r->ring, &cqe) == 0) {
		struct disk_req *req = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&r->ring, cqe);
		raw_finish(d, req, res);
		n++;
	}
	return n;
}

static unsigned raw_complete(struct disk *d)
{
	uint64_t count;
	unsigned n;

	/* Clear the eventfd first: a completion that lands after this signals it again. */
	if (read(d->event_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_debug("disk %s: reading the completion eventfd: %s", d->path, strerror(errno));
	n = raw_reap(d);
	raw_commit(d); /* continuations of short transfers */
	return n;
}

static void raw_drain(struct disk *d)
{
	struct raw *r = raw_of(d);

	raw_commit(d);
	while (d->inflight > 0) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_wait_cqe(&r->ring, &cqe);

		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			log_error("disk %s: cannot wait for %u requests: %s", d->path, d->inflight,
				  strerror(-ret));
			return;
		}
		raw_reap(d);
		raw_commit(d);
	}
}

static void raw_close(struct disk *d)
{
	struct raw *r = raw_of(d);

	io_uring_queue_exit(&r->ring);
	if (d->event_fd >= 0)
		close(d->event_fd);
	d->event_fd = -1;
	free(r);
	d->priv = NULL;
}

static const struct disk_ops raw_ops = {
    .format = "raw",
    .submit = raw_submit,
    .commit = raw_commit,
    .complete = raw_complete,
    .drain = raw_drain,
    .close = raw_close,
};

int raw_attach(struct disk *d)
{
	struct raw *r = calloc(1, sizeof(*r));
	int ret;

	if (r == NULL)
		return -ENOMEM;
	ret = io_uring_queue_init(d->max_inflight, &r->ring, 0);
	if (ret < 0) {
		log_error("disk %s: cannot set up io_uring: %s (is kernel.io_uring_disabled set?)",
			  d->path, strerror(-ret));
		free(r);
		return ret;
	}
	d->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->event_fd < 0 || (ret = io_uring_register_eventfd(&r->ring, d->event_fd)) < 0) {
		ret = d->event_fd < 0 ? -errno : ret;
		log_error("disk %s: cannot set up completion events: %s", d->path, strerror(-ret));
		d->priv = r;
		raw_close(d);
		return ret;
	}
	d->priv = r;
	d->ops = &raw_ops;
	return 0;
}
