/*
 * qcow2 as a disk backend (struct disk_ops). Each request walks its range
 * one piece at a time: the metadata (L2 lookups, allocation, zero clusters)
 * is done here, synchronously, through the image's caches; the data goes
 * through io_uring straight between the caller's buffers and the image or
 * backing file, as raw.c does. A read of an allocated cluster costs an L2
 * cache lookup more than raw.
 *
 * An allocating write gets its new clusters (copy-on-write of the parts it
 * does not cover done at once), writes its data, and only then points the
 * L2 entries at them. Until then the guest clusters are claimed: another
 * write, write-zeroes or discard touching them waits. Requests that finish
 * without any I/O (zeroes, compressed data) are answered from
 * disk_complete(), the eventfd telling the device thread to call it.
 */
#include "disk/qcow2.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/qcow2_int.h"
#include "util/log.h"

/* What one step of a request left it doing. */
enum q2_step {
	Q2_MORE,    /* went on without I/O: the request continues */
	Q2_ISSUED,  /* a piece is in io_uring */
	Q2_BLOCKED, /* waits for an allocation in flight */
	Q2_DONE,    /* finished: op->ret */
};

struct q2_op {
	struct disk_req *req;
	struct q2_op *next;	  /* on the free, waiting or done list */
	struct q2_op *alloc_next; /* on the list of allocations in flight */
	uint64_t seq;		  /* when it started; 0: idle */
	int ret;
	bool allocating; /* plan's clusters are claimed until the data is written */
	struct q2_wplan plan;
	struct iovec *iov; /* where the data is, advanced in place */
	unsigned niov;
	struct iovec zero; /* write-zeroes: the zero buffer */
	struct iovec *cut; /* the entry shortened to the piece in flight */
	size_t cut_len;	   /* its whole length */
	int fd;		   /* the piece: file, offset, bytes, bytes done */
	uint64_t host, len, done;
	bool write, fsync, dsync;
};

struct q2_disk {
	struct io_uring ring;
	struct q2_image *img;
	struct q2_op *ops;
	struct q2_op *free, *waiting, *done, *done_tail;
	struct q2_op *allocs;
	uint64_t next_seq;
	unsigned sqes;	 /* in flight */
	bool reaping;	 /* inside complete() or drain(): done ops are seen to */
	uint8_t *zeroes; /* one cluster */
};

static struct q2_disk *q2_of(struct disk *d)
{
	return d->priv;
}

static uint64_t q2_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- the caller's buffers ---- */

static void q2_iov_advance(struct q2_op *op, uint64_t n)
{
	while (op->niov > 0 && n >= op->iov->iov_len) {
		n -= op->iov->iov_len;
		op->iov++;
		op->niov--;
	}
	if (op->niov > 0) {
		op->iov->iov_base = (uint8_t *)op->iov->iov_base + n;
		op->iov->iov_len -= n;
	}
}

/* Copies len bytes of src (NULL: zeroes) into the buffers. Returns -EINVAL if they end first. */
static int q2_iov_fill(struct q2_op *op, const uint8_t *src, uint64_t len)
{
	while (len > 0) {
		size_t n;

		if (op->niov == 0)
			return -EINVAL;
		n = (size_t)q2_min(op->iov->iov_len, len);
		if (src != NULL)
			memcpy(op->iov->iov_base, src, n);
		else
			memset(op->iov->iov_base, 0, n);
		src = src != NULL ? src + n : NULL;
		len -= n;
		q2_iov_advance(op, n);
	}
	return 0;
}

/* The first entries holding len bytes, the last one shortened; how many. */
static unsigned q2_iov_cut(struct q2_op *op, uint64_t len)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < op->niov && i < DISK_MAX_IOV; i++) {
		if (sum + op->iov[i].iov_len >= len) {
			op->cut = &op->iov[i];
			op->cut_len = op->iov[i].iov_len;
			op->iov[i].iov_len = (size_t)(len - sum);
			return i + 1;
		}
		sum += op->iov[i].iov_len;
	}
	return 0; /* the buffers hold less than the request says */
}

static void q2_iov_uncut(struct q2_op *op)
{
	if (op->cut != NULL)
		op->cut->iov_len = op->cut_len;
	op->cut = NULL;
}

/* ---- io_uring ---- */

/* Queues what is left of op's piece; it goes to the kernel at the next commit. */
static int q2_queue(struct disk *d, struct q2_op *op)
{
	struct q2_disk *q = q2_of(d);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	unsigned niov;

	if (sqe == NULL) {
		io_uring_submit(&q->ring);
		if ((sqe = io_uring_get_sqe(&q->ring)) == NULL)
			return -EAGAIN;
	}
	if (op->fsync) {
		io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
	} else {
		niov = q2_iov_cut(op, op->len - op->done);
		if (niov == 0) {
			io_uring_prep_nop(sqe); /* the slot is taken: give it back empty */
			io_uring_sqe_set_data(sqe, NULL);
			return -EINVAL;
		}
		if (op->write)
			io_uring_prep_writev2(sqe, op->fd, op->iov, niov, op->host + op->done,
					      op->dsync ? RWF_DSYNC : 0);
		else
			io_uring_prep_readv(sqe, op->fd, op->iov, niov, op->host + op->done);
	}
	io_uring_sqe_set_data(sqe, op);
	q->sqes++;
	return 0;
}

static enum q2_step q2_issue(struct disk *d, struct q2_op *op, int fd, uint64_t host, uint64_t len,
			     bool write)
{
	int ret;

	op->fd = fd;
	op->host = host;
	op->len = len;
	op->done = 0;
	op->write = write;
	op->dsync = write && (op->req->flags & DISK_F_FUA) && !op->allocating;
	ret = q2_queue(d, op);
	if (ret == 0)
		return Q2_ISSUED;
	op->ret = ret;
	return Q2_DONE;
}

static void q2_commit(struct disk *d)
{
	struct q2_disk *q = q2_of(d);

	for (int tries = 0; io_uring_sq_ready(&q->ring) > 0 && tries < 8; tries++) {
		int ret = io_uring_submit(&q->ring);

		if (ret >= 0 || (ret != -EINTR && ret != -EAGAIN)) {
			if (ret < 0)
				log_warn("disk %s: cannot submit I/O: %s", d->path, strerror(-ret));
			return;
		}
	}
}

/* ---- claims on guest clusters being allocated ---- */

/* Shrinks [g, g + *n) to clusters no allocation in flight claims; false if g is claimed. */
static bool q2_claimable(const struct q2_disk *q, uint64_t g, uint64_t *n)
{
	for (const struct q2_op *a = q->allocs; a != NULL; a = a->alloc_next) {
		uint64_t start = a->plan.g, end = a->plan.g + a->plan.n;

		if (start <= g && g < end)
			return false;
		if (g < start && start < g + *n)
			*n = start - g;
	}
	return true;
}

static void q2_claim(struct q2_disk *q, struct q2_op *op)
{
	op->allocating = true;
	op->alloc_next = q->allocs;
	q->allocs = op;
}

static void q2_run(struct disk *d, struct q2_op *op);

/* Lets the requests that waited for a claim try again. */
static void q2_release(struct disk *d, struct q2_op *op)
{
	struct q2_disk *q = q2_of(d);
	struct q2_op **p = &q->allocs, *waiting;

	while (*p != NULL && *p != op)
		p = &(*p)->alloc_next;
	if (*p == op)
		*p = op->alloc_next;
	op->allocating = false;
	waiting = q->waiting;
	q->waiting = NULL;
	while (waiting != NULL) {
		struct q2_op *next = waiting->next;

		q2_run(d, waiting);
		waiting = next;
	}
}

/* ---- the steps of each kind of request ---- */

static uint64_t q2_offset(const struct q2_op *op)
{
	return op->req->offset + op->req->progress;
}

static uint64_t q2_left(const struct q2_op *op)
{
	return op->req->len - op->req->progress;
}

static enum q2_step q2_fail(struct q2_op *op, int ret)
{
	op->ret = ret;
	return Q2_DONE;
}

/* Zeroes or decompressed data, copied at once. */
static int q2_fill(struct q2_op *op, const struct q2_ext *e)
{
	int ret;

	if (e->kind == Q2_EXT_ZERO)
		return q2_iov_fill(op, NULL, e->len);
	ret = q2_read_compressed(e->img, e->entry);
	return ret != 0 ? ret : q2_iov_fill(op, e->img->zout + e->skip, e->len);
}

static enum q2_step q2_step_read(struct disk *d, struct q2_op *op)
{
	struct q2_disk *q = q2_of(d);

	while (q2_left(op) > 0) {
		struct q2_ext e;
		int ret = q2_map(q->img, q2_offset(op), q2_left(op), &e);

		if (ret == 0 && e.kind == Q2_EXT_DATA)
			return q2_issue(d, op, e.img->fd, e.host, e.len, false);
		if (ret == 0)
			ret = q2_fill(op, &e);
		if (ret != 0)
			return q2_fail(op, ret);
		op->req->progress += e.len;
	}
	return Q2_DONE;
}

/* One piece of a write of len bytes (WRITE, or the zeroes of a partial cluster). */
static enum q2_step q2_write_piece(struct disk *d, struct q2_op *op, uint64_t len)
{
	struct q2_disk *q = q2_of(d);
	struct q2_wplan *p = &op->plan;
	int ret = q2_write_plan(q->img, q2_offset(op), len, p);

	if (ret != 0)
		return q2_fail(op, ret);
	if (p->alloc) {
		if (!q2_claimable(q, p->g, &p->n))
			return Q2_BLOCKED;
		if ((ret = q2_write_prepare(q->img, q2_offset(op), len, p)) != 0)
			return q2_fail(op, ret);
		q2_claim(q, op);
	}
	if (q2_issue(d, op, q->img->fd, p->host, p->len, true) == Q2_ISSUED)
		return Q2_ISSUED;
	if (op->allocating) {
		q2_write_undo(q->img, p);
		q2_release(d, op);
	}
	return Q2_DONE;
}

static enum q2_step q2_step_write(struct disk *d, struct q2_op *op)
{
	return q2_left(op) > 0 ? q2_write_piece(d, op, q2_left(op)) : Q2_DONE;
}

/* Whole clusters [g, g + n) from op's offset, kept inside one L2 table. */
static uint64_t q2_whole_clusters(const struct q2_image *img, const struct q2_op *op)
{
	uint64_t g = q2_offset(op) >> img->cb, n = q2_left(op) >> img->cb;
	uint64_t table_end = ((g >> img->l2_bits) + 1) << img->l2_bits;

	return q2_min(n, table_end - g);
}

/* Makes whole clusters zeroes (or discards them) in the L2 table. */
static enum q2_step q2_zero_whole(struct disk *d, struct q2_op *op, enum q2_zero_how how)
{
	struct q2_disk *q = q2_of(d);
	uint64_t g = q2_offset(op) >> q->img->cb, n = q2_whole_clusters(q->img, op);
	int ret;

	if (!q2_claimable(q, g, &n))
		return Q2_BLOCKED;
	if ((ret = q2_zero_clusters(q->img, g, n, how)) != 0)
		return q2_fail(op, ret);
	op->req->progress += n << q->img->cb;
	return Q2_MORE;
}

static bool q2_reads_zero(struct q2_image *img, uint64_t off, uint64_t len)
{
	struct q2_ext e;

	return q2_map(img, off, len, &e) == 0 && e.kind == Q2_EXT_ZERO && e.len >= len;
}

static enum q2_step q2_step_zeroes(struct disk *d, struct q2_op *op)
{
	struct q2_disk *q = q2_of(d);
	enum q2_zero_how how = (op->req->flags & DISK_F_UNMAP) ? Q2_ZERO_UNMAP : Q2_ZERO_KEEP;
	uint64_t cs = q->img->cs;

	while (q2_left(op) > 0) {
		uint64_t in = q2_offset(op) & (cs - 1), piece = q2_min(q2_left(op), cs - in);
		enum q2_step step;

		if (in == 0 && q2_left(op) >= cs) {
			if ((step = q2_zero_whole(d, op, how)) != Q2_MORE)
				return step;
			continue;
		}
		if (q2_reads_zero(q->img, q2_offset(op), piece)) {
			op->req->progress += piece;
			continue;
		}
		/* Part of a cluster: zeroes written like data. */
		op->zero = (struct iovec){.iov_base = q->zeroes, .iov_len = (size_t)piece};
		op->iov = &op->zero;
		op->niov = 1;
		return q2_write_piece(d, op, piece);
	}
	return Q2_DONE;
}

static enum q2_step q2_step_discard(struct disk *d, struct q2_op *op)
{
	struct q2_disk *q = q2_of(d);
	uint64_t cs = q->img->cs;

	while (q2_left(op) > 0) {
		uint64_t in = q2_offset(op) & (cs - 1);
		enum q2_step step;

		/* A hint: parts of clusters stay as they are. */
		if (in != 0 || q2_left(op) < cs) {
			op->req->progress += q2_min(q2_left(op), cs - in);
			continue;
		}
		if ((step = q2_zero_whole(d, op, Q2_DISCARD)) != Q2_MORE)
			return step;
	}
	return Q2_DONE;
}

/* The lowest start of a request in flight: what was dropped before it is free. */
static uint64_t q2_safe(const struct disk *d)
{
	const struct q2_disk *q = d->priv;
	uint64_t safe = q->next_seq;

	for (unsigned i = 0; i < d->max_inflight; i++)
		if (q->ops[i].seq != 0 && q->ops[i].seq < safe)
			safe = q->ops[i].seq;
	return safe;
}

static enum q2_step q2_step_flush(struct disk *d, struct q2_op *op)
{
	struct q2_disk *q = q2_of(d);

	if (!q2_dirty(q->img)) {
		/* Only data to make stable: no need to block this thread for it. */
		op->fsync = true;
		op->fd = q->img->fd;
		if ((op->ret = q2_queue(d, op)) == 0)
			return Q2_ISSUED;
		return Q2_DONE;
	}
	op->ret = q2_flush(q->img, q2_safe(d));
	return Q2_DONE;
}

static enum q2_step q2_step(struct disk *d, struct q2_op *op)
{
	switch (op->req->op) {
	case DISK_READ:
		return q2_step_read(d, op);
	case DISK_WRITE:
		return q2_step_write(d, op);
	case DISK_WRITE_ZEROES:
		return q2_step_zeroes(d, op);
	case DISK_DISCARD:
		return q2_step_discard(d, op);
	default:
		return q2_step_flush(d, op);
	}
}

/* ---- finishing ---- */

static void q2_finish(struct disk *d, struct q2_op *op)
{
	struct q2_disk *q = q2_of(d);

	/* Write-through: whatever metadata the write changed is stable too. */
	if (op->ret == 0 && (op->req->flags & DISK_F_FUA) && op->req->op != DISK_READ &&
	    q2_dirty(q->img))
		op->ret = q2_flush(q->img, q2_safe(d));
	op->next = NULL;
	if (q->done_tail != NULL)
		q->done_tail->next = op;
	else
		q->done = op;
	q->done_tail = op;
	if (!q->reaping && eventfd_write(d->event_fd, 1) < 0)
		log_debug("disk %s: signalling a completion: %s", d->path, strerror(errno));
}

static void q2_run(struct disk *d, struct q2_op *op)
{
	struct q2_disk *q = q2_of(d);

	switch (q2_step(d, op)) {
	case Q2_MORE: /* the steps loop until they issue, block or finish */
	case Q2_ISSUED:
		return;
	case Q2_BLOCKED:
		op->next = q->waiting;
		q->waiting = op;
		return;
	case Q2_DONE:
		q2_finish(d, op);
		return;
	}
}

/* Runs done() for every finished request; returns how many. */
static unsigned q2_run_done(struct disk *d)
{
	struct q2_disk *q = q2_of(d);
	unsigned n = 0;

	while (q->done != NULL) {
		struct q2_op *op = q->done;
		struct disk_req *req = op->req;
		int ret = op->ret;

		q->done = op->next;
		if (q->done == NULL)
			q->done_tail = NULL;
		op->seq = 0;
		op->req = NULL;
		op->next = q->free;
		q->free = op;
		d->inflight--;
		req->done(req, ret);
		n++;
	}
	return n;
}

/* A piece failed: an allocation gives its clusters back. */
static void q2_piece_failed(struct disk *d, struct q2_op *op, int ret)
{
	struct q2_disk *q = q2_of(d);

	op->ret = ret;
	if (op->allocating) {
		q2_write_undo(q->img, &op->plan);
		q2_release(d, op);
	}
	q2_finish(d, op);
}

/* A whole piece is done: an allocation becomes visible, then the request goes on. */
static void q2_piece_done(struct disk *d, struct q2_op *op)
{
	struct q2_disk *q = q2_of(d);
	int ret = 0;

	if (op->allocating) {
		ret = q2_write_publish(q->img, &op->plan);
		q2_release(d, op);
	}
	op->req->progress += op->len;
	if (ret != 0)
		q2_piece_failed(d, op, ret);
	else
		q2_run(d, op);
}

static void q2_cqe(struct disk *d, struct q2_op *op, int res)
{
	int ret;

	q2_of(d)->sqes--;
	q2_iov_uncut(op);
	if (op->fsync) {
		op->ret = res;
		q2_finish(d, op);
		return;
	}
	if (res == -EAGAIN || res == -EINTR)
		res = 0; /* try again below */
	else if (res <= 0 || (uint64_t)res > op->len - op->done)
		return q2_piece_failed(d, op, res < 0 ? res : -EIO);
	op->done += (uint64_t)res;
	q2_iov_advance(op, (uint64_t)res);
	if (op->done == op->len)
		return q2_piece_done(d, op);
	if ((ret = q2_queue(d, op)) != 0)
		q2_piece_failed(d, op, ret);
}

static unsigned q2_reap(struct disk *d)
{
	struct q2_disk *q = q2_of(d);
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (io_uring_peek_cqe(&q->ring, &cqe) == 0) {
		struct q2_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&q->ring, cqe);
		if (op != NULL)
			q2_cqe(d, op, res);
		n++;
	}
	return n;
}

/* ---- disk_ops ---- */

static bool q2_req_ok(const struct disk *d, const struct disk_req *req)
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

static int q2_submit(struct disk *d, struct disk_req *req)
{
	struct q2_disk *q = q2_of(d);
	struct q2_op *op = q->free;

	if (d->inflight >= d->max_inflight || op == NULL)
		return -EBUSY;
	if (!q2_req_ok(d, req))
		return d->readonly ? -EROFS : -EINVAL;
	q->free = op->next;
	memset(op, 0, sizeof(*op));
	op->req = req;
	op->seq = q->next_seq++;
	q->img->stamp = q->next_seq; /* what this and later requests drop */
	op->iov = req->iov;
	op->niov = req->niov;
	req->progress = 0;
	req->stage = 0;
	d->inflight++;
	q2_run(d, op);
	return 0;
}

static unsigned q2_complete(struct disk *d)
{
	struct q2_disk *q = q2_of(d);
	uint64_t count;
	unsigned n;

	/* Clear the eventfd first: a completion that lands after this signals it again. */
	if (read(d->event_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_debug("disk %s: reading the completion eventfd: %s", d->path, strerror(errno));
	q->reaping = true;
	q2_reap(d);
	n = q2_run_done(d);
	q->reaping = false;
	q2_commit(d);
	return n;
}

/* Waits for one completion; false when nothing can come. */
static bool q2_wait(struct disk *d)
{
	struct q2_disk *q = q2_of(d);
	struct io_uring_cqe *cqe;
	int ret;

	if (q->sqes == 0) {
		log_error("disk %s: %u requests cannot finish", d->path, d->inflight);
		return false;
	}
	q2_commit(d);
	while ((ret = io_uring_wait_cqe(&q->ring, &cqe)) == -EINTR)
		;
	if (ret < 0) {
		log_error("disk %s: cannot wait for %u requests: %s", d->path, d->inflight,
			  strerror(-ret));
		return false;
	}
	q2_reap(d);
	return true;
}

static void q2_drain(struct disk *d)
{
	struct q2_disk *q = q2_of(d);

	q2_commit(d);
	q->reaping = true;
	while (d->inflight > 0) {
		if (q2_run_done(d) > 0)
			continue;
		if (!q2_wait(d))
			break;
	}
	q->reaping = false;
	q2_commit(d);
}

static void q2_free(struct q2_disk *q)
{
	q2_close(q->img);
	free(q->ops);
	free(q->zeroes);
	free(q);
}

static void q2_close_disk(struct disk *d)
{
	struct q2_disk *q = q2_of(d);
	int ret = q2_flush_all(q->img);

	if (ret != 0)
		log_error("disk %s: cannot write its metadata back: %s", d->path, strerror(-ret));
	io_uring_queue_exit(&q->ring);
	if (d->event_fd >= 0)
		close(d->event_fd);
	d->event_fd = -1;
	q2_free(q);
	d->priv = NULL;
}

static const struct disk_ops q2_ops = {
    .format = "qcow2",
    .submit = q2_submit,
    .commit = q2_commit,
    .complete = q2_complete,
    .drain = q2_drain,
    .close = q2_close_disk,
};

/* ---- attaching ---- */

static int q2_check_disk(struct disk *d, const struct q2_image *img)
{
	struct stat st;

	if (img->size == 0) {
		log_error("disk %s has a virtual size of 0 bytes: resize it first (tabique disk "
			  "resize %s SIZE)",
			  d->path, d->path);
		return -EINVAL;
	}
	/* Allocating grows the file: a block device cannot. */
	if (!d->readonly && fstat(d->fd, &st) == 0 && S_ISBLK(st.st_mode)) {
		log_error("disk %s: a qcow2 image on a block device is read-only here (add "
			  ",readonly)",
			  d->path);
		return -EINVAL;
	}
	return 0;
}

static int q2_setup_ring(struct disk *d, struct q2_disk *q)
{
	int ret = io_uring_queue_init(d->max_inflight, &q->ring, 0);

	if (ret < 0) {
		log_error("disk %s: cannot set up io_uring: %s (is kernel.io_uring_disabled set?)",
			  d->path, strerror(-ret));
		return ret;
	}
	d->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->event_fd < 0 || (ret = io_uring_register_eventfd(&q->ring, d->event_fd)) < 0) {
		ret = d->event_fd < 0 ? -errno : ret;
		log_error("disk %s: cannot set up completion events: %s", d->path, strerror(-ret));
		io_uring_queue_exit(&q->ring);
		if (d->event_fd >= 0)
			close(d->event_fd);
		d->event_fd = -1;
		return ret;
	}
	return 0;
}

static int q2_setup_ops(struct disk *d, struct q2_disk *q)
{
	q->ops = calloc(d->max_inflight, sizeof(*q->ops));
	q->zeroes = d->readonly ? NULL : calloc(1, q->img->cs);
	if (q->ops == NULL || (!d->readonly && q->zeroes == NULL))
		return -ENOMEM;
	for (unsigned i = d->max_inflight; i-- > 0;) {
		q->ops[i].next = q->free;
		q->free = &q->ops[i];
	}
	q->next_seq = 1;
	return 0;
}

int qcow2_attach(struct disk *d)
{
	struct q2_disk *q = calloc(1, sizeof(*q));
	int ret;

	if (q == NULL)
		return -ENOMEM;
	ret = q2_open(&q->img, d->path, d->fd, DISK_FORMAT_QCOW2, d->readonly, Q2_OPEN_BACKING);
	if (ret == 0 && (ret = q2_check_disk(d, q->img)) == 0 &&
	    (ret = q2_setup_ops(d, q)) == -ENOMEM)
		log_error("disk %s: out of memory", d->path);
	if (ret == 0)
		ret = q2_setup_ring(d, q);
	if (ret != 0) {
		q2_free(q);
		return ret;
	}
	d->size = q->img->size;
	d->priv = q;
	d->ops = &q2_ops;
	return 0;
}
