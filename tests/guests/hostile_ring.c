/*
 * hostile_ring: attacks the virtqueue of one device (the runner's
 * hostile_params.victim: rng, blk, net's transmit queue or vsock's) with
 * malformed descriptors, indirect tables, ring indices, ring geometry and
 * status sequences. After each attack the victim must be in NEEDS_RESET (with
 * a configuration interrupt once DRIVER_OK was set), ignore further kicks,
 * leave the other device working, and work again after a reset. A few
 * unusual but legal chains must simply work.
 */
#include "gdrv.h"

#define SCR	 GD_SCRATCH
#define BIG	 (200u << 20) /* two of these exceed the 256 MiB a chain may hold */
#define IND_MAX	 32768	      /* the most entries an indirect table may have */
#define ALL_OK	 (GD_ACK | GD_DRIVER | GD_FEATURES_OK | GD_DRIVER_OK)
#define F_KICKED 1 /* the attack needs a kick (it is in the rings, not in a register) */

static struct gdev devs[4];
static struct gdev *victim, *other;
static unsigned vq;    /* the victim's queue under attack */
static uint16_t wflag; /* flags of a plain buffer for the victim: rng takes writable ones */
static uint64_t ram;

static struct gq *attacked(void)
{
	return &victim->q[vq];
}

/* Entry i of an indirect table at table. */
static void tdesc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next)
{
	struct gq t = {.desc = table};

	gq_desc(&t, i, addr, len, flags, next);
}

static void one(struct gq *q, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	gq_desc(q, 0, addr, len, flags, next);
	gq_publish(q, 0);
}

/* ---- malformed chains ---- */

static void bad_beyond_ram(struct gq *q)
{
	one(q, ram, 64, wflag, 0);
}

static void bad_straddle_ram(struct gq *q)
{
	one(q, ram - 32, 64, wflag, 0);
}

static void bad_mmio_hole(struct gq *q)
{
	one(q, victim->bar, 64, wflag, 0); /* the device's own registers */
}

static void bad_wrap(struct gq *q)
{
	one(q, 0xfffffffffffff000ULL, 0x2000, wflag, 0);
}

static void bad_len_4g(struct gq *q)
{
	one(q, SCR, 0xffffffffu, wflag, 0);
}

static void bad_zero_len(struct gq *q)
{
	gq_desc(q, 1, SCR, 0, wflag, 0);
	one(q, SCR, 0, wflag | GD_F_NEXT, 1);
}

static void bad_loop(struct gq *q)
{
	gq_desc(q, 1, SCR + 16, 16, wflag | GD_F_NEXT, 0);
	one(q, SCR, 16, wflag | GD_F_NEXT, 1);
}

static void bad_self_loop(struct gq *q)
{
	one(q, SCR, 16, wflag | GD_F_NEXT, 0);
}

/* Empty buffers add no bytes: only the loop detection stops this walk. */
static void bad_empty_loop(struct gq *q)
{
	gq_desc(q, 1, SCR, 0, wflag | GD_F_NEXT, 0);
	one(q, SCR, 0, wflag | GD_F_NEXT, 1);
}

/* Every descriptor of the table in one cycle: longer than the queue. */
static void bad_longer_than_queue(struct gq *q)
{
	for (unsigned i = 1; i < q->size; i++)
		gq_desc(q, i, SCR + 16 * i, 16, wflag | GD_F_NEXT, (uint16_t)((i + 1) % q->size));
	one(q, SCR, 16, wflag | GD_F_NEXT, 1);
}

static void bad_next_size(struct gq *q)
{
	one(q, SCR, 16, wflag | GD_F_NEXT, q->size);
}

static void bad_next_ffff(struct gq *q)
{
	one(q, SCR, 16, wflag | GD_F_NEXT, 0xffff);
}

static void bad_head(struct gq *q)
{
	gq_publish(q, (uint16_t)(q->size + 3));
}

static void bad_idx_jump(struct gq *q)
{
	gq_desc(q, 0, SCR, 16, wflag, 0);
	gd_w16(q->avail + 2, (uint16_t)(q->size + 1));
}

static void bad_idx_back(struct gq *q)
{
	gd_w16(q->avail + 2, 0xffff); /* "minus one": 65535 chains ahead */
}

static void bad_order(struct gq *q)
{
	gq_desc(q, 1, SCR + 16, 16, 0, 0);
	one(q, SCR, 16, GD_F_WRITE | GD_F_NEXT, 1);
}

static void bad_chain_bytes(struct gq *q)
{
	gq_desc(q, 1, SCR, BIG, wflag, 0);
	one(q, SCR, BIG, wflag | GD_F_NEXT, 1);
}

/* ---- indirect tables ---- */

static void ind(struct gq *q, uint64_t table, uint32_t len)
{
	one(q, table, len, GD_F_INDIRECT, 0);
}

static void bad_ind_nested(struct gq *q)
{
	tdesc(SCR + 0x1000, 0, SCR + 0x2000, 16, wflag, 0);
	tdesc(SCR, 0, SCR + 0x1000, 16, GD_F_INDIRECT, 0);
	ind(q, SCR, 16);
}

static void bad_ind_partial(struct gq *q)
{
	tdesc(SCR, 0, SCR + 0x2000, 16, wflag, 0);
	ind(q, SCR, 24);
}

static void bad_ind_empty(struct gq *q)
{
	ind(q, SCR, 0);
}

static void bad_ind_outside(struct gq *q)
{
	ind(q, ram - 16, 32);
}

static void bad_ind_hole(struct gq *q)
{
	ind(q, 0xd0000000ULL, 64);
}

static void bad_ind_wrap(struct gq *q)
{
	ind(q, 0xfffffffffffffff0ULL, 32);
}

static void bad_ind_next(struct gq *q)
{
	tdesc(SCR, 0, SCR + 0x2000, 16, wflag, 0);
	gq_desc(q, 1, SCR + 0x3000, 16, wflag, 0);
	one(q, SCR, 16, GD_F_INDIRECT | GD_F_NEXT, 1);
}

static void bad_ind_huge(struct gq *q)
{
	memset((void *)(uintptr_t)SCR, 0, (IND_MAX + 1) * 16);
	ind(q, SCR, (IND_MAX + 1) * 16);
}

static void bad_ind_next_range(struct gq *q)
{
	tdesc(SCR, 0, SCR + 0x2000, 16, wflag | GD_F_NEXT, 1);
	ind(q, SCR, 16);
}

static void bad_ind_loop(struct gq *q)
{
	tdesc(SCR, 0, SCR + 0x2000, 16, wflag | GD_F_NEXT, 1);
	tdesc(SCR, 1, SCR + 0x2010, 16, wflag | GD_F_NEXT, 0);
	ind(q, SCR, 32);
}

static void bad_ind_empty_loop(struct gq *q)
{
	tdesc(SCR, 0, 0, 0, wflag | GD_F_NEXT, 1);
	tdesc(SCR, 1, 0, 0, wflag | GD_F_NEXT, 0);
	ind(q, SCR, 32);
}

static void bad_ind_buffer(struct gq *q)
{
	tdesc(SCR, 0, ram + 0x1000, 16, wflag, 0);
	ind(q, SCR, 16);
}

/* Without VIRTIO_F_INDIRECT_DESC negotiated (see the table: want = 0). */
static void bad_ind_unnegotiated(struct gq *q)
{
	tdesc(SCR, 0, SCR + 0x2000, 16, wflag, 0);
	ind(q, SCR, 16);
}

struct attack {
	void (*bad)(struct gq *q);
	uint64_t want;
};

static const struct attack chain_attacks[] = {
    {bad_beyond_ram, GD_F_INDIRECT_DESC},	 /* 1 */
    {bad_straddle_ram, GD_F_INDIRECT_DESC},	 /* 2 */
    {bad_mmio_hole, GD_F_INDIRECT_DESC},	 /* 3 */
    {bad_wrap, GD_F_INDIRECT_DESC},		 /* 4 */
    {bad_len_4g, GD_F_INDIRECT_DESC},		 /* 5 */
    {bad_zero_len, GD_F_INDIRECT_DESC},		 /* 6 */
    {bad_loop, GD_F_INDIRECT_DESC},		 /* 7 */
    {bad_self_loop, GD_F_INDIRECT_DESC},	 /* 8 */
    {bad_longer_than_queue, GD_F_INDIRECT_DESC}, /* 9 */
    {bad_next_size, GD_F_INDIRECT_DESC},	 /* 10 */
    {bad_next_ffff, GD_F_INDIRECT_DESC},	 /* 11 */
    {bad_head, GD_F_INDIRECT_DESC},		 /* 12 */
    {bad_idx_jump, GD_F_INDIRECT_DESC},		 /* 13 */
    {bad_idx_back, GD_F_INDIRECT_DESC},		 /* 14 */
    {bad_order, GD_F_INDIRECT_DESC},		 /* 15 */
    {bad_chain_bytes, GD_F_INDIRECT_DESC},	 /* 16 */
    {bad_ind_nested, GD_F_INDIRECT_DESC},	 /* 17 */
    {bad_ind_partial, GD_F_INDIRECT_DESC},	 /* 18 */
    {bad_ind_empty, GD_F_INDIRECT_DESC},	 /* 19 */
    {bad_ind_outside, GD_F_INDIRECT_DESC},	 /* 20 */
    {bad_ind_hole, GD_F_INDIRECT_DESC},		 /* 21 */
    {bad_ind_wrap, GD_F_INDIRECT_DESC},		 /* 22 */
    {bad_ind_next, GD_F_INDIRECT_DESC},		 /* 23 */
    {bad_ind_huge, GD_F_INDIRECT_DESC},		 /* 24 */
    {bad_ind_next_range, GD_F_INDIRECT_DESC},	 /* 25 */
    {bad_ind_loop, GD_F_INDIRECT_DESC},		 /* 26 */
    {bad_ind_buffer, GD_F_INDIRECT_DESC},	 /* 27 */
    {bad_ind_unnegotiated, 0},			 /* 28 */
    {bad_empty_loop, GD_F_INDIRECT_DESC},	 /* 29 */
    {bad_ind_empty_loop, GD_F_INDIRECT_DESC},	 /* 30 */
};

/*
 * The checks after every attack that must break the victim: NEEDS_RESET,
 * and (after DRIVER_OK) a configuration interrupt in the ISR; kicks change
 * nothing; the other device works meanwhile; a reset brings the victim back.
 */
static uint32_t after_break(unsigned id, bool driver_ok)
{
	if (!gd_wait_needs_reset(victim))
		return HOSTILE_FAIL(id, 2);
	if (driver_ok && !(gd_r8(victim->isr) & 2))
		return HOSTILE_FAIL(id, 3);
	for (unsigned i = 0; i < 3; i++)
		gd_kick(victim, vq);
	if (!(gd_status(victim) & GD_NEEDS_RESET))
		return HOSTILE_FAIL(id, 4);
	if (gd_works(other) != 0)
		return HOSTILE_FAIL(id, 5);
	if (gd_good(victim) != 0)
		return HOSTILE_FAIL(id, 6);
	return 0;
}

static uint32_t chain_attack(unsigned id, const struct attack *a)
{
	gd_step(id, victim->type);
	if (gd_start(victim, a->want, victim->nq, 0) != 0)
		return HOSTILE_FAIL(id, 1);
	a->bad(attacked());
	gd_kick(victim, vq);
	return after_break(id, true);
}

/* ---- ring geometry, checked when the driver enables the queue ---- */

struct geometry {
	uint32_t size;		    /* MAXQ: the device's maximum */
	uint64_t desc, avail, used; /* offsets from the default place, or absolute if >= 1 GiB */
};

#define MAXQ 0x10000
#define ABS  (1ULL << 30)

static const struct geometry geometries[] = {
    {3, 0, 0x1000, 0x2000},			   /* 40: not a power of two */
    {0, 0, 0x1000, 0x2000},			   /* 41: zero */
    {512, 0, 0x1000, 0x2000},			   /* 42: above the maximum */
    {32768, 0, 0x1000, 0x2000},			   /* 43: the spec's maximum, above ours */
    {65535, 0, 0x1000, 0x2000},			   /* 44 */
    {MAXQ, 0xc0000000, 0x1000, 0x2000},		   /* 45: descriptors in the MMIO hole */
    {MAXQ, 0, 0xfee00000, 0x2000},		   /* 46: avail ring on the LAPIC */
    {MAXQ, 0, 0x1000, 0xfffffffffffff000ULL},	   /* 47: used ring wrapping 2^64 */
    {MAXQ, 0x100000000ULL, 0x1000, 0x2000},	   /* 48: where high RAM would be */
    {MAXQ, 8, 0x1000, 0x2000},			   /* 49: descriptors misaligned */
    {MAXQ, 0, 0x1001, 0x2000},			   /* 50: avail misaligned */
    {MAXQ, 0, 0x1000, 0x2002},			   /* 51: used misaligned */
    {MAXQ, 0xfffffffffffffff0ULL, 0x1000, 0x2000}, /* 52 */
};

static uint64_t geo_addr(uint64_t v, uint64_t base)
{
	return v >= ABS ? v : base + v;
}

/* Bad rings at one end of RAM: ids 53, 54, 55 (the used ring straddles the end). */
static const struct geometry *geo_at_end(unsigned which, struct geometry *g)
{
	uint64_t base = SCR + 0x800000; /* never used: the queue is refused */

	g->size = MAXQ;
	g->desc = base;
	g->avail = base + 0x1000;
	g->used = base + 0x2000;
	if (which == 0)
		g->desc = ram - 0x800;
	else if (which == 1)
		g->avail = ram - 0x100;
	else
		g->used = ram;
	return g;
}

static uint32_t geometry_attack(unsigned id, const struct geometry *g)
{
	uint64_t base = victim->mem + (uint64_t)vq * GD_RING_SIZE;
	uint16_t size = g->size == MAXQ ? gd_queue_max(victim, vq) : (uint16_t)g->size;

	gd_step(id, victim->type);
	if (gd_negotiate(victim, GD_F_INDIRECT_DESC) != 0)
		return HOSTILE_FAIL(id, 1);
	gd_queue_program(victim, vq, size, geo_addr(g->desc, base), geo_addr(g->avail, base),
			 geo_addr(g->used, base));
	gd_queue_enable(victim, vq);
	/* Refused at once, on the vCPU: the queue never runs. */
	if (!(gd_status(victim) & GD_NEEDS_RESET))
		return HOSTILE_FAIL(id, 7);
	if (gd_r16(victim->common + GD_QENABLE) != 0)
		return HOSTILE_FAIL(id, 8);
	return after_break(id, false);
}

/* ---- status sequences ---- */

static uint32_t status_attack(unsigned id)
{
	gd_step(id, victim->type);
	if (id == 60) { /* a queue enabled before FEATURES_OK */
		gd_reset(victim);
		gd_set_status(victim, GD_ACK | GD_DRIVER);
		gd_queue_default(victim, vq, gd_queue_max(victim, vq));
		gd_queue_enable(victim, vq);
	} else if (id == 61) { /* DRIVER_OK without FEATURES_OK */
		gd_reset(victim);
		gd_set_status(victim, GD_ACK | GD_DRIVER);
		gd_set_status(victim, GD_ACK | GD_DRIVER | GD_DRIVER_OK);
	} else { /* 62: a working driver clears a status bit */
		if (gd_setup(victim) != 0)
			return HOSTILE_FAIL(id, 1);
		gd_set_status(victim, GD_ACK | GD_DRIVER_OK | GD_FEATURES_OK);
	}
	return after_break(id, id == 62);
}

/* Features the device never offered, or no VERSION_1: FEATURES_OK does not stick. */
static uint32_t features_refused(unsigned id, uint32_t lo, uint32_t hi)
{
	gd_step(id, 0);
	gd_reset(victim);
	gd_set_status(victim, GD_ACK | GD_DRIVER);
	gd_w32(victim->common + GD_GFSELECT, 0);
	gd_w32(victim->common + GD_GF, lo);
	gd_w32(victim->common + GD_GFSELECT, 1);
	gd_w32(victim->common + GD_GF, hi);
	gd_set_status(victim, GD_ACK | GD_DRIVER | GD_FEATURES_OK);
	if (gd_status(victim) != (GD_ACK | GD_DRIVER))
		return HOSTILE_FAIL(id, 1);
	return gd_good(victim) == 0 ? 0 : HOSTILE_FAIL(id, 6);
}

/* ---- legal but unusual chains: they must work (rng only: any device parses them alike) ---- */

static uint32_t rng_expect(unsigned id, uint16_t head, uint64_t buf, uint32_t want)
{
	struct gq *q = &victim->q[0];
	uint32_t len = 0;

	gd_w64(buf, 0);
	gq_publish(q, head);
	gd_kick(victim, 0);
	if (gq_wait(q, &len) != head || len != want || gd_r64(buf) == 0)
		return HOSTILE_FAIL(id, 1);
	return gd_status(victim) == ALL_OK ? 0 : HOSTILE_FAIL(id, 2);
}

static uint32_t tolerated(unsigned id)
{
	struct gq *q = &victim->q[0];
	uint64_t table = SCR + 0x100001; /* odd: tables need no alignment */

	gd_step(id, 0);
	if (gd_setup(victim) != 0)
		return HOSTILE_FAIL(id, 9);
	if (id == 80) { /* a zero-length buffer may point anywhere */
		gq_desc(q, 0, 0xfffffffffffff000ULL, 0, GD_F_WRITE | GD_F_NEXT, 1);
		gq_desc(q, 1, SCR, 8, GD_F_WRITE, 0);
		return rng_expect(id, 0, SCR, 8);
	}
	if (id == 81) { /* a misaligned indirect table */
		tdesc(table, 0, SCR, 8, GD_F_WRITE, 0);
		gq_desc(q, 2, table, 16, GD_F_INDIRECT, 0);
		return rng_expect(id, 2, SCR, 8);
	}
	if (id == 82) { /* the largest indirect table, all but the last buffer empty */
		memset((void *)(uintptr_t)SCR, 0, IND_MAX * 16);
		for (unsigned i = 0; i + 1 < IND_MAX; i++)
			tdesc(SCR, i, 0, 0, GD_F_WRITE | GD_F_NEXT, (uint16_t)(i + 1));
		tdesc(SCR, IND_MAX - 1, SCR + 0x200000, 8, GD_F_WRITE, 0);
		gq_desc(q, 3, SCR, IND_MAX * 16, GD_F_INDIRECT, 0);
		return rng_expect(id, 3, SCR + 0x200000, 8);
	}
	/* 83: a chain through every descriptor of the table, no loop */
	for (unsigned i = 0; i + 1 < q->size; i++)
		gq_desc(q, i, SCR, 0, GD_F_WRITE | GD_F_NEXT, (uint16_t)(i + 1));
	gq_desc(q, q->size - 1u, SCR + 0x1000, 8, GD_F_WRITE, 0);
	return rng_expect(id, 0, SCR + 0x1000, 8);
}

/* 84, 85: the smallest queues there are, wrapping around a few times. */
static uint32_t small_queue(unsigned id)
{
	struct gq *q = &victim->q[0];
	uint16_t size = id == 84 ? 1 : 2;

	gd_step(id, 0);
	if (gd_start(victim, GD_F_INDIRECT_DESC, 1, size) != 0)
		return HOSTILE_FAIL(id, 3);
	for (unsigned i = 0; i < 3u * size; i++) {
		gq_desc(q, i % size, SCR + i * 64, 8, GD_F_WRITE, 0);
		if (rng_expect(id, (uint16_t)(i % size), SCR + i * 64, 8) != 0)
			return HOSTILE_FAIL(id, 4);
	}
	return 0;
}

/* ---- the run ---- */

static uint32_t find_devices(void)
{
	static const uint16_t types[] = {HOSTILE_RNG, HOSTILE_BLK, HOSTILE_NET, HOSTILE_VSOCK};

	for (unsigned i = 0; i < 4; i++)
		if (gd_find(&devs[i], types[i], 0, GD_DEV_BASE + i * GD_DEV_SIZE) != 0)
			return HOSTILE_FAIL(0, 1 + i);
	for (unsigned i = 0; i < 4; i++)
		if (devs[i].type == gd_params()->victim)
			victim = &devs[i];
	if (victim == NULL)
		return HOSTILE_FAIL(0, 5);
	other = victim == &devs[0] ? &devs[1] : &devs[0];
	vq = victim->type == HOSTILE_NET || victim->type == HOSTILE_VSOCK ? 1 : 0;
	wflag = victim->type == HOSTILE_RNG ? GD_F_WRITE : 0;
	ram = gd_params()->ram_size;
	return gd_good(other) == 0 ? 0 : HOSTILE_FAIL(0, 6);
}

static uint32_t run_all(void)
{
	struct geometry g;
	uint32_t r = 0;
	unsigned i;

	for (i = 0; r == 0 && i < sizeof(chain_attacks) / sizeof(chain_attacks[0]); i++)
		r = chain_attack(1 + i, &chain_attacks[i]);
	for (i = 0; r == 0 && i < sizeof(geometries) / sizeof(geometries[0]); i++)
		r = geometry_attack(40 + i, &geometries[i]);
	for (i = 0; r == 0 && i < 3; i++)
		r = geometry_attack(53 + i, geo_at_end(i, &g));
	for (i = 60; r == 0 && i <= 62; i++)
		r = status_attack(i);
	if (r == 0)
		r = features_refused(63, 0,
				     1u | 1u << 28); /* VERSION_1 and bit 60: never offered */
	if (r == 0)
		r = features_refused(64, 0, 0); /* no VERSION_1 */
	for (i = 80; r == 0 && victim->type == HOSTILE_RNG && i <= 83; i++)
		r = tolerated(i);
	for (i = 84; r == 0 && victim->type == HOSTILE_RNG && i <= 85; i++)
		r = small_queue(i);
	return r;
}

/* One vCPU: cpu is 0. */
uint32_t guest_main(__attribute__((unused)) uint64_t cpu)
{
	uint32_t r = find_devices();

	return r != 0 ? r : run_all();
}
