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

#define VQ_DESC_F_NEXT		1
#define VQ_DESC_F_WRITE		2
#define VQ_DESC_F_INDIRECT	4
#define VQ_AVAIL_F_NO_INTERRUPT 1
#define VQ_USED_F_NO_NOTIFY	1
#define VQ_DESC_SIZE		16u
/*
 * An indirect table may hold more entries than the queue size (Linux does so
 * when it has indirect descriptors), but it must stay bounded: walking it costs
 * device time. 32768 entries (512 KiB) is far beyond any real driver.
 */
#define VQ_MAX_INDIRECT VQ_MAX_SIZE

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
	unsigned niov;	 /* iovecs recorded */
	unsigned nread;	 /* of which device-readable */
	uint64_t bytes;	 /* sum of all lengths seen */
	bool seen_write; /* a device-writable descriptor was seen */
	bool overflow;	 /* more iovecs than max_iov */
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

static int vq_violation(struct virtqueue *vq, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Marks the queue broken; only the first violation is logged, until reset,
 * and not even that once the device's log budget is spent.
 */
static int vq_violation(struct virtqueue *vq, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	if (vq->broken)
		return -EINVAL;
	vq->broken = true;
	if (vq->log_limit != NULL && !log_limit_open(vq->log_limit))
		return -EINVAL;
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
static void vq_fetch_desc(const uint8_t *p, struct vq_desc *d)
{
	if (((uintptr_t)p & 7) == 0) {
		const struct vq_desc *src = (const struct vq_desc *)p;

		d->addr = le64toh(__atomic_load_n(&src->addr, __ATOMIC_RELAXED));
		d->len = le32toh(__atomic_load_n(&src->len, __ATOMIC_RELAXED));
		d->flags = le16toh(__atomic_load_n(&src->flags, __ATOMIC_RELAXED));
		d->next = le16toh(__atomic_load_n(&src->next, __ATOMIC_RELAXED));
		return;
	}
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

static int vq_walk_from(struct vq_walk *w, const uint8_t *table, uint32_t count, uint16_t first,
			bool nested);

/* Follows a descriptor with VIRTQ_DESC_F_INDIRECT into its table (2.7.5.3). */
static int vq_add_indirect(struct vq_walk *w, const struct vq_desc *d, bool nested)
{
	struct virtqueue *vq = w->vq;
	const uint8_t *table;

	if (!vq->indirect)
		return vq_violation(vq, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
	if (nested)
		return vq_violation(vq, "indirect descriptor inside an indirect table");
	if (d->flags & VQ_DESC_F_NEXT)
		return vq_violation(vq, "indirect descriptor with VIRTQ_DESC_F_NEXT");
	if (d->len == 0 || d->len % VQ_DESC_SIZE != 0 || d->len / VQ_DESC_SIZE > VQ_MAX_INDIRECT)
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
static int vq_walk_from(struct vq_walk *w, const uint8_t *table, uint32_t count, uint16_t first,
			bool nested)
{
	struct vq_desc d;
	uint32_t i = first;
	int ret;

	for (uint32_t n = 0;; n++) {
		if (n == count)
			return vq_violation(w->vq, "descriptor chain loops");
		vq_fetch_desc(table + (size_t)i * VQ_DESC_SIZE, &d);
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
	uint16_t pending;

	if (idx == vq->last_avail && vq->event_idx && !vq->notify_disabled)
		idx = vq_rearm_event(vq);
	pending = (uint16_t)(idx - vq->last_avail);
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
	/*
	 * A driver has only size descriptors: one more chain while size are
	 * outstanding reuses a head the device still owns. Refusing it also bounds
	 * what a device holds per request.
	 */
	if ((uint16_t)(vq->last_avail - vq->used_idx) >= vq->size)
		return vq_violation(vq, "more than %u chains in flight", vq->size);
	/* Ordered after the acquire load of avail->idx in vq_pending. */
	head = vq_load16(&vq->avail->ring[vq->last_avail & (vq->size - 1)], __ATOMIC_RELAXED);
	if (head >= vq->size)
		return vq_violation(vq, "head index %u out of %u descriptors", head, vq->size);
	chain->head = head;
	chain->read_bytes = chain->write_bytes = 0;
	ret = vq_walk_from(&w, (const uint8_t *)vq->desc, vq->size, head, false);
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

/* Checks the ring geometry and resolves the host addresses, touching nothing. */
static int vq_map(struct virtqueue *vq, const struct guest_memory *mem, uint16_t size,
		  uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa)
{
	if (size == 0 || size > VQ_MAX_SIZE || (size & (size - 1)) != 0)
		return -EINVAL;
	/* 2.7: alignments 16, 2 and 4; sizes include used_event and avail_event. */
	if (desc_gpa % 16 != 0 || avail_gpa % 2 != 0 || used_gpa % 4 != 0)
		return -EINVAL;
	vq->desc = gpa_to_hva(mem, desc_gpa, (uint64_t)VQ_DESC_SIZE * size);
	vq->avail = gpa_to_hva(mem, avail_gpa, 6 + 2 * (uint64_t)size);
	vq->used = gpa_to_hva(mem, used_gpa, 6 + 8 * (uint64_t)size);
	if (vq->desc == NULL || vq->avail == NULL || vq->used == NULL)
		return -EINVAL;
	vq->mem = mem;
	vq->size = size;
	vq->desc_gpa = desc_gpa;
	vq->avail_gpa = avail_gpa;
	vq->used_gpa = used_gpa;
	return 0;
}

int vq_setup(struct virtqueue *vq, const struct guest_memory *mem, uint16_t size, uint64_t desc_gpa,
	     uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect)
{
	vq_reset(vq);
	if (vq_map(vq, mem, size, desc_gpa, avail_gpa, used_gpa) != 0) {
		vq_reset(vq);
		return -EINVAL;
	}
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	vq->ready = true;
	/* The device area is ours: start with kicks wanted for the first buffer. */
	vq_store16(&vq->used->flags, 0, __ATOMIC_RELAXED);
	vq_store16(&vq->used->idx, 0, __ATOMIC_RELEASE);
	if (event_idx)
		vq_store16(vq_avail_event(vq), 0, __ATOMIC_RELAXED);
	return 0;
}

void vq_reset(struct virtqueue *vq)
{
	const char *name = vq->name;
	const struct log_limit *log_limit = vq->log_limit;

	memset(vq, 0, sizeof(*vq));
	vq->name = name;
	vq->log_limit = log_limit;
}

int vq_push(struct virtqueue *vq, uint16_t head, uint32_t written)
{
	struct vq_used_elem *e;

	/* Chains outstanding = popped - pushed; both counters are free-running. */
	if (!vq->ready || vq->broken || head >= vq->size ||
	    (uint16_t)(vq->last_avail - vq->used_idx) == 0)
		return -EINVAL;
	e = &vq->used->ring[vq->used_idx & (vq->size - 1)];
	__atomic_store_n(&e->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, htole32(written), __ATOMIC_RELAXED);
	vq->used_idx++;
	/* 2.7.8.2: the entry (and the buffer contents) before the index. */
	vq_store16(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
	return 0;
}

bool vq_should_notify(struct virtqueue *vq)
{
	uint16_t old = vq->signalled_used, now = vq->used_idx;
	bool valid = vq->signalled_valid;

	if (!vq->ready || (valid && old == now))
		return false;
	/* Our used->idx store must be visible before we read the driver's wish. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->signalled_used = now;
	vq->signalled_valid = true;
	if (!vq->event_idx)
		return !(vq_load16(&vq->avail->flags, __ATOMIC_RELAXED) & VQ_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	/* 2.7.7.2: notify if an entry was written at index used_event, i.e. if
	 * used_event lies in [old, now) modulo 2^16. */
	uint16_t event = vq_load16(vq_used_event(vq), __ATOMIC_RELAXED);

	return (uint16_t)(event - old) < (uint16_t)(now - old);
}

bool vq_has_avail(struct virtqueue *vq)
{
	if (!vq->ready || vq->broken)
		return false;
	return vq_load16(&vq->avail->idx, __ATOMIC_ACQUIRE) != vq->last_avail;
}

void vq_disable_notify(struct virtqueue *vq)
{
	if (!vq->ready)
		return;
	vq->notify_disabled = true;
	/* With EVENT_IDX the driver kicks only when it passes avail_event, which
	 * vq_pop stops moving; without it, the used ring flag says so. */
	if (!vq->event_idx)
		vq_store16(&vq->used->flags, VQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

bool vq_enable_notify(struct virtqueue *vq)
{
	if (!vq->ready)
		return false;
	vq->notify_disabled = false;
	if (vq->event_idx)
		vq_store16(vq_avail_event(vq), vq->last_avail, __ATOMIC_RELAXED);
	else
		vq_store16(&vq->used->flags, 0, __ATOMIC_RELAXED);
	/* As in vq_rearm_event: either we see the new buffers or the driver kicks. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vq_has_avail(vq);
}

/* Copies between a linear buffer and the bytes at offset within iov[0, n). */
static size_t vq_iov_copy(const struct iovec *iov, unsigned n, size_t offset, uint8_t *buf,
			  size_t len, bool to_iov)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		if (offset >= iov[i].iov_len) {
			offset -= iov[i].iov_len;
			continue;
		}
		uint8_t *p = (uint8_t *)iov[i].iov_base + offset;
		size_t chunk = iov[i].iov_len - offset;

		if (chunk > len - done)
			chunk = len - done;
		if (to_iov)
			memcpy(p, buf + done, chunk);
		else
			memcpy(buf + done, p, chunk);
		done += chunk;
		offset = 0;
	}
	return done;
}

size_t vq_iov_read(const struct iovec *iov, unsigned n, size_t offset, void *dst, size_t len)
{
	return vq_iov_copy(iov, n, offset, dst, len, false);
}

size_t vq_iov_write(const struct iovec *iov, unsigned n, size_t offset, const void *src, size_t len)
{
	/* The cast is safe: with to_iov, buf is only read. */
	return vq_iov_copy(iov, n, offset, (uint8_t *)(uintptr_t)src, len, true);
}

void vq_save(const struct virtqueue *vq, struct vq_state *st)
{
	memset(st, 0, sizeof(*st));
	st->ready = vq->ready;
	if (!vq->ready)
		return;
	st->desc_gpa = vq->desc_gpa;
	st->avail_gpa = vq->avail_gpa;
	st->used_gpa = vq->used_gpa;
	st->size = vq->size;
	st->last_avail = vq->last_avail;
	st->used_idx = vq->used_idx;
	st->signalled_used = vq->signalled_used;
	st->event_idx = vq->event_idx;
	st->indirect = vq->indirect;
	st->signalled_valid = vq->signalled_valid;
	st->notify_disabled = vq->notify_disabled;
	st->broken = vq->broken;
}

/* A saved state is untrusted input: booleans are 0 or 1, counters consistent. */
static bool vq_state_valid(const struct vq_state *st)
{
	const uint8_t flags[] = {st->event_idx, st->indirect, st->signalled_valid,
				 st->notify_disabled, st->broken};

	for (size_t i = 0; i < sizeof(flags); i++)
		if (flags[i] > 1)
			return false;
	return (uint16_t)(st->last_avail - st->used_idx) <= st->size;
}

int vq_restore(struct virtqueue *vq, const struct guest_memory *mem, const struct vq_state *st)
{
	vq_reset(vq);
	if (st->ready > 1)
		return -EINVAL;
	if (!st->ready)
		return 0;
	/* Guest RAM is restored with the queue: map it, but write nothing. */
	if (!vq_state_valid(st) ||
	    vq_map(vq, mem, st->size, st->desc_gpa, st->avail_gpa, st->used_gpa) != 0) {
		vq_reset(vq);
		return -EINVAL;
	}
	vq->event_idx = st->event_idx;
	vq->indirect = st->indirect;
	vq->last_avail = st->last_avail;
	vq->used_idx = st->used_idx;
	vq->signalled_used = st->signalled_used;
	vq->signalled_valid = st->signalled_valid;
	vq->notify_disabled = st->notify_disabled;
	vq->broken = st->broken;
	vq->ready = true;
	return 0;
}
