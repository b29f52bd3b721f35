/*
 * libFuzzer target for virtio-vsock's packet handling: the headers a hostile
 * guest puts on the tx queue (addresses, ports, ops, lengths, credit
 * counters, framing across descriptors), the rx and event buffers it offers,
 * interleaved with what host programs do on the Unix sockets (CONNECT lines,
 * data, closes). The ring parser has its own target (fuzz_queue): here the
 * harness lays the rings out itself and the input is a script of steps, so
 * that mutations land on packets and the connection state machine. The device
 * runs on a fake transport with real Unix sockets under a private directory.
 *
 * Input layout:
 *   0      bit 0 EVENT_IDX, bit 1 INDIRECT_DESC (queue features)
 *   1      log2 of the tx queue size (low nibble), rx (high nibble); at most 8
 *   2..    steps, each a kind byte (low nibble: kind, high nibble: variant)
 *          and its arguments:
 *     0 tx packet: 44 header bytes, le32 payload length, a fill byte (the
 *       device never looks inside payloads); variant bit 0 splits the header over two
 *       descriptors, 1 appends a writable buffer, 2 gives only 20 bytes of
 *       header, 3 puts header and payload in one buffer
 *     1 rx buffers: count (low 5 bits), le16 size; variant bit 0 splits
 *       each into 44 bytes + the rest
 *     2 host CONNECT: le32 port          3 host data: fd index, le16 length
 *     4 host close (variant bit 0: shutdown(SHUT_WR) only): fd index
 *     5 vsock_poll                        6 driver reset, queues set up again
 *     7 transport reset                   8 event buffer: size byte
 *     9 accept at PATH_1 (variant bit 0: PATH_2)
 *     10 read whatever host sockets hold
 *
 * Every packet the device puts in rx is checked (addresses, type, op, len
 * against the used length and the buffer; RW never beyond the credit the
 * guest advertised in the packets the device took), and canaries around rx
 * and event buffers catch a write past them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "virtio/queue.h"
#include "virtio/vsock.h"
#include "vmm/memory.h"

#define HEADER	  2
#define RAM	  (16u << 20)
#define RINGS	  0x0	   /* 0x2000 per queue: tx, rx, event */
#define WBUF	  0x10000  /* rx and event buffers, with canaries */
#define WBUF_END  0x400000 /* then tx packets */
#define TBUF_END  0xc00000
#define CANARY	  16
#define MAX_HOST  16
#define MAX_STEPS 256
#define CID	  3
#define MAX_LOG2  8

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The driver's side of a queue; chains complete in order, so descriptors go round robin. */
struct ring {
	uint16_t size, avail_idx, next_desc, used_seen;
	unsigned in_use; /* descriptors given and not back yet */
	uint64_t desc, avail, used;
	uint32_t cap[256];		  /* writable bytes of the chain at each head */
	uint16_t ndesc[256];		  /* its descriptors; 0 when not outstanding */
	uint8_t hdr[256][VSOCK_HDR_SIZE]; /* tx: the packet at each head */
	bool framed[256];		  /* tx: its framing was right */
};

/* What the guest advertised for one stream, and what the device sent it since it opened. */
struct credit {
	bool used;
	uint32_t gport, hport, buf_alloc, fwd_cnt, sent;
};

struct input {
	const uint8_t *p;
	size_t left;
};

static struct guest_memory mem;
static struct virtqueue vqs[VSOCK_NUM_QUEUES];
static struct ring rings[VSOCK_NUM_QUEUES];
static struct vsock *vs;
static struct virtio_device *dev;
static bool needs_reset;
static uint8_t features;
static uint64_t wbuf, tbuf, canary[4096];
static unsigned ncanary;
static int host[MAX_HOST], listeners[2];
static char path[128];
static uint8_t scratch[128 << 10];
static struct credit credits[64];

/* ---- a transport with three queues and no PCI ---- */

static struct virtqueue *ft_queue(struct virtio_device *d, unsigned q)
{
	(void)d;
	return q < VSOCK_NUM_QUEUES ? &vqs[q] : NULL;
}

static void ft_queue_used(struct virtio_device *d, unsigned q)
{
	(void)d;
	(void)vq_should_notify(&vqs[q]);
}

static void ft_queue_kick(struct virtio_device *d, unsigned q)
{
	(void)d;
	(void)q;
}

static void ft_needs_reset(struct virtio_device *d, const char *why)
{
	(void)d;
	(void)why;
	needs_reset = true;
}

static void ft_config_changed(struct virtio_device *d)
{
	(void)d;
}

static int ft_watch_fd(struct virtio_device *d, int fd,
		       void (*handler)(struct virtio_device *d, int fd))
{
	(void)d;
	(void)fd;
	(void)handler;
	return 0;
}

static const struct virtio_transport_ops ft = {
    .queue = ft_queue,
    .queue_used = ft_queue_used,
    .queue_kick = ft_queue_kick,
    .needs_reset = ft_needs_reset,
    .config_changed = ft_config_changed,
    .watch_fd = ft_watch_fd,
};

/* As the transport does: only while the driver is up and not in NEEDS_RESET. */
static void notify(unsigned q)
{
	if (needs_reset || !vqs[q].ready)
		return;
	dev->ops->queue_notify(dev, q);
	if (vqs[q].broken)
		needs_reset = true;
}

/* ---- the driver side ---- */

static void ring_setup(unsigned q, unsigned log2)
{
	struct ring *r = &rings[q];
	uint64_t base = RINGS + 0x2000ULL * q;

	memset(r, 0, sizeof(*r));
	memset(mem.base + base, 0, 0x2000); /* as a driver does: no stale avail index */
	r->size = (uint16_t)(1u << log2);
	r->desc = base;
	r->avail = base + 16ULL * r->size;
	r->used = (r->avail + 6 + 2ULL * r->size + 3) & ~3ULL;
	vq_reset(&vqs[q]);
	CHECK(vq_setup(&vqs[q], &mem, r->size, r->desc, r->avail, r->used, features & 1,
		       features & 2) == 0);
}

static void put(uint64_t gpa, uint64_t v, unsigned n)
{
	CHECK(memory_write(&mem, gpa, &v, n) == 0);
}

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t get(uint64_t gpa, unsigned n)
{
	uint64_t v = 0;

	CHECK(memory_read(&mem, gpa, &v, n) == 0);
	return v;
}

/* Returns the chain's head, or -1 when the table is full. */
static int ring_add(unsigned q, const uint64_t *gpa, const uint32_t *len, const bool *w, unsigned n)
{
	struct ring *r = &rings[q];
	uint16_t head = r->next_desc;
	uint32_t cap = 0;

	/* Never more than the table holds: the checks must know what each head is. */
	if (n == 0 || r->in_use + n > r->size)
		return -1;
	r->in_use += n;
	r->ndesc[head] = (uint16_t)n;
	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % r->size);
		uint64_t d = r->desc + 16ULL * idx;

		put(d, gpa[i], 8);
		put(d + 8, len[i], 4);
		put(d + 12, (i + 1 < n ? 1 : 0) | (w[i] ? 2 : 0), 2);
		put(d + 14, (head + i + 1) % r->size, 2);
		cap += w[i] ? len[i] : 0;
	}
	r->cap[head] = cap;
	r->next_desc = (uint16_t)((head + n) % r->size);
	put(r->avail + 4 + 2ULL * (r->avail_idx % r->size), head, 2);
	r->avail_idx++;
	put(r->avail + 2, r->avail_idx, 2);
	return head;
}

/* Room for a buffer the device writes, with a canary after it; 0 when out of room. */
static uint64_t wbuf_alloc(uint32_t len)
{
	uint64_t at = wbuf;

	if (len > WBUF_END - CANARY || at > WBUF_END - CANARY - len || ncanary == 4096)
		return 0;
	memset(mem.base + at + len, 0xcc, CANARY);
	canary[ncanary++] = at + len;
	wbuf += len + CANARY;
	return at;
}

static uint64_t tbuf_alloc(uint32_t len)
{
	uint64_t at = tbuf;

	if (len > TBUF_END || at > TBUF_END - len)
		return 0;
	tbuf += len;
	return at;
}

static bool take(struct input *in, void *out, size_t n)
{
	if (in->left < n)
		return false;
	memcpy(out, in->p, n);
	in->p += n;
	in->left -= n;
	return true;
}

/* ---- checks ---- */

static struct credit *credit_for(uint32_t gport, uint32_t hport, bool create)
{
	struct credit *free_slot = NULL;

	for (size_t i = 0; i < sizeof(credits) / sizeof(credits[0]); i++) {
		struct credit *c = &credits[i];

		if (c->used && c->gport == gport && c->hport == hport)
			return c;
		if (!c->used && free_slot == NULL)
			free_slot = c;
	}
	if (!create || free_slot == NULL)
		return NULL; /* untracked: not checked */
	*free_slot = (struct credit){.used = true, .gport = gport, .hport = hport};
	return free_slot;
}

/* A tx packet the device took: a well-formed one tells it the guest's credit. */
static void credit_from_guest(const uint8_t *h, bool framed)
{
	uint16_t op = (uint16_t)(h[30] | h[31] << 8);
	struct credit *c;

	if (!framed || le(h, 8) != CID || le(h + 8, 8) != VSOCK_CID_HOST || le(h + 28, 2) != 1 ||
	    op < 1 || op > 7 || le(h + 24, 4) > VSOCK_MAX_PKT)
		return;
	c = credit_for((uint32_t)le(h + 16, 4), (uint32_t)le(h + 20, 4), true);
	if (c == NULL)
		return;
	if (op == 1 || op == 2)
		c->sent = 0; /* a new stream on these ports */
	c->buf_alloc = (uint32_t)le(h + 36, 4);
	c->fwd_cnt = (uint32_t)le(h + 40, 4);
}

/* A packet from the device: data never beyond the guest's credit (5.10.6.3). */
static void credit_to_guest(uint16_t op, uint32_t hport, uint32_t gport, uint32_t len)
{
	struct credit *c = credit_for(gport, hport, op == 1 || op == 2);

	if (c == NULL)
		return;
	if (op == 1) {
		c->sent = 0; /* the device opens a stream: no credit until the guest answers */
		c->buf_alloc = c->fwd_cnt = 0;
	} else if (op == 2) {
		c->sent = 0;
	} else if (op == 5) {
		c->sent += len;
		CHECK((uint32_t)(c->sent - c->fwd_cnt) <= c->buf_alloc);
	}
}

/* A packet the device put at rx head id, len bytes. */
static void check_packet(const struct ring *r, uint32_t id, uint32_t len)
{
	uint64_t d = r->desc + 16ULL * id, gpa = get(d, 8);
	uint8_t h[VSOCK_HDR_SIZE];
	uint16_t op;

	CHECK(len >= VSOCK_HDR_SIZE && len <= r->cap[id]);
	CHECK(get(d + 8, 4) >= VSOCK_HDR_SIZE); /* the harness never splits a header */
	CHECK(memory_read(&mem, gpa, h, sizeof(h)) == 0);
	op = (uint16_t)(h[30] | h[31] << 8);
	CHECK(get(gpa + 8, 8) == CID);			 /* dst_cid */
	CHECK((h[28] | h[29] << 8) == 1);		 /* type */
	CHECK(op >= 1 && op <= 7);			 /* a real op */
	CHECK(get(gpa + 24, 4) == len - VSOCK_HDR_SIZE); /* len */
	CHECK(get(gpa, 8) == VSOCK_CID_HOST || op == 3); /* src_cid */
	CHECK(op == 5 || get(gpa + 24, 4) == 0);	 /* only RW has data */
	CHECK(get(gpa + 24, 4) <= VSOCK_MAX_PKT);
	credit_to_guest(op, (uint32_t)get(gpa + 16, 4), (uint32_t)get(gpa + 20, 4),
			len - VSOCK_HDR_SIZE);
}

/* Takes back what the device used on queue q, checking it. */
static void reap(unsigned q)
{
	struct ring *r = &rings[q];

	while (r->used_seen != (uint16_t)get(r->used + 2, 2)) {
		uint64_t e = r->used + 4 + 8ULL * (r->used_seen++ % r->size);
		uint32_t id = (uint32_t)get(e, 4), len = (uint32_t)get(e + 4, 4);

		CHECK(id < r->size && r->ndesc[id] > 0);
		if (q == VSOCK_QUEUE_RX)
			check_packet(r, id, len);
		else if (q == VSOCK_QUEUE_TX) {
			CHECK(len == 0);
			credit_from_guest(r->hdr[id], r->framed[id]);
		} else
			CHECK(len == 4 && len <= r->cap[id]);
		r->in_use -= r->ndesc[id];
		r->ndesc[id] = 0;
	}
}

/* Nothing the device wrote went past a buffer. */
static void check_canaries(void)
{
	for (unsigned i = 0; i < ncanary; i++)
		for (unsigned k = 0; k < CANARY; k++)
			CHECK(mem.base[canary[i] + k] == 0xcc);
}

/* ---- steps ---- */

/* The header as the device sees it, gathered from the chain's buffers, and whether the
 * chain frames a packet: readable only, and len saying exactly what follows the header. */
static void note_packet(int head, const uint64_t *gpa, const uint32_t *len, const bool *w,
			unsigned n)
{
	struct ring *r = &rings[VSOCK_QUEUE_TX];
	uint32_t total = 0, got = 0;
	bool writable = false;

	memset(r->hdr[head], 0, VSOCK_HDR_SIZE);
	for (unsigned i = 0; i < n; i++) {
		uint32_t take_n = len[i] < VSOCK_HDR_SIZE - got ? len[i] : VSOCK_HDR_SIZE - got;

		writable |= w[i] && len[i] > 0;
		memcpy(r->hdr[head] + got, mem.base + gpa[i], take_n);
		got += take_n;
		total += w[i] ? 0 : len[i];
	}
	r->framed[head] = !writable && total >= VSOCK_HDR_SIZE &&
			  le(r->hdr[head] + 24, 4) == total - VSOCK_HDR_SIZE;
}

static void step_tx(struct input *in, unsigned variant)
{
	uint8_t h[VSOCK_HDR_SIZE];
	uint32_t plen;
	uint8_t fill;
	uint64_t gpa[3];
	uint32_t len[3];
	bool w[3] = {false, false, false};
	unsigned n = 0;
	uint64_t at;
	int head;

	if (!take(in, h, sizeof(h)) || !take(in, &plen, 4) || !take(in, &fill, 1))
		return;
	plen = plen > VSOCK_MAX_PKT + 64 ? VSOCK_MAX_PKT + 64 : plen;
	if ((at = tbuf_alloc(VSOCK_HDR_SIZE + plen)) == 0)
		return;
	memcpy(mem.base + at, h, sizeof(h));
	memset(mem.base + at + sizeof(h), fill, plen);
	if (variant & 8) {
		gpa[n] = at;
		len[n++] = VSOCK_HDR_SIZE + plen;
	} else {
		uint32_t first = variant & 1 ? 20 : VSOCK_HDR_SIZE;

		gpa[n] = at;
		len[n++] = variant & 4 ? 20 : first;
		gpa[n] = at + first;
		len[n++] = (uint32_t)(VSOCK_HDR_SIZE - first) + plen;
	}
	if ((variant & 2) && (gpa[n] = wbuf_alloc(16)) != 0) {
		w[n] = true;
		len[n++] = 16;
	}
	if ((head = ring_add(VSOCK_QUEUE_TX, gpa, len, w, n)) < 0)
		return;
	note_packet(head, gpa, len, w, n);
	notify(VSOCK_QUEUE_TX);
}

static void step_rx(struct input *in, unsigned variant)
{
	uint8_t count;
	uint16_t size;

	if (!take(in, &count, 1) || !take(in, &size, 2))
		return;
	for (unsigned i = 0; i < (count & 31u); i++) {
		uint64_t gpa[2];
		uint32_t len[2];
		bool w[2] = {true, true};
		bool split = (variant & 1) && size > VSOCK_HDR_SIZE;

		len[0] = split ? VSOCK_HDR_SIZE : size;
		len[1] = split ? (uint32_t)size - VSOCK_HDR_SIZE : 0;
		if ((gpa[0] = wbuf_alloc(len[0])) == 0 || (gpa[1] = wbuf_alloc(len[1])) == 0)
			return;
		ring_add(VSOCK_QUEUE_RX, gpa, len, w, split ? 2 : 1);
	}
	notify(VSOCK_QUEUE_RX);
}

static int slot_free(void)
{
	for (int i = 0; i < MAX_HOST; i++)
		if (host[i] < 0)
			return i;
	return -1;
}

static void step_connect(struct input *in)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint32_t port;
	char line[32];
	int i = slot_free(), fd, n;

	if (!take(in, &port, 4) || i < 0)
		return;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return;
	}
	n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	(void)!write(fd, line, (size_t)n);
	host[i] = fd;
}

static void step_host_data(struct input *in)
{
	uint8_t i;
	uint16_t len;

	if (!take(in, &i, 1) || !take(in, &len, 2))
		return;
	i %= MAX_HOST;
	len = len > in->left ? (uint16_t)in->left : len;
	if (host[i] >= 0)
		(void)!send(host[i], in->p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	in->p += len;
	in->left -= len;
}

static void step_close(struct input *in, unsigned variant)
{
	uint8_t i;

	if (!take(in, &i, 1))
		return;
	i %= MAX_HOST;
	if (host[i] < 0)
		return;
	if (variant & 1) {
		shutdown(host[i], SHUT_WR);
		return;
	}
	close(host[i]);
	host[i] = -1;
}

static void step_accept(unsigned variant)
{
	int i = slot_free(), fd;

	if (i < 0)
		return;
	fd = accept4(listeners[variant & 1], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0)
		host[i] = fd;
}

static void step_drain(void)
{
	for (int i = 0; i < MAX_HOST; i++)
		while (host[i] >= 0 && read(host[i], scratch, sizeof(scratch)) > 0)
			;
}

static void step_event(struct input *in)
{
	uint8_t size;
	uint64_t gpa;
	uint32_t len;
	bool w = true;

	if (!take(in, &size, 1) || (gpa = wbuf_alloc(size)) == 0)
		return;
	len = size;
	ring_add(VSOCK_QUEUE_EVENT, &gpa, &len, &w, 1);
	notify(VSOCK_QUEUE_EVENT);
}

static void setup_queues(const uint8_t *hdr)
{
	unsigned tx = hdr[1] & 15, rx = hdr[1] >> 4;

	features = hdr[0];
	ring_setup(VSOCK_QUEUE_TX, tx > MAX_LOG2 ? MAX_LOG2 : tx);
	ring_setup(VSOCK_QUEUE_RX, rx > MAX_LOG2 ? MAX_LOG2 : rx);
	ring_setup(VSOCK_QUEUE_EVENT, 2);
	needs_reset = false;
}

static void driver_reset(const uint8_t *hdr)
{
	for (unsigned q = 0; q < VSOCK_NUM_QUEUES; q++)
		vq_reset(&vqs[q]);
	dev->ops->reset(dev);
	CHECK(vsock_connections(vs) == 0);
	memset(credits, 0, sizeof(credits));
	setup_queues(hdr);
}

static void step(struct input *in, const uint8_t *hdr)
{
	uint8_t kind;

	if (!take(in, &kind, 1))
		return;
	switch (kind & 15) {
	case 0:
		step_tx(in, kind >> 4);
		break;
	case 1:
		step_rx(in, kind >> 4);
		break;
	case 2:
		step_connect(in);
		break;
	case 3:
		step_host_data(in);
		break;
	case 4:
		step_close(in, kind >> 4);
		break;
	case 5:
		vsock_poll(vs);
		break;
	case 6:
		driver_reset(hdr);
		break;
	case 7:
		vsock_transport_reset(vs);
		break;
	case 8:
		step_event(in);
		break;
	case 9:
		step_accept(kind >> 4);
		break;
	case 10:
		step_drain();
		break;
	default:
		break;
	}
	/* tx first: the credit the guest gave counts for the data that followed. */
	reap(VSOCK_QUEUE_TX);
	reap(VSOCK_QUEUE_RX);
	reap(VSOCK_QUEUE_EVENT);
	CHECK(vsock_connections(vs) <= VSOCK_MAX_CONNS);
}

static char dir[] = "/tmp/fuzz-vsock-XXXXXX";

static void cleanup(void)
{
	char p[160];

	vsock_destroy(vs);
	for (int port = 1; port <= 2; port++) {
		snprintf(p, sizeof(p), "%s_%d", path, port);
		unlink(p);
	}
	rmdir(dir);
}

static int listen_at(uint32_t port)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.96s_%u", path, port);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0)
		abort();
	return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct vsock_config cfg = {.cid = CID, .max_conns = 8};

	(void)argc;
	(void)argv;
	if (memory_init(&mem, RAM) != 0 || mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/v", dir);
	strcpy(cfg.path, path);
	if (vsock_create(&vs, &cfg) != 0)
		abort();
	dev = vsock_virtio(vs);
	dev->mem = &mem;
	dev->transport = &ft;
	listeners[0] = listen_at(1);
	listeners[1] = listen_at(2);
	for (int i = 0; i < MAX_HOST; i++)
		host[i] = -1;
	for (unsigned q = 0; q < VSOCK_NUM_QUEUES; q++)
		vqs[q].name = "fuzz";
	atexit(cleanup);
	return 0;
}

/* Back to a clean device: nothing from one input may leak into the next. */
static void finish(void)
{
	int fd;

	for (unsigned q = 0; q < VSOCK_NUM_QUEUES; q++)
		vq_reset(&vqs[q]);
	dev->ops->reset(dev);
	CHECK(vsock_connections(vs) == 0);
	for (int i = 0; i < MAX_HOST; i++) {
		if (host[i] >= 0)
			close(host[i]);
		host[i] = -1;
	}
	for (int l = 0; l < 2; l++)
		while ((fd = accept4(listeners[l], NULL, NULL, SOCK_CLOEXEC)) >= 0)
			close(fd);
	vsock_poll(vs); /* handshakes the host closed */
	CHECK(vsock_connections(vs) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data + HEADER, size - HEADER};

	if (size < HEADER)
		return 0;
	/* Only what the last input used: clearing all of it costs more than the run. */
	memset(mem.base, 0, WBUF);
	memset(mem.base + WBUF, 0, wbuf > WBUF ? wbuf - WBUF : 0);
	memset(mem.base + WBUF_END, 0, tbuf > WBUF_END ? tbuf - WBUF_END : 0);
	wbuf = WBUF;
	tbuf = WBUF_END;
	ncanary = 0;
	memset(credits, 0, sizeof(credits));
	setup_queues(data);
	/* The driver is up: the transport kicks every queue at DRIVER_OK. */
	for (unsigned q = 0; q < VSOCK_NUM_QUEUES; q++)
		notify(q);
	for (int i = 0; i < MAX_STEPS && in.left > 0; i++)
		step(&in, data);
	check_canaries();
	finish();
	return 0;
}
