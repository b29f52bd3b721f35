/*
 * hostile_net: malformed transmit chains and receive buffers (VIRTIO 1.2,
 * 5.1.6). Frames the device can judge (too large, shorter than an Ethernet
 * header, more pieces than it takes) are dropped and their buffers given
 * back; chains that break the queue's rules (writable transmit buffers,
 * readable or header-less receive buffers) set NEEDS_RESET. The runner's
 * backend sends every frame back, so receive is attacked for real; the
 * runner then checks what the backend and the counters saw.
 */
#include "gdrv.h"

#define HDR	    12
#define MAX_FRAME   65550 /* NET_MAX_FRAME: 64 KiB of TSO payload behind an Ethernet header */
#define SCR	    GD_SCRATCH
#define TXBUF	    SCR
#define RXBUF	    (SCR + 0x100000)
#define F_MRG_RXBUF (1ULL << 15)
#define ALL_OK	    (GD_ACK | GD_DRIVER | GD_FEATURES_OK | GD_DRIVER_OK)

static struct gdev net, rng;

/* A transmit chain of one buffer: header then frame, len bytes in all. */
static int tx(uint32_t len, uint16_t flags)
{
	struct gq *q = &net.q[1];
	uint8_t *p = (uint8_t *)(uintptr_t)TXBUF;

	memset(p, 0, HDR);
	memset(p + HDR, 0xff, 6);
	for (uint32_t i = HDR + 6; i < len && i < 4096; i++)
		p[i] = (uint8_t)i;
	gq_desc(q, 0, TXBUF, len, flags, 0);
	gq_publish(q, 0);
	gd_kick(&net, 1);
	return gq_wait(q, NULL);
}

/* 300-303, 306: frames the device drops, handing the buffers back. */
static uint32_t dropped(void)
{
	struct gq *q = &net.q[1];

	gd_step(300, 0);
	if (tx(HDR + MAX_FRAME + 1, 0) != 0) /* a byte too large */
		return HOSTILE_FAIL(300, 1);
	gd_step(301, 0);
	if (tx(HDR + MAX_FRAME, 0) != 0) /* the largest there is: taken */
		return HOSTILE_FAIL(301, 1);
	gd_step(302, 0);
	if (tx(HDR + 10, 0) != 0 || tx(HDR, 0) != 0) /* less than an Ethernet header */
		return HOSTILE_FAIL(302, 1);
	gd_step(306, 0); /* 65 pieces: more than the device takes per frame */
	for (unsigned i = 0; i < 65; i++)
		gq_desc(q, (uint16_t)i, TXBUF + i * 64, i == 0 ? HDR + 14 : 16,
			i < 64 ? GD_F_NEXT : 0, (uint16_t)(i + 1));
	gq_publish(q, 0);
	gd_kick(&net, 1);
	if (gq_wait(q, NULL) != 0 || gd_status(&net) != ALL_OK)
		return HOSTILE_FAIL(306, 1);
	return gd_works(&net) == 0 ? 0 : HOSTILE_FAIL(306, 2);
}

/* Waits for NEEDS_RESET; rng works meanwhile; net works after a reset. */
static uint32_t broken(unsigned id)
{
	if (!gd_wait_needs_reset(&net))
		return HOSTILE_FAIL(id, 1);
	gd_kick(&net, 0);
	gd_kick(&net, 1);
	if (gd_works(&rng) != 0)
		return HOSTILE_FAIL(id, 2);
	return gd_good(&net) == 0 ? 0 : HOSTILE_FAIL(id, 3);
}

/* 304, 305: transmit chains that are not frames at all. */
static uint32_t bad_tx(unsigned id)
{
	struct gq *q = &net.q[1];

	gd_step(id, HOSTILE_NET);
	if (id == 304) { /* a writable buffer in a transmit chain */
		gq_desc(q, 0, TXBUF, 72, GD_F_NEXT, 1);
		gq_desc(q, 1, TXBUF + 0x1000, 64, GD_F_WRITE, 0);
	} else { /* shorter than the virtio-net header */
		gq_desc(q, 0, TXBUF, HDR - 4, 0, 0);
	}
	gq_publish(q, 0);
	gd_kick(&net, 1);
	return broken(id);
}

/* 307, 308: receive buffers the device cannot fill, found when a frame comes back. */
static uint32_t bad_rx(unsigned id)
{
	struct gq *rx = &net.q[0];

	gd_step(id, HOSTILE_NET);
	gq_desc(rx, 0, RXBUF, id == 307 ? 2048 : HDR - 4, id == 307 ? 0 : GD_F_WRITE, 0);
	gq_publish(rx, 0);
	gd_kick(&net, 0);
	if (tx(HDR + 60, 0) != 0) /* the loopback sends it back into the bad buffer */
		return HOSTILE_FAIL(id, 4);
	return broken(id);
}

/* 309: without MRG_RXBUF, a buffer too small for the frame: dropped, no reset. */
static uint32_t small_rx(void)
{
	struct gq *rx = &net.q[0];

	gd_step(309, 0);
	gq_desc(rx, 0, RXBUF, HDR + 20, GD_F_WRITE, 0);
	gq_publish(rx, 0);
	gd_kick(&net, 0);
	if (tx(HDR + 60, 0) != 0)
		return HOSTILE_FAIL(309, 1);
	gd_delay_ms(20); /* the frame comes back on the device thread: let it */
	if (gq_has_used(rx) || gd_status(&net) != ALL_OK)
		return HOSTILE_FAIL(309, 2);
	/* The small buffer stays at the head of the queue: only a reset gets past it. */
	return gd_good(&net) == 0 ? 0 : HOSTILE_FAIL(309, 2);
}

/* Sends 16 numbered 60-byte frames in one batch. */
static uint32_t tx_batch(unsigned first)
{
	struct gq *q = &net.q[1];

	for (unsigned i = 0; i < 16; i++) {
		uint64_t f = TXBUF + (first + i) % 64 * 128;

		memset((void *)(uintptr_t)f, 0, HDR);
		memset((void *)(uintptr_t)(f + HDR), 0xff, 6);
		gd_w32(f + HDR + 14, first + i);
		gq_desc(q, (uint16_t)(first + i) % q->size, f, HDR + 60, 0, 0);
		gq_publish(q, (uint16_t)(first + i) % q->size);
	}
	gd_kick(&net, 1);
	for (unsigned i = 0; i < 16; i++)
		if (gq_wait(q, NULL) < 0)
			return 1;
	gd_delay_ms(2); /* the loopback sends them back after the batch */
	return 0;
}

/* 312: 208 frames while the guest gives no buffer: a bounded backlog keeps the first, in order. */
static uint32_t backlog(void)
{
	struct gq *rx = &net.q[0];

	gd_step(312, 0);
	if (gd_setup(&net) != 0)
		return HOSTILE_FAIL(312, 1);
	for (unsigned b = 0; b < 13; b++)
		if (tx_batch(b * 16) != 0)
			return HOSTILE_FAIL(312, 2);
	for (unsigned i = 0; i < 4; i++) {
		gq_desc(rx, (uint16_t)i, RXBUF + i * 2048, 2048, GD_F_WRITE, 0);
		gq_publish(rx, (uint16_t)i);
	}
	gd_kick(&net, 0);
	for (unsigned i = 0; i < 4; i++)
		if (gq_wait(rx, NULL) != (int)i || gd_r32(RXBUF + i * 2048 + HDR + 14) != i)
			return HOSTILE_FAIL(312, 3);
	if (gd_status(&net) != ALL_OK)
		return HOSTILE_FAIL(312, 4);
	return gd_good(&net) == 0 ? 0 : HOSTILE_FAIL(312, 5); /* the reset drops the rest */
}

/* Posts n receive buffers of a header's size each: the least MRG_RXBUF allows (5.1.6.3.1). */
static uint32_t post_small(unsigned n)
{
	struct gq *rx = &net.q[0];

	if (gd_start(&net, F_MRG_RXBUF, 2, 0) != 0)
		return 1;
	for (unsigned i = 0; i < n; i++) {
		gq_desc(rx, (uint16_t)i, RXBUF + i * 64, HDR, GD_F_WRITE, 0);
		gq_publish(rx, (uint16_t)i);
	}
	gd_kick(&net, 0);
	return 0;
}

/* Consumes a merged frame of nbuf buffers from the receive queue; 0 or a check number. */
static uint32_t take_merged(unsigned nbuf)
{
	struct gq *rx = &net.q[0];
	uint32_t len = 0;

	if (gq_wait(rx, &len) != 0 || len != HDR || gd_r16(RXBUF + 10) != nbuf)
		return 1; /* the first holds the header alone */
	for (unsigned i = 1; i < nbuf; i++)
		if (gq_wait(rx, &len) != (int)i || len != HDR)
			return 2;
	return 0;
}

/*
 * 310, 311: with MRG_RXBUF, a frame over 51 buffers; then one that would need
 * more than a frame may use (dropped), and the buffers it held take the next.
 */
static uint32_t merged(void)
{
	uint32_t r;

	gd_step(310, 0);
	if (post_small(64) != 0 || tx(HDR + 600, 0) != 0)
		return HOSTILE_FAIL(310, 1);
	if ((r = take_merged(51)) != 0)
		return HOSTILE_FAIL(310, 1 + r);
	/* Frame byte 599 is the 12th byte of buffer 50. */
	if (gd_r8(RXBUF + 50 * 64 + 11) != (uint8_t)(HDR + 599) || gd_r8(RXBUF + 64) != 0xff)
		return HOSTILE_FAIL(310, 4);
	gd_step(311, 0);
	if (post_small(70) != 0 || tx(HDR + 1000, 0) != 0 || tx(HDR + 60, 0) != 0)
		return HOSTILE_FAIL(311, 1);
	if ((r = take_merged(6)) != 0)
		return HOSTILE_FAIL(311, 1 + r);
	return gd_good(&net) == 0 ? 0 : HOSTILE_FAIL(311, 4);
}

/* One vCPU: cpu is 0. */
uint32_t guest_main(__attribute__((unused)) uint64_t cpu)
{
	uint32_t r = 0;

	if (gd_find(&rng, HOSTILE_RNG, 0, GD_DEV_BASE) != 0 ||
	    gd_find(&net, HOSTILE_NET, 0, GD_DEV_BASE + GD_DEV_SIZE) != 0)
		return HOSTILE_FAIL(0, 1);
	if (gd_good(&rng) != 0 || gd_good(&net) != 0)
		return HOSTILE_FAIL(0, 2);
	r = dropped();
	for (unsigned id = 304; r == 0 && id <= 305; id++)
		r = bad_tx(id);
	for (unsigned id = 307; r == 0 && id <= 308; id++)
		r = bad_rx(id);
	if (r == 0)
		r = small_rx();
	if (r == 0)
		r = backlog();
	return r != 0 ? r : merged();
}
