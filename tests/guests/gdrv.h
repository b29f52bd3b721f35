/*
 * gdrv: a tiny freestanding virtio-pci driver for the hostile guests, which
 * run at CPL3 with port I/O open (see README.md). PCI configuration through
 * mechanism #1 (0xCF8/0xCFC), the virtio capabilities, the common
 * configuration, split rings in guest memory (identity-mapped), 16-bit queue
 * notifications, polling of the used ring and device_status. Written from
 * VIRTIO 1.2 (4.1, 2.7), not from src/virtio.
 *
 * Nothing here trusts the device either: every wait is bounded by the TSC.
 */
#ifndef TABIQUE_TESTS_GDRV_H
#define TABIQUE_TESTS_GDRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostile.h"

/* Split ring flags (2.7.5) and layouts. */
#define GD_F_NEXT     1
#define GD_F_WRITE    2
#define GD_F_INDIRECT 4

/* Device status (2.1). */
#define GD_ACK	       0x01
#define GD_DRIVER      0x02
#define GD_DRIVER_OK   0x04
#define GD_FEATURES_OK 0x08
#define GD_NEEDS_RESET 0x40

/* struct virtio_pci_common_cfg (4.1.4.3), offsets. */
#define GD_DFSELECT   0x00
#define GD_DF	      0x04
#define GD_GFSELECT   0x08
#define GD_GF	      0x0c
#define GD_MSIX	      0x10
#define GD_NUMQ	      0x12
#define GD_STATUS     0x14
#define GD_QSELECT    0x16
#define GD_QSIZE      0x18
#define GD_QMSIX      0x1a
#define GD_QENABLE    0x1c
#define GD_QNOFF      0x1e
#define GD_QDESC      0x20
#define GD_QAVAIL     0x28
#define GD_QUSED      0x30
#define GD_COMMON_LEN 0x40

#define GD_F_INDIRECT_DESC (1ULL << 28)
#define GD_F_EVENT_IDX	   (1ULL << 29)
#define GD_F_VERSION_1	   (1ULL << 32)

#define GD_MAX_QUEUES 3
#define GD_NO_VECTOR  0xffff

struct gd_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct gd_used_elem {
	uint32_t id;
	uint32_t len;
};

/* One queue as the driver sees it; the rings are at GD_DEV_BASE + ... unless moved. */
struct gq {
	uint16_t size;
	uint16_t avail_idx; /* next avail->idx to publish (free-running) */
	uint16_t used_seen; /* used entries consumed (free-running) */
	uint64_t desc, avail, used;
	uint64_t notify; /* address of this queue's notification */
	uint64_t buf;	 /* this queue's share of the device's buffer space */
};

struct gdev {
	uint16_t type; /* virtio device type */
	unsigned slot;
	uint64_t bar;
	uint64_t common, isr, device, notify_base; /* absolute addresses */
	uint32_t notify_mult;
	uint8_t cfg_cap, msix_cap; /* configuration offsets of those capabilities */
	unsigned nq;
	uint64_t mem; /* its MiB of rings and buffers */
	struct gq q[GD_MAX_QUEUES];
};

/* ---- CPU ---- */

static inline void gd_barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

static inline uint64_t gd_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static inline void gd_outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t gd_inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void gd_outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint16_t gd_inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void gd_outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t gd_inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* ---- memory and MMIO: one access of exactly that width ---- */

#define GD_RW(bits)                                                                                \
	static inline uint##bits##_t gd_r##bits(uint64_t a)                                        \
	{                                                                                          \
		return *(volatile uint##bits##_t *)a;                                              \
	}                                                                                          \
	static inline void gd_w##bits(uint64_t a, uint##bits##_t v)                                \
	{                                                                                          \
		*(volatile uint##bits##_t *)a = v;                                                 \
	}
GD_RW(8)
GD_RW(16)
GD_RW(32)
GD_RW(64)
#undef GD_RW

void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* ---- the runner ---- */

/* Tells the runner an attack starts: type is the device that must go NEEDS_RESET, or 0. */
void gd_step(unsigned id, unsigned type);
void gd_note(uint32_t v);
const struct hostile_params *gd_params(void);

/* ---- PCI configuration, mechanism #1, bus 0 ---- */

uint32_t gd_cfg_read(unsigned slot, unsigned reg, unsigned len);
void gd_cfg_write(unsigned slot, unsigned reg, uint32_t v, unsigned len);

/* ---- virtio-pci ---- */

/*
 * Finds the nth (0-based) device of this type on bus 0, turns on memory
 * decoding and bus mastering and reads its capabilities. mem is the MiB it
 * gets for rings and buffers. Returns 0 or -1.
 */
int gd_find(struct gdev *d, uint16_t type, unsigned nth, uint64_t mem);
/* Re-reads BAR 0 and the capabilities (after the guest moved the BAR). */
int gd_rescan(struct gdev *d);

uint8_t gd_status(const struct gdev *d);
void gd_set_status(const struct gdev *d, uint8_t s);
/* Writes 0 and waits until the device reads back 0. Returns 0 or -1. */
int gd_reset(const struct gdev *d);

/*
 * Reset, ACKNOWLEDGE, DRIVER, features (want & offered, with VERSION_1),
 * FEATURES_OK, nq queues of size qsize (0: the device's maximum) at their
 * default place, DRIVER_OK. Returns 0 or -1.
 */
int gd_start(struct gdev *d, uint64_t want, unsigned nq, uint16_t qsize);
/* The steps of gd_start, for attacks that stop half-way. */
int gd_negotiate(struct gdev *d, uint64_t want);
/* Programs queue q (size, rings) without enabling it; zeroes the rings. */
void gd_queue_program(struct gdev *d, unsigned q, uint16_t size, uint64_t desc, uint64_t avail,
		      uint64_t used);
void gd_queue_default(struct gdev *d, unsigned q, uint16_t size);
void gd_queue_enable(const struct gdev *d, unsigned q);
uint16_t gd_queue_max(const struct gdev *d, unsigned q);

/* Waits about ms milliseconds (the TSC's rate is a guess: 1-4 GHz). */
void gd_delay_ms(unsigned ms);

/* Waits (bounded) until the device sets NEEDS_RESET. */
bool gd_wait_needs_reset(const struct gdev *d);

/* ---- split rings ---- */

void gq_desc(struct gq *q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
/* Publishes head in the avail ring (without a notification). */
void gq_publish(struct gq *q, uint16_t head);
void gd_kick(const struct gdev *d, unsigned q);
/* Waits for the next used entry: returns its id (and *len), or -1 after the timeout. */
int gq_wait(struct gq *q, uint32_t *len);
/* Whether used->idx moved past what we consumed (no waiting). */
bool gq_has_used(const struct gq *q);

/* ---- good requests: the proof that a device works ---- */

/* rng: len random bytes into a buffer that was zero. Returns 0 or a check number. */
int gd_rng_good(struct gdev *d);
/* blk: one request of type, sector, len bytes at buf; returns the status byte or -1. */
int gd_blk_req(struct gdev *d, uint32_t type, uint64_t sector, uint64_t buf, uint32_t len);
/* blk: writes a pattern to a sector and reads it back. Returns 0 or a check number. */
int gd_blk_good(struct gdev *d);
/* net: posts receive buffers, sends a frame, gets it back. Returns 0 or a check number. */
int gd_net_good(struct gdev *d);
/* vsock: a REQUEST to a port nobody listens on comes back as RST. Returns 0 or a check number. */
int gd_vsock_good(struct gdev *d);
/* The good request of d's type, on queues set up already. Returns 0 or a check number. */
int gd_works(struct gdev *d);
/* Sets a device up properly (gd_setup) and proves it works. Returns 0 or a check number. */
int gd_good(struct gdev *d);
int gd_setup(struct gdev *d);

/* vsock packets: the 44-byte header, little-endian (5.10.6). */
#define GD_VSOCK_HDR 44
void gd_vsock_hdr(uint8_t *h, uint64_t src_cid, uint64_t dst_cid, uint32_t src_port,
		  uint32_t dst_port, uint32_t len, uint16_t op);
#define GD_VSOCK_OP_REQUEST	  1
#define GD_VSOCK_OP_RESPONSE	  2
#define GD_VSOCK_OP_RST		  3
#define GD_VSOCK_OP_SHUTDOWN	  4
#define GD_VSOCK_OP_RW		  5
#define GD_VSOCK_OP_CREDIT_UPDATE 6

/* What each hostile guest defines: runs on every vCPU; its result ends the guest. */
uint32_t guest_main(uint64_t cpu);

/* Ends the guest: result 0 = pass. */
__attribute__((noreturn)) void gd_done(uint32_t result);

#endif
