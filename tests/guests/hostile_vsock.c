/*
 * hostile_vsock: bogus packets on the socket device (VIRTIO 1.2, 5.10.6).
 * A header whose len does not match the chain, a chain shorter than a
 * header, writable transmit or readable receive buffers: NEEDS_RESET, and
 * every connection goes. Packets that are framed right but say nonsense
 * (foreign addresses, unknown types and ops, oversized payloads) get an RST
 * and nothing else; a flood of them holds at most a bounded number of RSTs.
 * A real connection to a host program carries data until the guest breaks
 * the device under it; the runner then reads that data and the end of stream.
 */
#include "gdrv.h"

#define HDR	    GD_VSOCK_HDR
#define HOST	    2
#define CID	    HOSTILE_GUEST_CID
#define NOBODY	    4321 /* a host port nothing listens on */
#define SCR	    GD_SCRATCH
#define TXB	    SCR
#define RXB	    (SCR + 0x200000)
#define RX_SIZE	    4096
#define T_SEQPACKET 2
#define MAX_ORPHANS 64 /* RSTs the device keeps for packets without a connection */

static struct gdev vs, rng;

/* Posts n receive buffers of RX_SIZE (flags: GD_F_WRITE, or an attack). */
static void rx_post(unsigned n, uint32_t len, uint16_t flags)
{
	struct gq *rx = &vs.q[0];

	for (unsigned i = 0; i < n; i++) {
		uint16_t d = rx->avail_idx % rx->size;

		gq_desc(rx, d, RXB + (uint64_t)(d % 256) * RX_SIZE, len, flags, 0);
		gq_publish(rx, d);
	}
	gd_kick(&vs, 0);
}

/* The next packet the device sent: its op and ports. Returns 0 or -1 (none came). */
static int rx_take(uint16_t *op, uint32_t *src, uint32_t *dst)
{
	struct gq *rx = &vs.q[0];
	uint32_t len = 0;
	int id = gq_wait(rx, &len);
	uint64_t p = RXB + (uint64_t)(id % 256) * RX_SIZE;

	if (id < 0 || len < HDR)
		return -1;
	*op = gd_r16(p + 30);
	*src = gd_r32(p + 16);
	*dst = gd_r32(p + 20);
	return 0;
}

/* A transmit chain: the header (with len_field), then payload bytes, in n pieces. */
static int tx(uint64_t src_cid, uint64_t dst_cid, uint32_t sport, uint32_t dport, uint16_t op,
	      uint32_t len_field, uint32_t payload)
{
	struct gq *tq = &vs.q[1];
	uint8_t *p = (uint8_t *)(uintptr_t)TXB;

	gd_vsock_hdr(p, src_cid, dst_cid, sport, dport, len_field, op);
	gq_desc(tq, 0, TXB, HDR, payload ? GD_F_NEXT : 0, 1);
	gq_desc(tq, 1, TXB + 0x1000, payload, 0, 0);
	gq_publish(tq, 0);
	gd_kick(&vs, 1);
	return gq_wait(tq, NULL);
}

/* Expects an RST from the host port dport to our sport. */
static uint32_t expect_rst(unsigned id, uint32_t sport, uint32_t dport)
{
	uint16_t op = 0;
	uint32_t src = 0, dst = 0;

	if (rx_take(&op, &src, &dst) != 0 || op != GD_VSOCK_OP_RST || src != dport || dst != sport)
		return HOSTILE_FAIL(id, 10);
	return gd_status(&vs) & GD_NEEDS_RESET ? HOSTILE_FAIL(id, 11) : 0;
}

static uint32_t broken(unsigned id)
{
	if (!gd_wait_needs_reset(&vs))
		return HOSTILE_FAIL(id, 1);
	gd_kick(&vs, 1);
	if (gd_works(&rng) != 0)
		return HOSTILE_FAIL(id, 2);
	return gd_good(&vs) == 0 ? 0 : HOSTILE_FAIL(id, 3);
}

/* 400-404: transmit chains that are not packets. */
static uint32_t unframed(unsigned id)
{
	struct gq *tq = &vs.q[1];

	gd_step(id, HOSTILE_VSOCK);
	rx_post(4, RX_SIZE, GD_F_WRITE);
	if (id == 400)
		tx(CID, HOST, 5000, NOBODY, GD_VSOCK_OP_RW, 100, 50); /* len says more */
	else if (id == 401)
		tx(CID, HOST, 5000, NOBODY, GD_VSOCK_OP_RW, 10, 50); /* len says less */
	else if (id == 402)
		tx(CID, HOST, 5000, NOBODY, GD_VSOCK_OP_RW, 0xffffffff, 0);
	else if (id == 403) {
		gd_vsock_hdr((uint8_t *)(uintptr_t)TXB, CID, HOST, 5000, NOBODY, 0, 1);
		gq_desc(tq, 0, TXB, HDR - 4, 0, 0); /* shorter than a header */
		gq_publish(tq, 0);
		gd_kick(&vs, 1);
	} else { /* 404: a writable buffer */
		gd_vsock_hdr((uint8_t *)(uintptr_t)TXB, CID, HOST, 5000, NOBODY, 0, 1);
		gq_desc(tq, 0, TXB, HDR, GD_F_NEXT, 1);
		gq_desc(tq, 1, TXB + 0x1000, 16, GD_F_WRITE, 0);
		gq_publish(tq, 0);
		gd_kick(&vs, 1);
	}
	return broken(id);
}

/* 405, 406: receive buffers with no room for a packet, or readable. */
static uint32_t bad_rx(unsigned id)
{
	gd_step(id, HOSTILE_VSOCK);
	rx_post(1, id == 405 ? HDR : RX_SIZE, id == 405 ? GD_F_WRITE : 0);
	tx(CID, HOST, 5000, NOBODY, GD_VSOCK_OP_REQUEST, 0, 0); /* its RST needs the buffer */
	return broken(id);
}

/* A packet sent (sent: what tx returned) that must come back as an RST from NOBODY to sport. */
static uint32_t rst_for(unsigned id, int sent, uint32_t sport)
{
	return sent != 0 ? HOSTILE_FAIL(id, 1) : expect_rst(id, sport, NOBODY);
}

/* A header in two pieces: legal. */
static int tx_split(uint32_t sport)
{
	struct gq *tq = &vs.q[1];

	gd_vsock_hdr((uint8_t *)(uintptr_t)TXB, CID, HOST, sport, NOBODY, 0, GD_VSOCK_OP_REQUEST);
	gq_desc(tq, 0, TXB, 20, GD_F_NEXT, 1);
	gq_desc(tq, 1, TXB + 20, HDR - 20, 0, 0);
	gq_publish(tq, 0);
	gd_kick(&vs, 1);
	return gq_wait(tq, NULL);
}

/* A REQUEST of a type we do not offer. */
static int tx_seqpacket(uint32_t sport)
{
	struct gq *tq = &vs.q[1];

	gd_vsock_hdr((uint8_t *)(uintptr_t)TXB, CID, HOST, sport, NOBODY, 0, GD_VSOCK_OP_REQUEST);
	gd_w16(TXB + 28, T_SEQPACKET);
	gq_desc(tq, 0, TXB, HDR, 0, 0);
	gq_publish(tq, 0);
	gd_kick(&vs, 1);
	return gq_wait(tq, NULL);
}

/* 408-412: framed right, meaning nothing (or legal but odd): an RST each, the device carries on. */
static uint32_t nonsense(void)
{
	uint32_t r;

	rx_post(8, RX_SIZE, GD_F_WRITE);
	gd_step(408, 0);
	if ((r = rst_for(408, tx_split(5001), 5001)) != 0)
		return r;
	gd_step(409, 0); /* a payload beyond the largest packet */
	if ((r = rst_for(409, tx(CID, HOST, 5002, NOBODY, GD_VSOCK_OP_RW, 65537, 65537), 5002)))
		return r;
	gd_step(410, 0); /* not from our CID, not to the host */
	if ((r = rst_for(410, tx(99, HOST, 5003, NOBODY, GD_VSOCK_OP_REQUEST, 0, 0), 5003)) ||
	    (r = rst_for(410, tx(CID, 7, 5004, NOBODY, GD_VSOCK_OP_REQUEST, 0, 0), 5004)))
		return r;
	gd_step(412, 0); /* an unknown op, a type we do not offer */
	if ((r = rst_for(412, tx(CID, HOST, 5005, NOBODY, 99, 0, 0), 5005)) != 0)
		return r;
	return rst_for(412, tx_seqpacket(5006), 5006);
}

/* 413: 100 requests without a receive buffer: at most MAX_ORPHANS RSTs wait for one. */
static uint32_t flood(void)
{
	struct gq *rx = &vs.q[0];
	unsigned got = 0;

	gd_step(413, 0);
	if (gd_setup(&vs) != 0)
		return HOSTILE_FAIL(413, 1);
	for (unsigned i = 0; i < 100; i++)
		if (tx(CID, HOST, 6000 + i, NOBODY, GD_VSOCK_OP_REQUEST, 0, 0) != 0)
			return HOSTILE_FAIL(413, 2);
	rx_post(128, RX_SIZE, GD_F_WRITE);
	for (uint16_t op = 0; got < MAX_ORPHANS; got++) {
		uint32_t src = 0, dst = 0;

		if (rx_take(&op, &src, &dst) != 0 || op != GD_VSOCK_OP_RST || dst != 6000 + got)
			return HOSTILE_FAIL(413, 3);
	}
	gd_delay_ms(20);
	return gq_has_used(rx) ? HOSTILE_FAIL(413, 4) : 0;
}

/* A REQUEST from sport to the runner's program: the RESPONSE must come. */
static int stream_open(uint32_t sport)
{
	uint16_t op = 0;
	uint32_t src = 0, dst = 0;

	if (tx(CID, HOST, sport, HOSTILE_VSOCK_PORT, GD_VSOCK_OP_REQUEST, 0, 0) != 0 ||
	    rx_take(&op, &src, &dst) != 0)
		return -1;
	return op == GD_VSOCK_OP_RESPONSE && src == HOSTILE_VSOCK_PORT && dst == sport ? 0 : -1;
}

/*
 * Takes what the device sent on the overrunning stream: CREDIT_UPDATEs (the
 * host program took some) until the RST. Returns 1 for the RST, 0 when
 * nothing is there (or, with wait, after the timeout), -1 for anything else.
 */
static int overrun_rx(bool wait)
{
	uint16_t op = 0;
	uint32_t src = 0, dst = 0;

	while (wait || gq_has_used(&vs.q[0])) {
		if (rx_take(&op, &src, &dst) != 0)
			return 0;
		rx_post(1, RX_SIZE, GD_F_WRITE);
		if (src != HOSTILE_VSOCK_PORT || dst != 7001)
			return -1;
		if (op == GD_VSOCK_OP_RST)
			return 1;
		if (op != GD_VSOCK_OP_CREDIT_UPDATE)
			return -1;
	}
	return 0;
}

/* 416: a stream whose host program does not read: past the credit we got, an RST. */
static uint32_t overrun(void)
{
	int r = 0;

	gd_step(416, 0);
	if (stream_open(7001) != 0)
		return HOSTILE_FAIL(416, 1);
	for (unsigned n = 0; n < 64 && r == 0; n++) {
		if (tx(CID, HOST, 7001, HOSTILE_VSOCK_PORT, GD_VSOCK_OP_RW, 65536, 65536) != 0)
			return HOSTILE_FAIL(416, 2);
		r = overrun_rx(false);
	}
	if (r == 0)
		r = overrun_rx(true);
	if (r != 1)
		return HOSTILE_FAIL(416, 3);
	return gd_status(&vs) & GD_NEEDS_RESET ? HOSTILE_FAIL(416, 4) : 0;
}

/* 414, 415: a stream to the runner's program carries data; then a bogus length on it. */
static uint32_t stream(void)
{
	static const char hello[] = HOSTILE_VSOCK_HELLO;
	uint32_t r;

	gd_step(414, 0);
	rx_post(8, RX_SIZE, GD_F_WRITE);
	if (stream_open(7000) != 0)
		return HOSTILE_FAIL(414, 1);
	memcpy((void *)(uintptr_t)(TXB + 0x1000), hello, sizeof(hello) - 1);
	if (tx(CID, HOST, 7000, HOSTILE_VSOCK_PORT, GD_VSOCK_OP_RW, sizeof(hello) - 1,
	       sizeof(hello) - 1) != 0)
		return HOSTILE_FAIL(414, 2);
	if ((r = overrun()) != 0)
		return r;
	gd_step(415, HOSTILE_VSOCK);
	tx(CID, HOST, 7000, HOSTILE_VSOCK_PORT, GD_VSOCK_OP_RW, 1, 2);
	return broken(415);
}

uint32_t guest_main(__attribute__((unused)) uint64_t cpu)
{
	uint32_t r = 0;

	if (gd_find(&rng, HOSTILE_RNG, 0, GD_DEV_BASE) != 0 ||
	    gd_find(&vs, HOSTILE_VSOCK, 0, GD_DEV_BASE + GD_DEV_SIZE) != 0)
		return HOSTILE_FAIL(0, 1);
	if (gd_good(&rng) != 0 || gd_good(&vs) != 0)
		return HOSTILE_FAIL(0, 2);
	for (unsigned id = 400; r == 0 && id <= 404; id++)
		r = unframed(id);
	for (unsigned id = 405; r == 0 && id <= 406; id++)
		r = bad_rx(id);
	if (r == 0)
		r = nonsense();
	if (r == 0)
		r = flood();
	return r != 0 ? r : stream();
}
