/*
 * hostile_race: two vCPUs. vCPU 0 submits requests to each device in turn,
 * on queues of 4 entries, while vCPU 1 either (HOSTILE_RACE_RINGS) rewrites
 * the descriptors, the indirect table and the avail ring entries under it at
 * full speed, with values from good to absurd, or (HOSTILE_RACE_RESET)
 * resets the device at random moments, I/O in flight or not. Whatever the
 * device reads, it must answer or go NEEDS_RESET (or be reset), never read or
 * write outside guest RAM (run it under ASan), and work once the racing
 * stops: this is the attack a parser that fetches a field twice, or a reset
 * that forgets a request in flight, loses. Every buffer address the racer
 * writes lies in scratch space or outside RAM, so the devices' writes cannot
 * hit the guest's own code.
 */
#include "gdrv.h"

#define QSIZE	4
#define SCR	GD_SCRATCH
#define TABLE	(SCR + 0x10000) /* an indirect table of 4 entries, rewritten too */
#define DATA	(SCR + 0x20000)
#define WAIT_MS 3000

/* What vCPU 0 tells vCPU 1: the device and rings to race on, and when to stop. */
struct race {
	volatile uint64_t desc, avail, common;
	volatile uint32_t go, stop, stopped;
};

static struct race *race(void)
{
	return (struct race *)(uintptr_t)GUEST_SHARED;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- vCPU 1 ---- */

static const uint64_t addrs[] = {
    DATA,	   DATA + 0x800,	  TABLE,	 GD_SCRATCH + GD_SCRATCH_SZ - 8,
    0xc0000000ULL, 0xfffffffffffff000ULL, 0x100000000ULL};
static const uint32_t lens[] = {0, 1, 16, 48, 512, 4096, 0x7ffffff0, 0xffffffff};
static const uint16_t nexts[] = {0, 1, 2, 3, QSIZE, 0xffff};

/* One random store into a descriptor, the indirect table, or an avail ring entry. */
static void scribble(uint64_t desc, uint64_t avail, uint64_t *seed)
{
	uint64_t r = xorshift(seed);
	uint64_t d = (r >> 8 & 1 ? TABLE : desc) + (r >> 9 & 3) * 16;

	switch (r & 7) {
	case 0:
	case 1:
		gd_w64(d, addrs[(r >> 16) % (sizeof(addrs) / sizeof(addrs[0]))]);
		break;
	case 2:
	case 3:
		gd_w32(d + 8, lens[(r >> 16) % (sizeof(lens) / sizeof(lens[0]))]);
		break;
	case 4:
	case 5:
		gd_w16(d + 12, (uint16_t)(r >> 16) & 7); /* NEXT, WRITE, INDIRECT */
		break;
	case 6:
		gd_w16(d + 14, nexts[(r >> 16) % (sizeof(nexts) / sizeof(nexts[0]))]);
		break;
	default:
		gd_w16(avail + 4 + (r >> 16 & 3) * 2, (uint16_t)(r >> 20) % (QSIZE + 2));
		break;
	}
}

/* A reset of the current device after a random pause of up to a few milliseconds. */
static void reset_later(uint64_t *seed)
{
	for (uint64_t n = xorshift(seed) & 0xffff; n > 0 && !race()->stop; n--)
		__asm__ volatile("pause");
	gd_w8(race()->common + GD_STATUS, 0);
}

static void racer(uint32_t mode)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	while (!race()->go)
		__asm__ volatile("pause");
	while (!race()->stop)
		if (mode == HOSTILE_RACE_RESET)
			reset_later(&seed);
		else
			scribble(race()->desc, race()->avail, &seed);
	race()->stopped = 1;
	for (;;)
		__asm__ volatile("pause");
}

/* ---- vCPU 0 ---- */

static struct gdev devs[4];

/* A request that would be fine if nobody touched it: one descriptor per kind of device. */
static void submit(struct gdev *d, unsigned q)
{
	struct gq *g = &d->q[q];

	if (d->type == HOSTILE_BLK) {
		gd_w32(DATA, 0); /* IN, sector 0 */
		gd_w64(DATA + 8, 0);
		gq_desc(g, 0, DATA, 16, GD_F_NEXT, 1);
		gq_desc(g, 1, DATA + 0x200, 512, GD_F_WRITE | GD_F_NEXT, 2);
		gq_desc(g, 2, DATA + 0x400, 1, GD_F_WRITE, 0);
	} else {
		gq_desc(g, 0, DATA, 64, d->type == HOSTILE_RNG ? GD_F_WRITE : 0, 0);
	}
	race()->desc = g->desc;
	race()->avail = g->avail;
	race()->common = d->common;
	gq_publish(g, 0);
	gd_kick(d, q);
}

/* Sets d up again after the racer broke or reset it; it may reset it meanwhile: retry. */
static int again(struct gdev *d)
{
	for (unsigned i = 0; i < 1000; i++)
		if (gd_start(d, GD_F_INDIRECT_DESC, d->nq, QSIZE) == 0)
			return 0;
	return 2;
}

/* Waits for an answer, or for the device to need (or have had) a reset; 0, or 1 if neither. */
static int settle(struct gdev *d, unsigned q)
{
	struct gq *g = &d->q[q];
	uint64_t end = gd_rdtsc() + (uint64_t)WAIT_MS * 2000000;

	while (gd_rdtsc() < end) {
		if (gq_has_used(g)) {
			g->used_seen = gd_r16(g->used + 2);
			return 0;
		}
		if (gd_status(d) != (GD_ACK | GD_DRIVER | GD_FEATURES_OK | GD_DRIVER_OK))
			return again(d);
	}
	return 1;
}

static uint32_t driver(void)
{
	static const uint16_t types[] = {HOSTILE_RNG, HOSTILE_BLK, HOSTILE_NET, HOSTILE_VSOCK};
	unsigned rounds = gd_params()->rounds;
	uint32_t step =
	    gd_params()->mode == HOSTILE_RACE_RESET ? HOSTILE_STEP_UNCHECKED : HOSTILE_STEP_ANY;
	int r;

	for (unsigned i = 0; i < 4; i++)
		if (gd_find(&devs[i], types[i], 0, GD_DEV_BASE + i * GD_DEV_SIZE) != 0 ||
		    gd_start(&devs[i], GD_F_INDIRECT_DESC, devs[i].nq, QSIZE) != 0)
			return HOSTILE_FAIL(0, 1 + i);
	race()->go = 1;
	for (unsigned n = 0; n < rounds; n++) {
		struct gdev *d = &devs[n % 4];
		unsigned q = d->type == HOSTILE_NET || d->type == HOSTILE_VSOCK ? 1 : 0;

		gd_step(1 + n, step);
		submit(d, q);
		if ((r = settle(d, q)) != 0)
			return HOSTILE_FAIL(1 + n, (uint32_t)r);
	}
	race()->stop = 1;
	while (!race()->stopped)
		__asm__ volatile("pause");
	/* The racer is done: every device must still work. */
	gd_step(rounds + 1, 0);
	for (unsigned i = 0; i < 4; i++)
		if (gd_good(&devs[i]) != 0)
			return HOSTILE_FAIL(rounds + 1, 1 + i);
	return 0;
}

uint32_t guest_main(uint64_t cpu)
{
	if (cpu != 0)
		racer(gd_params()->mode);
	return driver();
}
