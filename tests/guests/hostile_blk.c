/*
 * hostile_blk: malformed block requests (VIRTIO 1.2, 5.2.6). A request the
 * device can answer gets an error status and leaves the device working:
 * short headers, sectors past the end, data in the wrong direction, writes to
 * the readonly disk, unknown types, bad discard segments. A chain it cannot
 * answer at all (no status byte, more segments than seg_max) sets
 * NEEDS_RESET. The runner then checks both images byte for byte.
 */
#include "gdrv.h"

#define T_IN	  0
#define T_OUT	  1
#define T_FLUSH	  4
#define T_GET_ID  8
#define T_DISCARD 11
#define T_WZ	  13
#define S_OK	  0
#define S_IOERR	  1
#define S_UNSUPP  2
#define F_DISCARD (1ULL << 13)
#define F_WZ	  (1ULL << 14)
#define CAP	  HOSTILE_BLK_SECTORS
#define SCR	  GD_SCRATCH
#define HDR	  (SCR + 0x0)
#define STATUS	  (SCR + 0x100)
#define DATA	  (SCR + 0x1000)
#define TABLE	  (SCR + 0x100000)

static struct gdev blk, ro, rng;

static void hdr(uint32_t type, uint64_t sector)
{
	gd_w32(HDR, type);
	gd_w32(HDR + 4, 0);
	gd_w64(HDR + 8, sector);
	gd_w8(STATUS, 0xee);
}

/* Submits the chain that starts at head, waits; returns the status byte or -1. */
static int submit(struct gdev *d, uint16_t head)
{
	struct gq *q = &d->q[0];

	gq_publish(q, head);
	gd_kick(d, 0);
	return gq_wait(q, NULL) == head ? gd_r8(STATUS) : -1;
}

/* header, one data buffer (flags), status: the usual three descriptors. */
static int req3(struct gdev *d, uint32_t type, uint64_t sector, uint32_t len, uint16_t dflags)
{
	struct gq *q = &d->q[0];

	hdr(type, sector);
	gq_desc(q, 0, HDR, 16, GD_F_NEXT, 1);
	gq_desc(q, 1, DATA, len, dflags | GD_F_NEXT, 2);
	gq_desc(q, 2, STATUS, 1, GD_F_WRITE, 0);
	return submit(d, 0);
}

static uint32_t expect(unsigned id, unsigned check, int got, int want)
{
	return got == want ? 0 : HOSTILE_FAIL(id, check);
}

/* 200, 201: a header of 8 bytes is an error; one split in two is fine. */
static uint32_t headers(void)
{
	struct gq *q = &blk.q[0];
	uint32_t r;

	gd_step(200, 0);
	hdr(T_IN, 0);
	gq_desc(q, 0, HDR, 8, GD_F_NEXT, 1);
	gq_desc(q, 1, STATUS, 1, GD_F_WRITE, 0);
	if ((r = expect(200, 1, submit(&blk, 0), S_IOERR)) != 0)
		return r;
	gd_step(201, 0);
	hdr(T_IN, 3);
	gq_desc(q, 0, HDR, 8, GD_F_NEXT, 1);
	gq_desc(q, 1, HDR + 8, 8, GD_F_NEXT, 2);
	gq_desc(q, 2, DATA, 512, GD_F_WRITE | GD_F_NEXT, 3);
	gq_desc(q, 3, STATUS, 1, GD_F_WRITE, 0);
	return expect(201, 1, submit(&blk, 0), S_OK);
}

/* 202: sectors at and past the end, and sectors whose byte offset overflows. */
static uint32_t past_end(void)
{
	static const uint64_t sectors[] = {
	    CAP, CAP + 1, CAP - 1, 0xffffffffffffffffULL, 1ULL << 55, (1ULL << 63) + 1};

	gd_step(202, 0);
	for (unsigned i = 0; i < sizeof(sectors) / sizeof(sectors[0]); i++) {
		uint32_t len = sectors[i] == CAP - 1 ? 1024 : 512;

		if (req3(&blk, T_IN, sectors[i], len, GD_F_WRITE) != S_IOERR ||
		    req3(&blk, T_OUT, sectors[i], len, 0) != S_IOERR)
			return HOSTILE_FAIL(202, 1 + i);
	}
	return expect(202, 20, req3(&blk, T_IN, CAP - 1, 512, GD_F_WRITE), S_OK);
}

/* 203, 205: data in the wrong direction, and a length that is not whole sectors. */
static uint32_t directions(void)
{
	gd_step(203, 0);
	memset((void *)(uintptr_t)DATA, 0x77, 512);
	if (req3(&blk, T_IN, 0, 512, 0) != S_IOERR || gd_r64(DATA) != 0x7777777777777777ULL)
		return HOSTILE_FAIL(203, 1); /* a read into a device-readable buffer */
	if (req3(&blk, T_OUT, 0, 512, GD_F_WRITE) != S_IOERR)
		return HOSTILE_FAIL(203, 2); /* a write from a device-writable buffer */
	gd_step(205, 0);
	if (req3(&blk, T_IN, 0, 513, GD_F_WRITE) != S_IOERR ||
	    req3(&blk, T_OUT, 0, 511, 0) != S_IOERR)
		return HOSTILE_FAIL(205, 1);
	return 0;
}

/* 204: the readonly disk refuses every kind of write and keeps serving reads. */
static uint32_t readonly(void)
{
	gd_step(204, 0);
	memset((void *)(uintptr_t)DATA, 0, 512);
	if (req3(&ro, T_OUT, 0, 512, 0) != S_IOERR || req3(&ro, T_OUT, 5, 512, 0) != S_IOERR)
		return HOSTILE_FAIL(204, 1);
	if (req3(&ro, T_DISCARD, 0, 16, 0) != S_UNSUPP || req3(&ro, T_WZ, 0, 16, 0) != S_UNSUPP)
		return HOSTILE_FAIL(204, 2); /* not offered on a readonly disk */
	if (req3(&ro, T_IN, 5, 512, GD_F_WRITE) != S_OK || gd_r8(DATA + 511) != HOSTILE_RO_BYTE)
		return HOSTILE_FAIL(204, 3);
	hdr(T_FLUSH, 0);
	gq_desc(&ro.q[0], 0, HDR, 16, GD_F_NEXT, 1);
	gq_desc(&ro.q[0], 1, STATUS, 1, GD_F_WRITE, 0);
	return expect(204, 4, submit(&ro, 0), S_OK);
}

/* 206, 207: unknown types; GET_ID with a buffer of the wrong size, then the right one. */
static uint32_t types(void)
{
	gd_step(206, 0);
	if (req3(&blk, 0x1234, 0, 512, GD_F_WRITE) != S_UNSUPP ||
	    req3(&blk, 0xffffffff, 0, 512, 0) != S_UNSUPP)
		return HOSTILE_FAIL(206, 1);
	gd_step(207, 0);
	if (req3(&blk, T_GET_ID, 0, 19, GD_F_WRITE) != S_IOERR ||
	    req3(&blk, T_GET_ID, 0, 21, GD_F_WRITE) != S_IOERR)
		return HOSTILE_FAIL(207, 1);
	if (req3(&blk, T_GET_ID, 0, 20, GD_F_WRITE) != S_OK ||
	    memcmp((void *)(uintptr_t)DATA, "hostile\0", 8) != 0)
		return HOSTILE_FAIL(207, 2);
	return 0;
}

/* One discard or write-zeroes segment at DATA: sector, sectors, flags. */
static int dwz(uint32_t type, uint64_t sector, uint32_t n, uint32_t flags, uint32_t len)
{
	gd_w64(DATA, sector);
	gd_w32(DATA + 8, n);
	gd_w32(DATA + 12, flags);
	return req3(&blk, type, 0, len, 0);
}

/* 212: bad discard and write-zeroes segments, then one that zeroes what was written. */
static uint32_t discard(void)
{
	gd_step(212, 0);
	if (gd_start(&blk, F_DISCARD | F_WZ, 1, 0) != 0)
		return HOSTILE_FAIL(212, 1);
	if (dwz(T_WZ, 0, (1u << 22) + 1, 0, 16) != S_IOERR || dwz(T_WZ, CAP, 1, 0, 16) != S_IOERR ||
	    dwz(T_WZ, CAP - 1, 2, 0, 16) != S_IOERR || dwz(T_DISCARD, ~0ULL, 8, 0, 16) != S_IOERR)
		return HOSTILE_FAIL(212, 2);
	if (dwz(T_WZ, 0, 1, 0xfe, 16) != S_UNSUPP || dwz(T_DISCARD, 0, 1, 1, 16) != S_UNSUPP)
		return HOSTILE_FAIL(212, 3);
	if (dwz(T_WZ, 0, 1, 0, 32) != S_IOERR || dwz(T_WZ, 0, 1, 0, 8) != S_IOERR)
		return HOSTILE_FAIL(212, 4); /* two segments, half a segment */
	memset((void *)(uintptr_t)DATA, 0x33, 512);
	if (req3(&blk, T_OUT, HOSTILE_BLK_ZEROED, 512, 0) != S_OK ||
	    dwz(T_WZ, HOSTILE_BLK_ZEROED, 1, 1, 16) != S_OK)
		return HOSTILE_FAIL(212, 5);
	memset((void *)(uintptr_t)DATA, 0x33, 512);
	if (req3(&blk, T_IN, HOSTILE_BLK_ZEROED, 512, GD_F_WRITE) != S_OK || gd_r64(DATA + 64) != 0)
		return HOSTILE_FAIL(212, 6);
	return 0;
}

/* 213: data and status in one writable buffer: the status is its last byte. */
static uint32_t status_in_data(void)
{
	struct gq *q = &blk.q[0];

	gd_step(213, 0);
	hdr(T_IN, 0);
	gq_desc(q, 0, HDR, 16, GD_F_NEXT, 1);
	gq_desc(q, 1, DATA, 513, GD_F_WRITE, 0);
	gd_w8(DATA + 512, 0xee);
	gq_publish(q, 0);
	gd_kick(&blk, 0);
	return gq_wait(q, NULL) == 0 && gd_r8(DATA + 512) == S_OK ? 0 : HOSTILE_FAIL(213, 1);
}

/* Publishes n reads of one sector each through indirect tables, and kicks once. */
static void flood_publish(unsigned n)
{
	struct gq *q = &blk.q[0];

	for (unsigned i = 0; i < n; i++) {
		uint64_t t = TABLE + i * 64, h = DATA + i * 0x400;
		struct gq table = {.desc = t};

		gd_w32(h, T_IN);
		gd_w32(h + 4, 0);
		gd_w64(h + 8, i);
		gd_w8(h + 0x300, 0xee);
		gq_desc(&table, 0, h, 16, GD_F_NEXT, 1);
		gq_desc(&table, 1, h + 0x100, 512, GD_F_WRITE | GD_F_NEXT, 2);
		gq_desc(&table, 2, h + 0x300, 1, GD_F_WRITE, 0);
		gq_desc(q, i, t, 48, GD_F_INDIRECT, 0);
		gq_publish(q, (uint16_t)i);
	}
	gd_kick(&blk, 0);
}

/* 211: a ring's worth of reads at once: all answered. */
static uint32_t flood(void)
{
	struct gq *q = &blk.q[0];

	gd_step(211, 0);
	flood_publish(q->size);
	for (unsigned i = 0; i < q->size; i++)
		if (gq_wait(q, NULL) < 0)
			return HOSTILE_FAIL(211, 1);
	for (unsigned i = 0; i < q->size; i++)
		if (gd_r8(DATA + i * 0x400 + 0x300) != S_OK)
			return HOSTILE_FAIL(211, 2);
	return 0;
}

/* 214: a reset with a ring's worth of reads in flight: once it is done, nothing more lands. */
static uint32_t reset_in_flight(void)
{
	uint16_t used;

	gd_step(214, 0);
	flood_publish(blk.q[0].size);
	if (gd_reset(&blk) != 0)
		return HOSTILE_FAIL(214, 1);
	used = gd_r16(blk.q[0].used + 2);
	gd_delay_ms(20);
	if (gd_r16(blk.q[0].used + 2) != used)
		return HOSTILE_FAIL(214, 2);
	return gd_good(&blk) == 0 ? 0 : HOSTILE_FAIL(214, 3);
}

/* 215: reads in flight, then a chain that breaks the queue: completions find it broken. */
static uint32_t break_in_flight(void)
{
	struct gq *q = &blk.q[0];

	gd_step(215, HOSTILE_BLK);
	flood_publish(128);
	gq_publish(q, (uint16_t)(q->size + 7));
	gd_kick(&blk, 0);
	if (!gd_wait_needs_reset(&blk))
		return HOSTILE_FAIL(215, 1);
	if (gd_works(&rng) != 0)
		return HOSTILE_FAIL(215, 2);
	return gd_good(&blk) == 0 ? 0 : HOSTILE_FAIL(215, 3);
}

/* 208, 210: chains the device cannot answer: NEEDS_RESET, and rng works meanwhile. */
static uint32_t unanswerable(unsigned id)
{
	struct gq *q = &blk.q[0];
	struct gq table = {.desc = TABLE};

	gd_step(id, HOSTILE_BLK);
	hdr(T_IN, 0);
	if (id == 208) { /* no writable byte for the status */
		gq_desc(q, 0, HDR, 16, GD_F_NEXT, 1);
		gq_desc(q, 1, DATA, 512, 0, 0);
	} else { /* 300 segments: more than seg_max and then some */
		gq_desc(&table, 0, HDR, 16, GD_F_NEXT, 1);
		for (unsigned i = 1; i < 300; i++)
			gq_desc(&table, i, DATA + i * 512, 512, GD_F_WRITE | GD_F_NEXT,
				(uint16_t)(i + 1));
		gq_desc(&table, 300, STATUS, 1, GD_F_WRITE, 0);
		gq_desc(q, 0, TABLE, 301 * 16, GD_F_INDIRECT, 0);
	}
	gq_publish(q, 0);
	gd_kick(&blk, 0);
	if (!gd_wait_needs_reset(&blk))
		return HOSTILE_FAIL(id, 1);
	gd_kick(&blk, 0);
	if (gd_works(&rng) != 0)
		return HOSTILE_FAIL(id, 2);
	return gd_good(&blk) == 0 ? 0 : HOSTILE_FAIL(id, 3);
}

/* The last word: a pattern the runner finds in the image. */
static uint32_t final_write(void)
{
	uint8_t *p = (uint8_t *)(uintptr_t)DATA;

	gd_step(220, 0);
	for (unsigned i = 0; i < 512; i++)
		p[i] = HOSTILE_BLK_FINAL_BYTE(i);
	return expect(220, 1, req3(&blk, T_OUT, HOSTILE_BLK_FINAL_SECTOR, 512, 0), S_OK);
}

/* One vCPU: cpu is 0. */
uint32_t guest_main(__attribute__((unused)) uint64_t cpu)
{
	uint32_t (*const attacks[])(void) = {headers, past_end,	      directions, readonly,
					     types,   status_in_data, flood,	  discard};
	uint32_t r = 0;

	if (gd_find(&rng, HOSTILE_RNG, 0, GD_DEV_BASE) != 0 ||
	    gd_find(&blk, HOSTILE_BLK, 0, GD_DEV_BASE + GD_DEV_SIZE) != 0 ||
	    gd_find(&ro, HOSTILE_BLK, 1, GD_DEV_BASE + 2 * GD_DEV_SIZE) != 0)
		return HOSTILE_FAIL(0, 1);
	if (gd_good(&rng) != 0 || gd_good(&blk) != 0 || gd_good(&ro) == 0)
		return HOSTILE_FAIL(0, 2); /* the readonly disk's good request is a write */
	if (gd_setup(&ro) != 0)
		return HOSTILE_FAIL(0, 3);
	for (unsigned i = 0; r == 0 && i < sizeof(attacks) / sizeof(attacks[0]); i++)
		r = attacks[i]();
	if (r == 0)
		r = unanswerable(208);
	if (r == 0)
		r = unanswerable(210);
	if (r == 0)
		r = reset_in_flight();
	if (r == 0)
		r = break_in_flight();
	if (r == 0 && gd_status(&ro) != (GD_ACK | GD_DRIVER | GD_FEATURES_OK | GD_DRIVER_OK))
		r = HOSTILE_FAIL(0, 4); /* the readonly disk saw only errors, never a reset */
	return r != 0 ? r : final_write();
}
