#include "virtio/blk.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "virtio/queue.h"

/*
 * iovecs per request: seg_max data buffers, plus header and status, plus
 * slack for a driver that splits the header. More is a broken driver.
 */
#define BLK_MAX_IOV (BLK_SEG_MAX + 8)
/* discard_sector_alignment: 4 KiB, the page and block size of the host's file systems. */
#define BLK_DWZ_ALIGNMENT 8

/* What starting a request led to. */
enum blk_start {
	BLK_ANSWERED, /* status is set: push it now */
	BLK_QUEUED,   /* I/O in flight: blk_io_done() answers it */
	BLK_BROKEN,   /* the chain cannot be answered at all: the device needs a reset */
};

struct blk_req {
	struct disk_req io; /* first: blk_req_of() */
	struct blk *blk;
	uint16_t head;
	uint8_t *status; /* the chain's last writable byte, in guest RAM: written once, last */
	uint8_t answer;	 /* what goes there; never read back from guest RAM */
	uint32_t used;	 /* bytes written into the chain on success, status included */
	struct blk_req *next_free;
	struct iovec iov[BLK_MAX_IOV];
};

struct blk {
	struct virtio_device vdev; /* first: blk_of() */
	struct disk *disk;
	uint64_t capacity; /* sectors */
	char serial[VIRTIO_BLK_ID_BYTES];
	struct blk_req *reqs; /* BLK_QUEUE_SIZE of them: never more in flight than the ring */
	struct blk_req *free;
	unsigned inflight;
	bool quiet;		/* completions answer nothing: reset, quiesce */
	bool pushed;		/* pushed since the last virtio_queue_used() */
	bool stalled;		/* queue_notify stopped for want of a free request */
	struct blk_stats stats; /* written by the device thread, read by any */
};

static struct blk *blk_of(struct virtio_device *dev)
{
	return (struct blk *)((char *)dev - offsetof(struct blk, vdev));
}

static struct blk_req *blk_req_of(struct disk_req *io)
{
	return (struct blk_req *)((char *)io - offsetof(struct blk_req, io));
}

static bool blk_negotiated(const struct blk *blk, unsigned bit)
{
	return (blk->vdev.features & (1ULL << bit)) != 0;
}

/* ---- configuration space ---- */

static void blk_put(uint8_t *cfg, unsigned off, uint64_t v, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		cfg[off + i] = (uint8_t)(v >> (8 * i));
}

static void blk_config_read(struct virtio_device *dev, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct blk *blk = blk_of(dev);
	uint8_t cfg[VIRTIO_BLK_CFG_SIZE] = {0};

	blk_put(cfg, VIRTIO_BLK_CFG_CAPACITY, blk->capacity, 8);
	blk_put(cfg, VIRTIO_BLK_CFG_SEG_MAX, BLK_SEG_MAX, 4);
	blk_put(cfg, VIRTIO_BLK_CFG_BLK_SIZE, DISK_SECTOR, 4);
	blk_put(cfg, VIRTIO_BLK_CFG_NUM_QUEUES, 1, 2);
	blk_put(cfg, VIRTIO_BLK_CFG_MAX_DISCARD, BLK_MAX_DWZ_SECTORS, 4);
	blk_put(cfg, VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 1, 4);
	blk_put(cfg, VIRTIO_BLK_CFG_DISCARD_ALIGN, BLK_DWZ_ALIGNMENT, 4);
	blk_put(cfg, VIRTIO_BLK_CFG_MAX_WZ, BLK_MAX_DWZ_SECTORS, 4);
	blk_put(cfg, VIRTIO_BLK_CFG_MAX_WZ_SEG, 1, 4);
	cfg[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
	/* The transport keeps offset + len within config_size; checked again all the same. */
	if (offset <= sizeof(cfg) && len <= sizeof(cfg) - offset)
		memcpy(data, cfg + offset, len);
}

/* ---- answering ---- */

/* Counters are read from other threads (the control API): relaxed atomics suffice. */
static void blk_count(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* A request the disk completed (or failed), on the device thread. */
static void blk_account(struct blk *blk, const struct blk_req *req)
{
	struct blk_stats *st = &blk->stats;

	if (req->answer != VIRTIO_BLK_S_OK) {
		blk_count(&st->errors, 1);
		return;
	}
	switch (req->io.op) {
	case DISK_READ:
		blk_count(&st->read_ops, 1);
		blk_count(&st->read_bytes, req->io.len);
		break;
	case DISK_WRITE:
		blk_count(&st->write_ops, 1);
		blk_count(&st->write_bytes, req->io.len);
		break;
	case DISK_FLUSH:
		blk_count(&st->flush_ops, 1);
		break;
	default: /* discard, write zeroes */
		blk_count(&st->discard_ops, 1);
		blk_count(&st->discard_bytes, req->io.len);
		break;
	}
}

static void blk_push(struct blk *blk, struct blk_req *req)
{
	struct virtqueue *vq = virtio_queue(&blk->vdev, 0);

	*req->status = req->answer;
	if (vq != NULL &&
	    vq_push(vq, req->head, req->answer == VIRTIO_BLK_S_OK ? req->used : 1) == 0)
		blk->pushed = true;
}

static void blk_req_free(struct blk *blk, struct blk_req *req)
{
	req->next_free = blk->free;
	blk->free = req;
}

static void blk_io_done(struct disk_req *io, int ret)
{
	struct blk_req *req = blk_req_of(io);
	struct blk *blk = req->blk;

	blk->inflight--;
	if (ret < 0)
		log_debug("virtio-blk %s: request failed: %s", blk->disk->path, strerror(-ret));
	req->answer = ret == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
	blk_account(blk, req);
	if (!blk->quiet)
		blk_push(blk, req);
	blk_req_free(blk, req);
}

/* ---- parsing and starting requests ---- */

static bool blk_range_ok(const struct blk *blk, uint64_t sector, uint64_t nsect)
{
	return sector <= blk->capacity && nsect <= blk->capacity - sector;
}

/* Hands req to the disk; an answer now if the disk refuses it. */
static enum blk_start blk_submit(struct blk *blk, struct blk_req *req, enum disk_op op,
				 uint64_t sector, uint64_t bytes)
{
	req->io.op = op;
	req->io.offset = sector * DISK_SECTOR;
	req->io.len = bytes;
	req->io.done = blk_io_done;
	if (op == DISK_WRITE || op == DISK_WRITE_ZEROES)
		req->io.flags |= blk_negotiated(blk, VIRTIO_BLK_F_FLUSH) ? 0 : DISK_F_FUA;
	if (disk_submit(blk->disk, &req->io) != 0)
		return BLK_ANSWERED; /* status already IOERR */
	blk->inflight++;
	return BLK_QUEUED;
}

/* The writable buffers without the status byte, trimmed in place. */
static unsigned blk_data_in(struct vq_chain *c, struct iovec **iov)
{
	struct iovec *last = &c->iov[c->nread + c->nwrite - 1];
	unsigned n = c->nwrite;

	last->iov_len--;
	if (last->iov_len == 0)
		n--;
	*iov = &c->iov[c->nread];
	return n;
}

/* The readable buffers after the header, trimmed in place. */
static unsigned blk_data_out(struct vq_chain *c, struct iovec **iov)
{
	size_t skip = VIRTIO_BLK_REQ_HDR_SIZE;
	unsigned i = 0;

	while (i < c->nread && skip >= c->iov[i].iov_len)
		skip -= c->iov[i++].iov_len;
	if (i < c->nread) {
		c->iov[i].iov_base = (uint8_t *)c->iov[i].iov_base + skip;
		c->iov[i].iov_len -= skip;
	}
	*iov = &c->iov[i];
	return c->nread - i;
}

/* IN: header readable, data + status writable. OUT: header + data readable, status writable. */
static enum blk_start blk_rw(struct blk *blk, struct blk_req *req, struct vq_chain *c,
			     uint64_t sector, bool write)
{
	uint64_t bytes = write ? c->read_bytes - VIRTIO_BLK_REQ_HDR_SIZE : c->write_bytes - 1u;

	if ((write ? c->write_bytes != 1 : c->read_bytes != VIRTIO_BLK_REQ_HDR_SIZE) ||
	    bytes % DISK_SECTOR != 0 || !blk_range_ok(blk, sector, bytes / DISK_SECTOR))
		return BLK_ANSWERED;
	if (write && blk->disk->readonly)
		return BLK_ANSWERED; /* 5.2.6.2: IOERR, and no data written */
	if (bytes == 0) {
		req->answer = VIRTIO_BLK_S_OK;
		return BLK_ANSWERED;
	}
	req->used = write ? 1 : (uint32_t)bytes + 1;
	req->io.niov = write ? blk_data_out(c, &req->io.iov) : blk_data_in(c, &req->io.iov);
	return blk_submit(blk, req, write ? DISK_WRITE : DISK_READ, sector, bytes);
}

static enum blk_start blk_flush(struct blk *blk, struct blk_req *req)
{
	/* Nothing was written through a readonly disk: nothing to make stable. */
	if (blk->disk->readonly) {
		req->answer = VIRTIO_BLK_S_OK;
		return BLK_ANSWERED;
	}
	req->used = 1;
	return blk_submit(blk, req, DISK_FLUSH, 0, 0);
}

static enum blk_start blk_get_id(struct blk *blk, struct blk_req *req, const struct vq_chain *c)
{
	/* 5.2.6.1: the driver's buffer is exactly 20 bytes; the ID is NUL-padded. */
	if (c->read_bytes != VIRTIO_BLK_REQ_HDR_SIZE || c->write_bytes != VIRTIO_BLK_ID_BYTES + 1)
		return BLK_ANSWERED;
	vq_iov_write(&c->iov[c->nread], c->nwrite, 0, blk->serial, VIRTIO_BLK_ID_BYTES);
	req->used = VIRTIO_BLK_ID_BYTES + 1;
	req->answer = VIRTIO_BLK_S_OK;
	return BLK_ANSWERED;
}

/* One discard or write-zeroes segment, copied once out of guest memory. */
struct blk_dwz {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

static bool blk_read_dwz(const struct vq_chain *c, struct blk_dwz *seg)
{
	uint8_t b[VIRTIO_BLK_DWZ_SEG_SIZE];

	/* Exactly one segment: max_discard_seg = max_write_zeroes_seg = 1. */
	if (c->read_bytes != VIRTIO_BLK_REQ_HDR_SIZE + VIRTIO_BLK_DWZ_SEG_SIZE ||
	    c->write_bytes != 1 ||
	    vq_iov_read(c->iov, c->nread, VIRTIO_BLK_REQ_HDR_SIZE, b, sizeof(b)) != sizeof(b))
		return false;
	memcpy(&seg->sector, b, 8);
	memcpy(&seg->num_sectors, b + 8, 4);
	memcpy(&seg->flags, b + 12, 4);
	seg->sector = le64toh(seg->sector);
	seg->num_sectors = le32toh(seg->num_sectors);
	seg->flags = le32toh(seg->flags);
	return true;
}

static enum blk_start blk_dwz(struct blk *blk, struct blk_req *req, const struct vq_chain *c,
			      bool zeroes)
{
	struct blk_dwz seg;

	if (!blk_negotiated(blk, zeroes ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD)) {
		req->answer = VIRTIO_BLK_S_UNSUPP;
		return BLK_ANSWERED;
	}
	if (blk->disk->readonly || !blk_read_dwz(c, &seg))
		return BLK_ANSWERED;
	/* 5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP. */
	if ((seg.flags & ~VIRTIO_BLK_DWZ_F_UNMAP) || (!zeroes && seg.flags)) {
		req->answer = VIRTIO_BLK_S_UNSUPP;
		return BLK_ANSWERED;
	}
	if (seg.num_sectors > BLK_MAX_DWZ_SECTORS ||
	    !blk_range_ok(blk, seg.sector, seg.num_sectors))
		return BLK_ANSWERED;
	if (seg.num_sectors == 0) {
		req->answer = VIRTIO_BLK_S_OK;
		return BLK_ANSWERED;
	}
	req->used = 1;
	req->io.flags = (seg.flags & VIRTIO_BLK_DWZ_F_UNMAP) ? DISK_F_UNMAP : 0;
	return blk_submit(blk, req, zeroes ? DISK_WRITE_ZEROES : DISK_DISCARD, seg.sector,
			  (uint64_t)seg.num_sectors * DISK_SECTOR);
}

/* Dispatches on the header, copied once; malformed requests answer IOERR. */
static enum blk_start blk_dispatch(struct blk *blk, struct blk_req *req, struct vq_chain *c)
{
	uint8_t hdr[VIRTIO_BLK_REQ_HDR_SIZE];
	uint32_t type;
	uint64_t sector;

	if (c->read_bytes < sizeof(hdr) ||
	    vq_iov_read(c->iov, c->nread, 0, hdr, sizeof(hdr)) != sizeof(hdr))
		return BLK_ANSWERED;
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	type = le32toh(type);
	sector = le64toh(sector);
	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return blk_rw(blk, req, c, sector, type == VIRTIO_BLK_T_OUT);
	case VIRTIO_BLK_T_FLUSH:
		return blk_flush(blk, req);
	case VIRTIO_BLK_T_GET_ID:
		return blk_get_id(blk, req, c);
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return blk_dwz(blk, req, c, type == VIRTIO_BLK_T_WRITE_ZEROES);
	default:
		req->answer = VIRTIO_BLK_S_UNSUPP;
		return BLK_ANSWERED;
	}
}

/* The status byte is the chain's last writable byte: without one, there is no answer. */
static enum blk_start blk_start(struct blk *blk, struct blk_req *req, struct vq_chain *c)
{
	const struct iovec *last;

	if (c->nwrite == 0 || c->write_bytes == 0) {
		virtio_needs_reset(&blk->vdev, "the driver queued a request without a status byte");
		return BLK_BROKEN;
	}
	last = &c->iov[c->nread + c->nwrite - 1];
	req->head = c->head;
	req->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	req->answer = VIRTIO_BLK_S_IOERR; /* until something better is known */
	req->used = 1;
	req->io.flags = 0;
	return blk_dispatch(blk, req, c);
}

/* ---- the queue ---- */

/* Pops and starts one request; false when the loop must stop. */
static bool blk_take_one(struct blk *blk, struct virtqueue *vq)
{
	struct blk_req *req = blk->free;
	struct vq_chain chain;
	int ret;

	if (req == NULL) {
		blk->stalled = true; /* a completion frees one and kicks the queue */
		return false;
	}
	chain.iov = req->iov;
	ret = vq_pop(vq, &chain, BLK_MAX_IOV);
	if (ret == 0 || ret == -EINVAL)
		return false; /* empty; or broken, which the transport turns into NEEDS_RESET */
	if (ret == -ENOBUFS) {
		virtio_needs_reset(&blk->vdev,
				   "the driver queued more buffers than seg_max allows");
		return false;
	}
	blk->free = req->next_free;
	switch (blk_start(blk, req, &chain)) {
	case BLK_ANSWERED:
		/* Answered without the disk: only failures count (io.op is not this request's). */
		if (req->answer != VIRTIO_BLK_S_OK)
			blk_count(&blk->stats.errors, 1);
		blk_push(blk, req);
		blk_req_free(blk, req);
		return true;
	case BLK_QUEUED:
		return true;
	default:
		blk_req_free(blk, req);
		return false;
	}
}

/* After a batch: one interrupt for everything pushed, and a stalled queue goes on. */
static void blk_answer(struct blk *blk)
{
	if (blk->pushed) {
		blk->pushed = false;
		virtio_queue_used(&blk->vdev, 0);
	}
	if (blk->stalled && blk->free != NULL) {
		blk->stalled = false;
		virtio_queue_kick(&blk->vdev, 0);
	}
}

static void blk_queue_notify(struct virtio_device *dev, unsigned q)
{
	struct blk *blk = blk_of(dev);
	struct virtqueue *vq = virtio_queue(dev, q);
	unsigned taken = 0;

	if (q != 0 || vq == NULL)
		return;
	/* At most a ring's worth per call, so that completions get their turn. */
	while (taken < vq->size && blk_take_one(blk, vq))
		taken++;
	disk_commit(blk->disk); /* one system call for the whole batch */
	/* Reads from the page cache complete during the submission: answer them now. */
	disk_complete(blk->disk);
	blk_answer(blk);
	if (taken == vq->size && vq_has_avail(vq))
		virtio_queue_kick(dev, q);
}

/* The disk's eventfd, on the device thread. */
static void blk_completions(struct virtio_device *dev, int fd)
{
	struct blk *blk = blk_of(dev);

	(void)fd;
	disk_complete(blk->disk);
	blk_answer(blk);
}

/*
 * The queues are reset already, but reads may still be landing in guest
 * RAM that the driver is about to reuse: wait for every one of them before
 * the driver sees the reset done. Nothing is answered.
 */
static void blk_reset(struct virtio_device *dev)
{
	blk_quiesce(blk_of(dev));
}

static const struct virtio_device_ops blk_ops_rw = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .features = 1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
		1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_DISCARD |
		1ULL << VIRTIO_BLK_F_WRITE_ZEROES,
    .num_queues = 1,
    .queue_max_size = BLK_QUEUE_SIZE,
    .config_size = VIRTIO_BLK_CFG_SIZE,
    .config_read = blk_config_read,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
};

static const struct virtio_device_ops blk_ops_ro = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .features = 1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
		1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_RO,
    .num_queues = 1,
    .queue_max_size = BLK_QUEUE_SIZE,
    .config_size = VIRTIO_BLK_CFG_SIZE,
    .config_read = blk_config_read,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
};

/* ---- life cycle ---- */

struct blk *blk_create(struct disk *disk, const char *serial)
{
	struct blk *blk = calloc(1, sizeof(*blk));

	if (blk == NULL)
		return NULL;
	blk->reqs = calloc(BLK_QUEUE_SIZE, sizeof(*blk->reqs));
	if (blk->reqs == NULL) {
		free(blk);
		return NULL;
	}
	for (unsigned i = BLK_QUEUE_SIZE; i-- > 0;) {
		blk->reqs[i].blk = blk;
		blk_req_free(blk, &blk->reqs[i]);
	}
	blk->vdev.ops = disk->readonly ? &blk_ops_ro : &blk_ops_rw;
	blk->disk = disk;
	blk->capacity = disk->size / DISK_SECTOR;
	/* NUL-padded (calloc), not NUL-terminated when it is 20 long: as GET_ID wants. */
	if (serial != NULL)
		memcpy(blk->serial, serial, strnlen(serial, sizeof(blk->serial)));
	return blk;
}

void blk_destroy(struct blk *blk)
{
	if (blk == NULL)
		return;
	blk_quiesce(blk);
	free(blk->reqs);
	free(blk);
}

struct virtio_device *blk_virtio(struct blk *blk)
{
	return &blk->vdev;
}

int blk_watch_completions(struct blk *blk)
{
	return virtio_watch_fd(&blk->vdev, blk->disk->event_fd, blk_completions);
}

void blk_quiesce(struct blk *blk)
{
	blk->quiet = true;
	disk_drain(blk->disk);
	blk->quiet = false;
	blk->pushed = false;
	blk->stalled = false;
}

unsigned blk_inflight(const struct blk *blk)
{
	return blk->inflight;
}

void blk_get_stats(const struct blk *blk, struct blk_stats *out)
{
	const uint64_t *src = (const uint64_t *)&blk->stats;
	uint64_t *dst = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* ---- snapshots ---- */

void blk_save(struct blk *blk, struct blk_state *st)
{
	/* Answered, not dropped: the driver is waiting for these. */
	disk_drain(blk->disk);
	if (blk->pushed) {
		blk->pushed = false;
		virtio_queue_used(&blk->vdev, 0);
	}
	memset(st, 0, sizeof(*st));
	st->magic = BLK_STATE_MAGIC;
	st->version = BLK_STATE_VERSION;
	st->capacity = blk->capacity;
	st->readonly = blk->disk->readonly;
	memcpy(st->serial, blk->serial, sizeof(st->serial));
}

int blk_restore(struct blk *blk, const struct blk_state *st)
{
	static const uint8_t zero[3];

	if (st->magic != BLK_STATE_MAGIC || st->version != BLK_STATE_VERSION ||
	    memcmp(st->pad, zero, sizeof(st->pad)) != 0)
		return -EINVAL;
	/* The image may have been swapped or resized meanwhile: the guest would not notice. */
	if (st->capacity != blk->capacity || st->readonly != blk->disk->readonly ||
	    memcmp(st->serial, blk->serial, sizeof(st->serial)) != 0)
		return -EINVAL;
	return 0;
}
