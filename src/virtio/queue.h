/*
 * Split virtqueues (VIRTIO 1.2, 2.7): the one audited parser of the rings a
 * guest shares with a virtio device. Every value in the rings is hostile: it
 * is read exactly once, checked, and only then used; any violation marks the
 * queue broken and the device must then go DEVICE_NEEDS_RESET.
 *
 * A queue is not thread-safe: one thread at a time pops and pushes (the
 * device's queue thread). Packed rings are not supported: never offer
 * VIRTIO_F_RING_PACKED.
 */
#ifndef TABIQUE_VIRTIO_QUEUE_H
#define TABIQUE_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/memory.h"

/* Largest queue size the split ring allows (2.7: Queue Size <= 32768). */
#define VQ_MAX_SIZE 32768
/* Cap on the bytes of one chain, so no sum of lengths can overflow a uint32_t. */
#define VQ_MAX_CHAIN_BYTES (256u << 20)

/* Feature bits the queue implements; the transport offers them. */
#define VQ_F_INDIRECT_DESC 28
#define VQ_F_EVENT_IDX	   29

/*
 * One popped request. iov[0, nread) are the buffers the device reads
 * (driver -> device), iov[nread, nread + nwrite) the buffers it writes. The
 * iovecs point into guest RAM (already translated and bounds-checked), so a
 * chain can go straight to preadv/writev/io_uring; the guest may change that
 * memory at any time, so copy what you check (see vq_iov_read).
 */
struct vq_chain {
	uint16_t head;	      /* give it back with vq_push */
	unsigned nread;	      /* readable iovecs */
	unsigned nwrite;      /* writable iovecs, after the readable ones */
	uint32_t read_bytes;  /* sum of the readable lengths */
	uint32_t write_bytes; /* sum of the writable lengths */
	struct iovec *iov;    /* the caller's array, set before vq_pop */
};

struct vq_desc;
struct vq_avail;
struct vq_used;
struct log_limit;

struct virtqueue {
	const char *name; /* for log messages; set by the device, kept by setup/reset */
	/*
	 * The device's budget of guest-caused messages, kept by setup/reset
	 * like name: a violation is described only while the budget is open
	 * (the transport spends it on the NEEDS_RESET it causes). NULL: always.
	 */
	const struct log_limit *log_limit;
	const struct guest_memory *mem;
	bool ready;    /* vq_setup succeeded and no vq_reset since */
	uint16_t size; /* power of two, 1..VQ_MAX_SIZE */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx;		 /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;		 /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint16_t last_avail;	 /* next avail ring slot to pop (free-running) */
	uint16_t used_idx;	 /* our copy of used->idx (free-running) */
	uint16_t signalled_used; /* used_idx at the last interrupt decision */
	bool signalled_valid;	 /* false: the next decision must not be suppressed */
	bool notify_disabled;	 /* vq_disable_notify in effect */
	bool broken;		 /* a violation was seen: the device must go NEEDS_RESET */
	/* Host addresses of the rings, resolved once by vq_setup. */
	struct vq_desc *desc;
	struct vq_avail *avail;
	struct vq_used *used;
};

/*
 * Enables the queue: checks size (power of two, 1..VQ_MAX_SIZE) and that the
 * descriptor table (16-byte aligned), the available ring (2) and the used ring
 * (4) lie wholly in guest RAM, with room for used_event/avail_event. Indices
 * start at 0. Returns 0, or -EINVAL and leaves the queue not ready.
 */
int vq_setup(struct virtqueue *vq, const struct guest_memory *mem, uint16_t size, uint64_t desc_gpa,
	     uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect);

/* Disables the queue and forgets all state except vq->name and vq->log_limit (device reset). */
void vq_reset(struct virtqueue *vq);

/*
 * Pops the next available chain into chain->iov (capacity max_iov).
 * Zero-length buffers are allowed and skipped: they take no iovec. Limits
 * beyond the spec's: VQ_MAX_CHAIN_BYTES per chain, VQ_MAX_SIZE entries per
 * indirect table (which may exceed the queue size, as Linux does).
 * Returns:
 *   1        a chain was popped; give it back with vq_push(head, written);
 *   0        the ring is empty, or the queue is not ready;
 *   -ENOBUFS the chain needs more than max_iov iovecs: it is consumed
 *            (chain->head is valid, nread = nwrite = 0), the queue stays
 *            usable; the device must vq_push(head, 0) it back (or fail);
 *   -EINVAL  a violation, or the queue was already broken: vq->broken is
 *            set (logged once), nothing is consumed. Popping a chain while
 *            size chains are outstanding is one: the driver reused a head.
 */
int vq_pop(struct virtqueue *vq, struct vq_chain *chain, unsigned max_iov);

/*
 * Gives a popped chain back through the used ring, with the number of bytes
 * the device wrote into it. Returns 0, or -EINVAL when the queue is not ready
 * or broken, head is out of range or nothing is outstanding (a device bug).
 */
int vq_push(struct virtqueue *vq, uint16_t head, uint32_t written);

/*
 * After one or more pushes: whether the driver wants an interrupt now
 * (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX). False when
 * nothing was pushed since the last call that returned true.
 */
bool vq_should_notify(struct virtqueue *vq);

/* Whether the driver made buffers available that vq_pop has not taken. */
bool vq_has_avail(struct virtqueue *vq);

/*
 * Asks the driver not to kick while the device is busy popping
 * (VIRTQ_USED_F_NO_NOTIFY, or avail_event with EVENT_IDX). Only a hint.
 */
void vq_disable_notify(struct virtqueue *vq);

/*
 * Asks for kicks again. Returns true when buffers arrived meanwhile: the
 * device must then keep popping, as no kick will come for them.
 */
bool vq_enable_notify(struct virtqueue *vq);

/*
 * Copies len bytes at offset within the buffers iov[0, n) to dst, or from
 * src into them. Returns the number of bytes copied: less than len when the
 * buffers end first.
 */
size_t vq_iov_read(const struct iovec *iov, unsigned n, size_t offset, void *dst, size_t len);
size_t vq_iov_write(const struct iovec *iov, unsigned n, size_t offset, const void *src,
		    size_t len);

/* The queue state for snapshots and migration: fixed layout, little-endian host. */
struct vq_state {
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t size;
	uint16_t last_avail;
	uint16_t used_idx;
	uint16_t signalled_used;
	uint8_t ready;
	uint8_t event_idx;
	uint8_t indirect;
	uint8_t signalled_valid;
	uint8_t notify_disabled;
	uint8_t broken;
	uint8_t pad[6];
};

void vq_save(const struct virtqueue *vq, struct vq_state *st);

/*
 * Restores a saved queue onto mem, checking the state as untrusted input
 * (as vq_setup does, and at most size chains outstanding). Returns 0, or
 * -EINVAL and leaves the queue not ready.
 */
int vq_restore(struct virtqueue *vq, const struct guest_memory *mem, const struct vq_state *st);

#endif
