/*
 * Split virtqueue parser, written from VIRTIO 1.2 section 2.7.
 *
 * Rules this file keeps, because the guest owns every byte of the rings and
 * another vCPU may rewrite them while we parse:
 * - every guest field is read exactly once, with an atomic load, into a local
 *   that is then checked and used (no double fetch, not even by the compiler);
 * - avail->idx is loaded with acquire semantics before the ring entries and
 *   descriptors it publishes; used entries are written before used->idx is
 *   stored with release semantics;
 * - every address goes through gpa_to_hva with its full length;
 * - every walk is bounded (loop detection), every sum is capped.
 */
#include "virtio/queue.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"

#define VQ_DESC_F_NEXT            1
#define VQ_DESC_F_WRITE           2
#define VQ_DESC_F_INDIRECT        4
#define VQ_AVAIL_F_NO_INTERRUPT   1
#define VQ_USED_F_NO_NOTIFY       1
#define VQ_DESC_SIZE              16u
/*
 * An indirect table may hold more entries than the queue size (Linux does so
 * when it has indirect descriptors), but it must stay bounded: walking it costs
 * device time. 32768 entries (512 KiB) is far beyond any real driver.
 */
#define VQ_MAX_INDIRECT           VQ_MAX_SIZE

/* The layouts of 2.7.5, 2.7.6 and 2.7.8: little-endian fields. */
struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* size entries, then used_event */
};

struct vq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vq_used {
	uint16_t flags;
	uint16_t idx;
	struct vq_used_elem ring[]; /* size entries, then avail_event */
};

/* The state of one vq_pop walk over a chain. */
struct vq_walk {
	struct virtqueue *vq;
	struct vq_chain *chain;
	unsigned max_iov;
	unsigned niov;    /* iovecs recorded */
	unsigned nread;   /* of which device-readable */
	uint64_t bytes;   /* sum of all lengths seen */
	bool seen_write;  /* a device-writable descriptor was seen */
	bool overflow;    /* more iovecs than max_iov */
};

static uint16_t vq_load16(const uint16_t *p, int order)
{
	return le16toh(__atomic_load_n(p, order));
}

static void vq_store16(uint16_t *p, uint16_t v, int order)
{
	__atomic_store_n(p, htole16(v), order);
}

static uint16_t *vq_used_event(struct virtqueue *vq)
{
	return &vq->avail->ring[vq->size];
}

static uint16_t *vq_avail_event(struct virtqueue *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

/* Marks the queue broken; only the first violation is logged, until reset. */
__attribute__((format(printf, 2, 3))) static int vq_violation(struct virtqueue *vq,
							       const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	if (vq->broken)
		return -EINVAL;
	vq->broken = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s: guest broke the virtqueue: %s; the device needs a reset",
		 vq->name != NULL ? vq->name : "virtqueue", msg);
	return -EINVAL;
}

/*
 * Reads one descriptor exactly once. The descriptor table is 16-byte aligned
 * (checked by vq_map), but an indirect table may sit at any address: then the
 * bytes are loaded one by one, still atomically, so a misaligned table is
 * neither undefined behaviour nor a double fetch.
 */
static void vq_fetch_desc(const struct vq_desc *src, struct vq_desc *d)
{
	if (((uintptr_t)src & 7) == 0) {
		d->addr = le64toh(__atomic_load_n(&src->addr, __ATOMIC_RELAXED));
		d->len = le32toh(__atomic_load_n(&src->len, __ATOMIC_RELAXED));
		d->flags = le16toh(__atomic_load_n(&src->flags, __ATOMIC_RELAXED));
		d->next = le16toh(__atomic_load_n(&src->next, __ATOMIC_RELAXED));
		return;
	}
	const uint8_t *p = (const uint8_t *)src;
	uint8_t raw[VQ_DESC_SIZE];

	for (unsigned i = 0; i < VQ_DESC_SIZE; i++)
		raw[i] = __atomic_load_n(&p[i], __ATOMIC_RELAXED);
	memcpy(d, raw, sizeof(*d));
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

/* Records one plain (not indirect) buffer of the chain. */
static int vq_add_buffer(struct vq_walk *w, const struct vq_desc *d)
{
	struct virtqueue *vq = w->vq;
	bool write = (d->flags & VQ_DESC_F_WRITE) != 0;
	void *hva;

	/* 2.7.4.2: device-writable buffers come after all device-readable ones. */
	if (!write && w->seen_write)
		return vq_violation(vq, "readable buffer after a writable one");
	w->seen_write |= write;
	w->bytes += d->len;
	if (w->bytes > VQ_MAX_CHAIN_BYTES)
		return vq_violation(vq, "chain longer than %u bytes", VQ_MAX_CHAIN_BYTES);
	/* Zero-length buffers carry nothing: skip them, whatever their address. */
	if (d->len == 0)
		return 0;
	hva = gpa_to_hva(vq->mem, d->addr, d->len);
	if (hva == NULL)
		return vq_violation(vq, "buffer 0x%llx+%u is not guest RAM",
				    (unsigned long long)d->addr, d->len);
	if (w->niov >= w->max_iov) {
		/* Keep walking: a chain must be well-formed to be handed back. */
		w->overflow = true;
		return 0;
	}
	w->chain->iov[w->niov].iov_base = hva;
	w->chain->iov[w->niov].iov_len = d->len;
	w->niov++;
	if (write) {
		w->chain->write_bytes += d->len;
	} else {
		w->chain->read_bytes += d->len;
		w->nread++;
	}
	return 0;
}

static int vq_walk_from(struct vq_walk *w, const struct vq_desc *table, uint32_t count,
			uint16_t first, bool nested);

/* Follows a descriptor with VIRTQ_DESC_F_INDIRECT into its table (2.7.5.3). */
static int vq_add_indirect(struct vq_walk *w, const struct vq_desc *d, bool nested)
{
	struct virtqueue *vq = w->vq;
	const struct vq_desc *table;

	if (!vq->indirect)
		return vq_violation(vq, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
	if (nested)
		return vq_violation(vq, "indirect descriptor inside an indirect table");
	if (d->flags & VQ_DESC_F_NEXT)
		return vq_violation(vq, "indirect descriptor with VIRTQ_DESC_F_NEXT");
	if (d->len == 0 || d->len % VQ_DESC_SIZE != 0 ||
	    d->len / VQ_DESC_SIZE > VQ_MAX_INDIRECT)
		return vq_violation(vq, "indirect table of %u bytes", d->len);
	table = gpa_to_hva(vq->mem, d->addr, d->len);
	if (table == NULL)
		return vq_violation(vq, "indirect table 0x%llx+%u is not guest RAM",
				    (unsigned long long)d->addr, d->len);
	return vq_walk_from(w, table, d->len / VQ_DESC_SIZE, 0, true);
}

/*
 * Walks one chain through a table of count descriptors starting at index 0
 * of an indirect table, or at the head already checked by vq_pop. A chain
 * can visit at most count descriptors: one more means a loop.
 */
static int vq_walk_from(struct vq_walk *w, const struct vq_desc *table, uint32_t count,
			uint16_t first, bool nested)
{
	struct vq_desc d;
	uint32_t i = first;
	int ret;

	for (uint32_t n = 0;; n++) {
		if (n == count)
			return vq_violation(w->vq, "descriptor chain loops");
		vq_fetch_desc(&table[i], &d);
		if (d.flags & VQ_DESC_F_INDIRECT)
			/* 2.7.5.3: an indirect descriptor ends the chain (NEXT is refused). */
			return vq_add_indirect(w, &d, nested);
		ret = vq_add_buffer(w, &d);
		if (ret < 0)
			return ret;
		if (!(d.flags & VQ_DESC_F_NEXT))
			return 0;
		if (d.next >= count)
			return vq_violation(w->vq, "next index %u out of %u descriptors", d.next,
					    count);
		i = d.next;
	}
}

/*
 * With EVENT_IDX, asks for a kick at the next buffer, then checks the ring
 * again: the full fence orders our avail_event store before the idx load, so
 * either we see the driver's new idx or the driver sees our avail_event.
 */
static uint16_t vq_rearm_event(struct virtqueue *vq)
{
	vq_store16(vq_avail_event(vq), vq->last_avail, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vq_load16(&vq->avail->idx, __ATOMIC_ACQUIRE);
}

/* Returns how many chains the driver published and we did not pop, or -EINVAL. */
static int vq_pending(struct virtqueue *vq)
{
	uint16_t idx = vq_load16(&vq->avail->idx, __ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(idx - vq->last_avail);

	if (pending == 0 && vq->event_idx && !vq->notify_disabled)
		pending = (uint16_t)(vq_rearm_event(vq) - vq->last_avail);
	/* The ring holds at most size entries: more means a bogus (or decremented) idx. */
	if (pending > vq->size)
		return vq_violation(vq, "available index %u is %u ahead of %u", idx, pending,
				    vq->last_avail);
	return pending;
}

int vq_pop(struct virtqueue *vq, struct vq_chain *chain, unsigned max_iov)
{
	struct vq_walk w = {.vq = vq, .chain = chain, .max_iov = max_iov};
	uint16_t head;
	int ret;

	if (!vq->ready)
		return 0;
	if (vq->broken)
		return -EINVAL;
	ret = vq_pending(vq);
	if (ret <= 0)
		return ret;
	/* Ordered after the acquire load of avail->idx in vq_pending. */
	head = vq_load16(&vq->avail->ring[vq->last_avail & (vq->size - 1)], __ATOMIC_RELAXED);
	if (head >= vq->size)
		return vq_violation(vq, "head index %u out of %u descriptors", head, vq->size);
	chain->head = head;
	chain->read_bytes = chain->write_bytes = 0;
	ret = vq_walk_from(&w, vq->desc, vq->size, head, false);
	if (ret < 0)
		return ret;
	vq->last_avail++;
	if (w.overflow) {
		chain->nread = chain->nwrite = 0;
		chain->read_bytes = chain->write_bytes = 0;
		return -ENOBUFS;
	}
	chain->nread = w.nread;
	chain->nwrite = w.niov - w.nread;
	return 1;
}
