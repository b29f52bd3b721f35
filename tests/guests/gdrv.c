/*
 * gdrv: the freestanding virtio-pci driver of the hostile guests (gdrv.h).
 * Runs at CPL3: in/out for configuration space, loads and stores for the
 * BAR and the rings. Keep it small and obvious: it is the yardstick the
 * attacks are measured against.
 */
#include "gdrv.h"

#include "arch/x86/layout.h"

#define GD_VENDOR	  0x1af4
#define GD_DEVICE_BASE	  0x1040
#define GD_CAP_VNDR	  0x09
#define GD_CAP_MSIX	  0x11
#define GD_CAP_COMMON	  1
#define GD_CAP_NOTIFY	  2
#define GD_CAP_ISR	  3
#define GD_CAP_DEVICE	  4
#define GD_CAP_PCI	  5
#define GD_CMD_MEM_MASTER 0x6
/* Seconds on any host this runs on, busy or not; a device that takes longer is broken. */
#define GD_TIMEOUT_TSC	(1ULL << 33)
#define GD_STATUS_POLLS 200000

/*
 * Entered from entry.S at CPL3 with RSI = the vCPU index and a 16-byte
 * aligned stack; C wants it 8 off, which the call does.
 */
__asm__(".pushsection .text\n"
	".globl user_main\n"
	"user_main:\n"
	"	and $-16, %rsp\n"
	"	mov %rsi, %rdi\n"
	"	call guest_main\n"
	"	mov %eax, %edi\n"
	"	call gd_done\n"
	".popsection\n");

void gd_done(uint32_t result)
{
	__asm__ volatile("jmp guest_done" : : "a"(result));
	__builtin_unreachable();
}

/* The compiler may call these for struct copies even when freestanding. */
void *memset(void *s, int c, size_t n)
{
	uint8_t *p = s;

	while (n-- > 0)
		*p++ = (uint8_t)c;
	return s;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	while (n-- > 0)
		*d++ = *s++;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

void gd_step(unsigned id, unsigned type)
{
	gd_outl(HOSTILE_PORT_STEP, HOSTILE_STEP(id, type));
}

void gd_note(uint32_t v)
{
	gd_outl(HOSTILE_PORT_NOTE, v);
}

const struct hostile_params *gd_params(void)
{
	return (const struct hostile_params *)(uintptr_t)HOSTILE_PARAMS;
}

/* ---- PCI configuration ---- */

static void gd_cfg_select(unsigned slot, unsigned reg)
{
	gd_outl(PORT_PCI_CONFIG_ADDRESS, 0x80000000u | slot << 11 | (reg & 0xfc));
}

uint32_t gd_cfg_read(unsigned slot, unsigned reg, unsigned len)
{
	uint16_t port = (uint16_t)(PORT_PCI_CONFIG_DATA + (reg & 3));

	gd_cfg_select(slot, reg);
	if (len == 1)
		return gd_inb(port);
	if (len == 2)
		return gd_inw(port);
	return gd_inl(port);
}

void gd_cfg_write(unsigned slot, unsigned reg, uint32_t v, unsigned len)
{
	uint16_t port = (uint16_t)(PORT_PCI_CONFIG_DATA + (reg & 3));

	gd_cfg_select(slot, reg);
	if (len == 1)
		gd_outb(port, (uint8_t)v);
	else if (len == 2)
		gd_outw(port, (uint16_t)v);
	else
		gd_outl(port, v);
}

/* ---- virtio-pci ---- */

/* One vendor capability: where its structure lives in BAR 0. */
static void gd_vendor_cap(struct gdev *d, uint8_t cap)
{
	uint8_t type = (uint8_t)gd_cfg_read(d->slot, cap + 3u, 1);
	uint64_t at = d->bar + gd_cfg_read(d->slot, cap + 8u, 4);

	if (type == GD_CAP_COMMON)
		d->common = at;
	else if (type == GD_CAP_ISR)
		d->isr = at;
	else if (type == GD_CAP_DEVICE)
		d->device = at;
	else if (type == GD_CAP_PCI)
		d->cfg_cap = cap;
	else if (type == GD_CAP_NOTIFY) {
		d->notify_base = at;
		d->notify_mult = gd_cfg_read(d->slot, cap + 16u, 4);
	}
}

int gd_rescan(struct gdev *d)
{
	uint8_t cap;
	unsigned n = 0;

	d->bar = (gd_cfg_read(d->slot, 0x10, 4) & ~0xfULL) | (uint64_t)gd_cfg_read(d->slot, 0x14, 4)
								 << 32;
	d->common = d->isr = d->device = d->notify_base = 0;
	for (cap = (uint8_t)gd_cfg_read(d->slot, 0x34, 1); cap != 0 && n < 48; n++) {
		uint8_t id = (uint8_t)gd_cfg_read(d->slot, cap, 1);

		if (id == GD_CAP_VNDR)
			gd_vendor_cap(d, cap);
		else if (id == GD_CAP_MSIX)
			d->msix_cap = cap;
		cap = (uint8_t)gd_cfg_read(d->slot, cap + 1u, 1);
	}
	return d->common && d->isr && d->notify_base ? 0 : -1;
}

int gd_find(struct gdev *d, uint16_t type, unsigned nth, uint64_t mem)
{
	uint32_t want = (uint32_t)(GD_DEVICE_BASE + type) << 16 | GD_VENDOR;

	memset(d, 0, sizeof(*d));
	d->type = type;
	d->mem = mem;
	for (unsigned slot = 1; slot < 32; slot++) {
		if (gd_cfg_read(slot, 0, 4) != want || nth-- > 0)
			continue;
		d->slot = slot;
		gd_cfg_write(slot, 4, GD_CMD_MEM_MASTER, 2);
		if (gd_rescan(d) != 0)
			return -1;
		d->nq = gd_r16(d->common + GD_NUMQ);
		return d->nq >= 1 && d->nq <= GD_MAX_QUEUES ? 0 : -1;
	}
	return -1;
}

uint8_t gd_status(const struct gdev *d)
{
	return gd_r8(d->common + GD_STATUS);
}

void gd_set_status(const struct gdev *d, uint8_t s)
{
	gd_w8(d->common + GD_STATUS, s);
}

int gd_reset(const struct gdev *d)
{
	gd_set_status(d, 0);
	for (unsigned i = 0; i < GD_STATUS_POLLS; i++)
		if (gd_status(d) == 0)
			return 0;
	return -1;
}

void gd_delay_ms(unsigned ms)
{
	uint64_t end = gd_rdtsc() + (uint64_t)ms * 2000000;

	while (gd_rdtsc() < end)
		__asm__ volatile("pause");
}

bool gd_wait_needs_reset(const struct gdev *d)
{
	uint64_t end = gd_rdtsc() + GD_TIMEOUT_TSC;

	while (gd_rdtsc() < end)
		if (gd_status(d) & GD_NEEDS_RESET)
			return true;
	return false;
}

static uint64_t gd_features(const struct gdev *d)
{
	uint64_t f;

	gd_w32(d->common + GD_DFSELECT, 0);
	f = gd_r32(d->common + GD_DF);
	gd_w32(d->common + GD_DFSELECT, 1);
	return f | (uint64_t)gd_r32(d->common + GD_DF) << 32;
}

int gd_negotiate(struct gdev *d, uint64_t want)
{
	uint64_t f;

	if (gd_reset(d) != 0)
		return -1;
	gd_set_status(d, GD_ACK);
	gd_set_status(d, GD_ACK | GD_DRIVER);
	f = (gd_features(d) & want) | GD_F_VERSION_1;
	gd_w32(d->common + GD_GFSELECT, 0);
	gd_w32(d->common + GD_GF, (uint32_t)f);
	gd_w32(d->common + GD_GFSELECT, 1);
	gd_w32(d->common + GD_GF, (uint32_t)(f >> 32));
	gd_set_status(d, GD_ACK | GD_DRIVER | GD_FEATURES_OK);
	return gd_status(d) & GD_FEATURES_OK ? 0 : -1;
}

uint16_t gd_queue_max(const struct gdev *d, unsigned q)
{
	gd_w16(d->common + GD_QSELECT, (uint16_t)q);
	return gd_r16(d->common + GD_QSIZE);
}

void gd_queue_program(struct gdev *d, unsigned q, uint16_t size, uint64_t desc, uint64_t avail,
		      uint64_t used)
{
	struct gq *g = &d->q[q];

	gd_w16(d->common + GD_QSELECT, (uint16_t)q);
	gd_w16(d->common + GD_QSIZE, size);
	g->notify = d->notify_base + (uint64_t)gd_r16(d->common + GD_QNOFF) * d->notify_mult;
	gd_w64(d->common + GD_QDESC, desc);
	gd_w32(d->common + GD_QAVAIL, (uint32_t)avail);
	gd_w32(d->common + GD_QAVAIL + 4, (uint32_t)(avail >> 32));
	gd_w32(d->common + GD_QUSED, (uint32_t)used);
	gd_w32(d->common + GD_QUSED + 4, (uint32_t)(used >> 32));
	g->size = size;
	g->desc = desc;
	g->avail = avail;
	g->used = used;
	g->avail_idx = g->used_seen = 0;
	g->buf = d->mem + GD_BUF_OFF + (uint64_t)q * 0x40000;
}

/* The rings of queue q at their place in the device's MiB, zeroed. */
void gd_queue_default(struct gdev *d, unsigned q, uint16_t size)
{
	uint64_t ring = d->mem + (uint64_t)q * GD_RING_SIZE;

	memset((void *)(uintptr_t)ring, 0, GD_RING_SIZE);
	gd_queue_program(d, q, size, ring, ring + 0x1000, ring + 0x2000);
}

void gd_queue_enable(const struct gdev *d, unsigned q)
{
	gd_w16(d->common + GD_QSELECT, (uint16_t)q);
	gd_w16(d->common + GD_QENABLE, 1);
}

int gd_start(struct gdev *d, uint64_t want, unsigned nq, uint16_t qsize)
{
	if (gd_negotiate(d, want) != 0)
		return -1;
	for (unsigned q = 0; q < nq; q++) {
		gd_queue_default(d, q, qsize ? qsize : gd_queue_max(d, q));
		gd_queue_enable(d, q);
	}
	gd_set_status(d, GD_ACK | GD_DRIVER | GD_FEATURES_OK | GD_DRIVER_OK);
	return gd_status(d) == (GD_ACK | GD_DRIVER | GD_FEATURES_OK | GD_DRIVER_OK) ? 0 : -1;
}

/* ---- split rings ---- */

void gq_desc(struct gq *q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	volatile struct gd_desc *d = (volatile struct gd_desc *)(uintptr_t)q->desc + i;

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

void gq_publish(struct gq *q, uint16_t head)
{
	volatile uint16_t *avail = (volatile uint16_t *)(uintptr_t)q->avail;

	avail[2 + q->avail_idx % q->size] = head;
	gd_barrier(); /* x86 keeps stores in order: the entry before the index */
	avail[1] = ++q->avail_idx;
}

void gd_kick(const struct gdev *d, unsigned q)
{
	gd_w16(d->q[q].notify, (uint16_t)q);
}

bool gq_has_used(const struct gq *q)
{
	return gd_r16(q->used + 2) != q->used_seen;
}

int gq_wait(struct gq *q, uint32_t *len)
{
	uint64_t end = gd_rdtsc() + GD_TIMEOUT_TSC;
	volatile struct gd_used_elem *e;

	while (!gq_has_used(q))
		if (gd_rdtsc() > end)
			return -1;
	gd_barrier();
	e = (volatile struct gd_used_elem *)(uintptr_t)(q->used + 4) + q->used_seen % q->size;
	q->used_seen++;
	if (len != NULL)
		*len = e->len;
	return (int)e->id;
}

/* ---- good requests ---- */

int gd_rng_good(struct gdev *d)
{
	struct gq *q = &d->q[0];
	uint8_t *buf = (uint8_t *)(uintptr_t)q->buf;
	uint16_t head = q->avail_idx % q->size;
	uint32_t len = 0, nonzero = 0;

	memset(buf, 0, 64);
	gq_desc(q, head, q->buf, 64, GD_F_WRITE, 0);
	gq_publish(q, head);
	gd_kick(d, 0);
	if (gq_wait(q, &len) != head)
		return 1;
	if (len == 0 || len > 64)
		return 2;
	for (unsigned i = 0; i < len; i++)
		nonzero |= buf[i];
	return nonzero ? 0 : 3;
}

/* Header at buf, data at buf + 0x1000, status at buf + 0x100 (the header's 16 bytes first). */
int gd_blk_req(struct gdev *d, uint32_t type, uint64_t sector, uint64_t data, uint32_t len)
{
	struct gq *q = &d->q[0];
	uint64_t hdr = q->buf, status = q->buf + 0x100;
	unsigned slots = q->size / 3; /* three descriptors a request */
	uint16_t head, flags = type == 0 ? GD_F_WRITE : 0;

	if (slots == 0)
		return -1;
	head = (uint16_t)(q->avail_idx % slots * 3);
	gd_w32(hdr, type);
	gd_w32(hdr + 4, 0);
	gd_w64(hdr + 8, sector);
	gd_w8(status, 0xee);
	gq_desc(q, head, hdr, 16, GD_F_NEXT, head + 1);
	if (len > 0)
		gq_desc(q, head + 1u, data, len, flags | GD_F_NEXT, head + 2);
	gq_desc(q, head + (len > 0 ? 2u : 1u), status, 1, GD_F_WRITE, 0);
	gq_publish(q, head);
	gd_kick(d, 0);
	if (gq_wait(q, NULL) != head)
		return -1;
	return gd_r8(status);
}

int gd_blk_good(struct gdev *d)
{
	static uint8_t round;
	uint64_t wbuf = d->q[0].buf + 0x1000, rbuf = d->q[0].buf + 0x2000;
	uint8_t *w = (uint8_t *)(uintptr_t)wbuf;

	round++;
	for (unsigned i = 0; i < 512; i++)
		w[i] = (uint8_t)(i * 7 + round);
	memset((void *)(uintptr_t)rbuf, 0, 512);
	if (gd_blk_req(d, 1, 7, wbuf, 512) != 0)
		return 1;
	if (gd_blk_req(d, 0, 7, rbuf, 512) != 0)
		return 2;
	return memcmp(w, (void *)(uintptr_t)rbuf, 512) == 0 ? 0 : 3;
}

/* A frame for the loopback: broadcast, our MAC, a local experimental ethertype, a counter. */
static void gd_net_frame(uint8_t *f, unsigned len, uint8_t round)
{
	static const uint8_t head[14] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52,
					 0x54, 0x00, 0x12, 0x34, 0x56, 0x88, 0xb5};

	memcpy(f, head, sizeof(head));
	for (unsigned i = sizeof(head); i < len; i++)
		f[i] = (uint8_t)(i + round);
}

/* Receive buffer i of 2 KiB; 64 of them fit in the queue's share. */
static uint64_t gd_net_rx_buf(const struct gq *rx, unsigned i)
{
	return rx->buf + (uint64_t)(i % 64) * 2048;
}

/* Waits for an rx buffer holding frame (72 bytes with the header); skips stale ones. */
static int gd_net_rx_match(struct gdev *d, const uint8_t *frame, unsigned len)
{
	struct gq *rx = &d->q[0];

	for (unsigned tries = 0; tries < 8; tries++) {
		uint32_t got = 0;
		int id = gq_wait(rx, &got);
		const uint8_t *b;

		if (id < 0)
			return 4;
		b = (const uint8_t *)(uintptr_t)gd_net_rx_buf(rx, (unsigned)id);
		if (got == 12 + len && memcmp(b + 12, frame, len) == 0)
			return 0;
		/* An older frame (a backlog from before): post that buffer again. */
		gq_publish(rx, (uint16_t)id);
		gd_kick(d, 0);
	}
	return 5;
}

int gd_net_good(struct gdev *d)
{
	static uint8_t round;
	struct gq *rx = &d->q[0], *tx = &d->q[1];
	uint16_t rh = rx->avail_idx % rx->size, th = tx->avail_idx % tx->size;
	uint8_t *pkt = (uint8_t *)(uintptr_t)tx->buf;

	round++;
	gq_desc(rx, rh, gd_net_rx_buf(rx, rh), 2048, GD_F_WRITE, 0);
	gq_publish(rx, rh);
	gd_kick(d, 0);
	memset(pkt, 0, 12);
	gd_net_frame(pkt + 12, 60, round);
	gq_desc(tx, th, tx->buf, 72, 0, 0);
	gq_publish(tx, th);
	gd_kick(d, 1);
	if (gq_wait(tx, NULL) != th)
		return 1;
	return gd_net_rx_match(d, pkt + 12, 60);
}

void gd_vsock_hdr(uint8_t *h, uint64_t src_cid, uint64_t dst_cid, uint32_t src_port,
		  uint32_t dst_port, uint32_t len, uint16_t op)
{
	memset(h, 0, GD_VSOCK_HDR);
	memcpy(h, &src_cid, 8);
	memcpy(h + 8, &dst_cid, 8);
	memcpy(h + 16, &src_port, 4);
	memcpy(h + 20, &dst_port, 4);
	memcpy(h + 24, &len, 4);
	h[28] = 1; /* stream */
	memcpy(h + 30, &op, 2);
	h[38] = 1; /* buf_alloc 64 KiB */
}

int gd_vsock_good(struct gdev *d)
{
	static uint32_t port = 5000;
	struct gq *rx = &d->q[0], *tx = &d->q[1];
	uint16_t rh = rx->avail_idx % rx->size, th = tx->avail_idx % tx->size;
	uint8_t *pkt = (uint8_t *)(uintptr_t)tx->buf;
	uint64_t rbuf = rx->buf + (uint64_t)(rh % 32) * 4096;
	const uint8_t *in = (const uint8_t *)(uintptr_t)rbuf;
	uint32_t len = 0, src = 0, dst = 0;
	uint16_t op = 0;

	port++;
	gq_desc(rx, rh, rbuf, 4096, GD_F_WRITE, 0);
	gq_publish(rx, rh);
	gd_kick(d, 0);
	gd_vsock_hdr(pkt, HOSTILE_GUEST_CID, 2, port, 4321, 0, GD_VSOCK_OP_REQUEST);
	gq_desc(tx, th, tx->buf, GD_VSOCK_HDR, 0, 0);
	gq_publish(tx, th);
	gd_kick(d, 1);
	if (gq_wait(tx, NULL) != th)
		return 1;
	if (gq_wait(rx, &len) != rh || len != GD_VSOCK_HDR)
		return 2;
	memcpy(&src, in + 16, 4);
	memcpy(&dst, in + 20, 4);
	memcpy(&op, in + 30, 2);
	return op == GD_VSOCK_OP_RST && src == 4321 && dst == port ? 0 : 3;
}

int gd_setup(struct gdev *d)
{
	return gd_start(d, GD_F_INDIRECT_DESC, d->nq, 0);
}

int gd_works(struct gdev *d)
{
	switch (d->type) {
	case HOSTILE_RNG:
		return gd_rng_good(d);
	case HOSTILE_BLK:
		return gd_blk_good(d);
	case HOSTILE_NET:
		return gd_net_good(d);
	case HOSTILE_VSOCK:
		return gd_vsock_good(d);
	default:
		return 11;
	}
}

int gd_good(struct gdev *d)
{
	return gd_setup(d) != 0 ? 10 : gd_works(d);
}
