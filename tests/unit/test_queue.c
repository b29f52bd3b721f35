/*
 * The virtqueue parser against rings built as a driver builds them (VIRTIO
 * 1.2, 2.7), in a real guest_memory. The layout is written here from the spec,
 * byte offset by byte offset, independently of queue.c.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "log_capture.h"
#include "util/log.h"
#include "virtio/queue.h"
#include "vmm/memory.h"

#define F_NEXT	   1
#define F_WRITE	   2
#define F_INDIRECT 4

#define DESC  0x10000ULL
#define AVAIL 0x20000ULL
#define USED  0x30000ULL
#define BUF   0x100000ULL
#define QSIZE 16

/* The driver side of one queue. */
struct drv {
	struct guest_memory mem;
	struct virtqueue vq;
	uint16_t size;
	uint16_t avail_idx;
	struct iovec iov[64];
	struct vq_chain chain;
};

static void put16(struct drv *d, uint64_t gpa, uint16_t v)
{
	cr_assert_eq(memory_write(&d->mem, gpa, &v, 2), 0);
}

static void put32(struct drv *d, uint64_t gpa, uint32_t v)
{
	cr_assert_eq(memory_write(&d->mem, gpa, &v, 4), 0);
}

static void put64(struct drv *d, uint64_t gpa, uint64_t v)
{
	cr_assert_eq(memory_write(&d->mem, gpa, &v, 8), 0);
}

static uint16_t get16(struct drv *d, uint64_t gpa)
{
	uint16_t v;

	cr_assert_eq(memory_read(&d->mem, gpa, &v, 2), 0);
	return v;
}

static uint32_t get32(struct drv *d, uint64_t gpa)
{
	uint32_t v;

	cr_assert_eq(memory_read(&d->mem, gpa, &v, 4), 0);
	return v;
}

/* Writes a descriptor into the table at gpa `table`. */
static void desc_at(struct drv *d, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next)
{
	uint64_t p = table + 16ULL * i;

	put64(d, p, addr);
	put32(d, p + 8, len);
	put16(d, p + 12, flags);
	put16(d, p + 14, next);
}

static void desc(struct drv *d, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	desc_at(d, DESC, i, addr, len, flags, next);
}

/* Puts head in the next available slot and publishes it. */
static void publish(struct drv *d, uint16_t head)
{
	put16(d, AVAIL + 4 + 2ULL * (d->avail_idx % d->size), head);
	d->avail_idx++;
	put16(d, AVAIL + 2, d->avail_idx);
}

static uint16_t used_idx(struct drv *d)
{
	return get16(d, USED + 2);
}

static uint32_t used_id(struct drv *d, uint16_t i)
{
	return get32(d, USED + 4 + 8ULL * (i % d->size));
}

static uint32_t used_len(struct drv *d, uint16_t i)
{
	return get32(d, USED + 8 + 8ULL * (i % d->size));
}

static void set_used_event(struct drv *d, uint16_t v)
{
	put16(d, AVAIL + 4 + 2ULL * d->size, v);
}

static uint16_t avail_event(struct drv *d)
{
	return get16(d, USED + 4 + 8ULL * d->size);
}

static void drv_setup(struct drv *d, uint16_t size, bool event_idx, bool indirect)
{
	cr_assert_eq(vq_setup(&d->vq, &d->mem, size, DESC, AVAIL, USED, event_idx, indirect), 0);
	d->size = size;
	d->avail_idx = 0;
	put16(d, AVAIL, 0);
	put16(d, AVAIL + 2, 0);
	d->chain.iov = d->iov;
}

static void drv_init_mem(struct drv *d, uint64_t ram, bool event_idx, bool indirect)
{
	memset(d, 0, sizeof(*d));
	cr_assert_eq(memory_init(&d->mem, ram), 0);
	d->vq.name = "test-queue";
	drv_setup(d, QSIZE, event_idx, indirect);
}

static void drv_init(struct drv *d, bool event_idx, bool indirect)
{
	drv_init_mem(d, 64ULL << 20, event_idx, indirect);
}

static int pop(struct drv *d)
{
	return vq_pop(&d->vq, &d->chain, 64);
}

/* After a violation: refused, broken, stays broken, and a reset cures it. */
static void expect_broken(struct drv *d)
{
	cr_assert_eq(pop(d), -EINVAL);
	cr_assert(d->vq.broken);
	cr_assert_eq(pop(d), -EINVAL);
	cr_assert_eq(vq_push(&d->vq, 0, 0), -EINVAL);
	cr_assert_not(vq_has_avail(&d->vq));

	vq_reset(&d->vq);
	cr_assert_not(d->vq.broken);
	cr_assert_eq(pop(d), 0, "a reset queue is not ready");
	drv_setup(d, QSIZE, false, true);
	desc(d, 0, BUF, 100, 0, 0);
	publish(d, 0);
	cr_assert_eq(pop(d), 1);
	cr_assert_eq(d->chain.nread, 1);
	cr_assert_eq(vq_push(&d->vq, d->chain.head, 0), 0);
	memory_destroy(&d->mem);
}

Test(queue, setup_checks_size_alignment_and_ram)
{
	struct drv d;

	drv_init(&d, false, false);
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 0, DESC, AVAIL, USED, false, false), -EINVAL);
	cr_assert_not(d.vq.ready);
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 3, DESC, AVAIL, USED, false, false), -EINVAL);
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 32768, DESC, AVAIL, USED, false, false), 0);
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 16, DESC + 8, AVAIL, USED, false, false), -EINVAL);
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 16, DESC, AVAIL + 1, USED, false, false), -EINVAL);
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 16, DESC, AVAIL, USED + 2, false, false), -EINVAL);
	/* The used ring (6 + 8 * 16 bytes) would run past the end of RAM. */
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 16, DESC, AVAIL, (64ULL << 20) - 128, false, false),
		     -EINVAL);
	/* The available ring needs room for used_event too: 6 + 2 * 16 bytes. */
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 16, DESC, (64ULL << 20) - 36, USED, false, false),
		     -EINVAL);
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 16, DESC, (64ULL << 20) - 38, USED, false, false), 0);
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 16, 1ULL << 40, AVAIL, USED, false, false), -EINVAL);
	cr_assert_eq(vq_setup(&d.vq, &d.mem, 16, UINT64_MAX - 15, AVAIL, USED, false, false),
		     -EINVAL);
	cr_assert_str_eq(d.vq.name, "test-queue", "the name survives setup and reset");
	memory_destroy(&d.mem);
}

Test(queue, empty_and_not_ready)
{
	struct drv d;

	drv_init(&d, false, false);
	cr_assert_eq(pop(&d), 0);
	cr_assert_not(vq_has_avail(&d.vq));
	cr_assert_eq(vq_push(&d.vq, 0, 0), -EINVAL, "nothing is outstanding");
	vq_reset(&d.vq);
	cr_assert_eq(pop(&d), 0);
	cr_assert_eq(vq_push(&d.vq, 0, 0), -EINVAL);
	cr_assert_not(vq_should_notify(&d.vq));
	memory_destroy(&d.mem);
}

Test(queue, simple_chain_round_trip)
{
	struct drv d;

	drv_init(&d, false, false);
	desc(&d, 5, BUF, 512, 0, 0);
	publish(&d, 5);
	cr_assert(vq_has_avail(&d.vq));
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(d.chain.head, 5);
	cr_assert_eq(d.chain.nread, 1);
	cr_assert_eq(d.chain.nwrite, 0);
	cr_assert_eq(d.chain.read_bytes, 512);
	cr_assert_eq(d.iov[0].iov_base, gpa_to_hva(&d.mem, BUF, 512));
	cr_assert_eq(d.iov[0].iov_len, 512);
	cr_assert_eq(pop(&d), 0);
	cr_assert_eq(vq_push(&d.vq, 5, 7), 0);
	cr_assert_eq(used_idx(&d), 1);
	cr_assert_eq(used_id(&d, 0), 5);
	cr_assert_eq(used_len(&d, 0), 7);
	cr_assert_eq(vq_push(&d.vq, 5, 7), -EINVAL, "pushed twice");
	cr_assert_eq(vq_push(&d.vq, QSIZE, 0), -EINVAL);
	memory_destroy(&d.mem);
}

Test(queue, mixed_read_write_chain_and_iov_copies)
{
	struct drv d;
	char hdr[12], buf[8] = "ABCDEFGH";

	drv_init(&d, false, false);
	memory_write(&d.mem, BUF, "0123456789", 10);
	memory_write(&d.mem, BUF + 0x1000, "abcdef", 6);
	desc(&d, 0, BUF, 10, F_NEXT, 3);
	desc(&d, 3, BUF + 0x1000, 6, F_NEXT, 7);
	desc(&d, 7, BUF + 0x2000, 3, F_WRITE | F_NEXT, 2);
	desc(&d, 2, BUF + 0x3000, 100, F_WRITE, 0);
	publish(&d, 0);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(d.chain.nread, 2);
	cr_assert_eq(d.chain.nwrite, 2);
	cr_assert_eq(d.chain.read_bytes, 16);
	cr_assert_eq(d.chain.write_bytes, 103);
	/* A header straddling the two readable buffers. */
	cr_assert_eq(vq_iov_read(d.iov, d.chain.nread, 4, hdr, sizeof(hdr)), 12);
	cr_assert_arr_eq(hdr, "456789abcdef", 12);
	cr_assert_eq(vq_iov_read(d.iov, d.chain.nread, 10, hdr, sizeof(hdr)), 6, "short read");
	cr_assert_eq(vq_iov_read(d.iov, d.chain.nread, 100, hdr, 1), 0);
	cr_assert_eq(vq_iov_write(d.iov + d.chain.nread, d.chain.nwrite, 1, buf, 8), 8);
	cr_assert_arr_eq(gpa_to_hva(&d.mem, BUF + 0x2001, 2), "AB", 2);
	cr_assert_arr_eq(gpa_to_hva(&d.mem, BUF + 0x3000, 6), "CDEFGH", 6);
	cr_assert_eq(vq_push(&d.vq, 0, 9), 0);
	memory_destroy(&d.mem);
}

Test(queue, zero_length_buffers_are_skipped)
{
	struct drv d;

	drv_init(&d, false, false);
	/* Whatever a zero-length buffer's address, it is neither translated nor recorded. */
	desc(&d, 0, UINT64_MAX, 0, F_NEXT, 1);
	desc(&d, 1, BUF, 4, F_NEXT | F_WRITE, 2);
	desc(&d, 2, 0xdead0000000ULL, 0, F_WRITE, 0);
	publish(&d, 0);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(d.chain.nread, 0);
	cr_assert_eq(d.chain.nwrite, 1);
	cr_assert_eq(d.iov[0].iov_len, 4);
	memory_destroy(&d.mem);
}

Test(queue, indirect_tables)
{
	struct drv d;
	const uint64_t table = BUF + 0x10000;

	drv_init(&d, false, true);
	desc_at(&d, table, 0, BUF, 16, F_NEXT, 2);
	desc_at(&d, table, 2, BUF + 0x100, 32, F_NEXT | F_WRITE, 1);
	desc_at(&d, table, 1, BUF + 0x200, 1, F_WRITE, 0);
	/* The WRITE flag of the descriptor referring to a table is ignored (2.7.5.3.2). */
	desc(&d, 4, table, 3 * 16, F_INDIRECT | F_WRITE, 0);
	publish(&d, 4);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(d.chain.head, 4);
	cr_assert_eq(d.chain.nread, 1);
	cr_assert_eq(d.chain.nwrite, 2);
	cr_assert_eq(d.iov[2].iov_base, gpa_to_hva(&d.mem, BUF + 0x200, 1));
	cr_assert_eq(vq_push(&d.vq, 4, 33), 0);

	/* Direct descriptors followed by one indirect one, in a misaligned table. */
	desc_at(&d, table + 4, 0, BUF + 0x300, 8, F_WRITE, 0);
	desc(&d, 6, BUF + 0x400, 8, F_NEXT, 9);
	desc(&d, 9, table + 4, 16, F_INDIRECT, 0);
	publish(&d, 6);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(d.chain.nread, 1);
	cr_assert_eq(d.chain.nwrite, 1);
	cr_assert_eq(d.iov[1].iov_base, gpa_to_hva(&d.mem, BUF + 0x300, 8));
	memory_destroy(&d.mem);
}

Test(queue, indices_wrap_around_65535)
{
	struct drv d;
	struct vq_state st;

	drv_init(&d, true, false);
	vq_save(&d.vq, &st);
	st.last_avail = st.used_idx = st.signalled_used = 65530;
	st.signalled_valid = 1;
	cr_assert_eq(vq_restore(&d.vq, &d.mem, &st), 0);
	d.avail_idx = 65530;
	put16(&d, AVAIL + 2, d.avail_idx);
	put16(&d, USED + 2, 65530);
	set_used_event(&d, 2); /* an interrupt once the entry at used index 2 is written */
	for (unsigned round = 0; round < 3; round++) {
		for (uint16_t i = 0; i < 4; i++) {
			desc(&d, i, BUF + 0x1000 * i, 64, F_WRITE, 0);
			publish(&d, i);
		}
		for (uint16_t i = 0; i < 4; i++) {
			cr_assert_eq(pop(&d), 1);
			cr_assert_eq(d.chain.head, i);
			cr_assert_eq(vq_push(&d.vq, i, 64), 0);
		}
		cr_assert_eq(pop(&d), 0);
		cr_assert_eq(avail_event(&d), d.avail_idx, "asks for a kick at the next buffer");
		cr_assert_eq(used_idx(&d), (uint16_t)(65530 + 4 * (round + 1)));
		/* Rounds cover used indices [65530, 65534), [65534, 2), [2, 6). */
		cr_assert_eq(vq_should_notify(&d.vq), round == 2, "round %u", round);
	}
	cr_assert_eq(used_id(&d, 65535), 1);
	memory_destroy(&d.mem);
}

Test(queue, event_idx_suppresses_interrupts)
{
	struct drv d;

	drv_init(&d, true, false);
	desc(&d, 0, BUF, 8, F_WRITE, 0);
	put16(&d, AVAIL, 1); /* NO_INTERRUPT: ignored with EVENT_IDX */
	set_used_event(&d, 0);
	for (uint16_t i = 0; i < 5; i++)
		publish(&d, 0);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(vq_push(&d.vq, 0, 8), 0);
	cr_assert(vq_should_notify(&d.vq), "first decision after setup");
	cr_assert_not(vq_should_notify(&d.vq), "nothing new pushed");
	set_used_event(&d, 3);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(vq_push(&d.vq, 0, 8), 0); /* used index 1 */
	cr_assert_not(vq_should_notify(&d.vq));
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(vq_push(&d.vq, 0, 8), 0); /* 2 */
	cr_assert_eq(vq_push(&d.vq, 0, 8), 0); /* 3: the one the driver waits for */
	cr_assert(vq_should_notify(&d.vq));
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(vq_push(&d.vq, 0, 8), 0); /* 4: used_event is behind now */
	cr_assert_not(vq_should_notify(&d.vq));
	memory_destroy(&d.mem);
}

Test(queue, event_idx_kick_suppression)
{
	struct drv d;

	drv_init(&d, true, false);
	cr_assert_eq(avail_event(&d), 0);
	desc(&d, 0, BUF, 8, 0, 0);
	vq_disable_notify(&d.vq);
	cr_assert_eq(get16(&d, USED), 0, "flags stay 0 with EVENT_IDX");
	publish(&d, 0);
	publish(&d, 0);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(pop(&d), 0);
	cr_assert_eq(avail_event(&d), 0, "not moved while disabled");
	publish(&d, 0);
	cr_assert(vq_enable_notify(&d.vq), "a buffer arrived while disabled");
	cr_assert_eq(avail_event(&d), 2);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(pop(&d), 0);
	cr_assert_eq(avail_event(&d), 3);
	cr_assert_not(vq_enable_notify(&d.vq));
	memory_destroy(&d.mem);
}

Test(queue, no_interrupt_and_no_notify_flags)
{
	struct drv d;

	drv_init(&d, false, false);
	desc(&d, 0, BUF, 8, 0, 0);
	publish(&d, 0);
	publish(&d, 0);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(vq_push(&d.vq, 0, 0), 0);
	put16(&d, AVAIL, 1);
	cr_assert_not(vq_should_notify(&d.vq));
	put16(&d, AVAIL, 0);
	cr_assert_not(vq_should_notify(&d.vq), "nothing pushed since");
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(vq_push(&d.vq, 0, 0), 0);
	cr_assert(vq_should_notify(&d.vq));

	vq_disable_notify(&d.vq);
	cr_assert_eq(get16(&d, USED), 1, "VIRTQ_USED_F_NO_NOTIFY");
	cr_assert_not(vq_enable_notify(&d.vq));
	cr_assert_eq(get16(&d, USED), 0);
	memory_destroy(&d.mem);
}

Test(queue, too_many_buffers_for_the_caller)
{
	struct drv d;

	drv_init(&d, false, false);
	for (uint16_t i = 0; i < 4; i++)
		desc(&d, i, BUF + 0x100 * i, 8, i < 3 ? F_NEXT : 0, i + 1);
	publish(&d, 0);
	desc(&d, 8, BUF, 8, 0, 0);
	publish(&d, 8);
	cr_assert_eq(vq_pop(&d.vq, &d.chain, 3), -ENOBUFS);
	cr_assert_not(d.vq.broken);
	cr_assert_eq(d.chain.head, 0);
	cr_assert_eq(d.chain.nread + d.chain.nwrite, 0);
	cr_assert_eq(vq_push(&d.vq, 0, 0), 0, "the consumed chain goes back");
	cr_assert_eq(vq_pop(&d.vq, &d.chain, 3), 1);
	cr_assert_eq(d.chain.head, 8);
	memory_destroy(&d.mem);
}

Test(queue, save_restore)
{
	struct drv d;
	struct vq_state st, bad;

	drv_init(&d, true, true);
	desc(&d, 0, BUF, 8, 0, 0);
	publish(&d, 0);
	cr_assert_eq(pop(&d), 1);
	vq_save(&d.vq, &st);
	vq_reset(&d.vq);
	cr_assert_eq(vq_restore(&d.vq, &d.mem, &st), 0);
	cr_assert(d.vq.event_idx && d.vq.indirect);
	cr_assert_eq(d.vq.last_avail, 1);
	cr_assert_eq(vq_push(&d.vq, 0, 0), 0, "the in-flight chain survives");

	bad = st;
	bad.last_avail = (uint16_t)(bad.used_idx + QSIZE + 1);
	cr_assert_eq(vq_restore(&d.vq, &d.mem, &bad), -EINVAL);
	cr_assert_not(d.vq.ready);
	bad = st;
	bad.broken = 2;
	cr_assert_eq(vq_restore(&d.vq, &d.mem, &bad), -EINVAL);
	bad = st;
	bad.used_gpa = 1ULL << 40;
	cr_assert_eq(vq_restore(&d.vq, &d.mem, &bad), -EINVAL);
	bad = st;
	bad.size = 17;
	cr_assert_eq(vq_restore(&d.vq, &d.mem, &bad), -EINVAL);
	memset(&bad, 0, sizeof(bad));
	cr_assert_eq(vq_restore(&d.vq, &d.mem, &bad), 0, "a queue that was not enabled");
	cr_assert_not(d.vq.ready);
	memory_destroy(&d.mem);
}

/* Violations: each leaves the queue broken until a reset. */

/* A violation is described while the device's log budget is open, and only then. */
Test(queue, violations_are_logged_within_the_budget)
{
	struct log_limit spent = {0}, fresh = {0};
	struct log_capture c;
	struct drv d;

	for (unsigned i = 0; i < LOG_LIMIT_BURST; i++)
		log_limit_allow(&spent, "test");
	drv_init(&d, false, true);
	d.vq.log_limit = &spent;
	log_capture_begin(&c);
	put16(&d, AVAIL + 2, QSIZE + 1);
	cr_assert_eq(pop(&d), -EINVAL);
	cr_assert_eq(log_capture_end(&c, "guest broke the virtqueue"), 0);
	cr_assert(d.vq.broken, "silent, but broken all the same");
	vq_reset(&d.vq);
	cr_assert_eq(d.vq.log_limit, &spent, "a reset keeps the budget");
	d.vq.log_limit = &fresh;
	drv_setup(&d, QSIZE, false, true);
	log_capture_begin(&c);
	put16(&d, AVAIL + 2, QSIZE + 1);
	cr_assert_eq(pop(&d), -EINVAL);
	cr_assert_eq(log_capture_end(&c, "guest broke the virtqueue"), 1);
	memory_destroy(&d.mem);
}

Test(queue, avail_idx_too_far_ahead)
{
	struct drv d;

	drv_init(&d, false, false);
	desc(&d, 0, BUF, 8, 0, 0);
	put16(&d, AVAIL + 2, QSIZE + 1);
	expect_broken(&d);
}

Test(queue, avail_idx_decremented)
{
	struct drv d;

	drv_init(&d, true, false);
	desc(&d, 0, BUF, 8, 0, 0);
	publish(&d, 0);
	cr_assert_eq(pop(&d), 1);
	put16(&d, AVAIL + 2, 0);
	expect_broken(&d);
}

Test(queue, more_chains_in_flight_than_descriptors)
{
	struct drv d;

	drv_init(&d, false, false);
	desc(&d, 0, BUF, 8, 0, 0);
	/* The same head, published again and again while the device holds it. */
	for (unsigned i = 0; i < QSIZE; i++) {
		publish(&d, 0);
		cr_assert_eq(pop(&d), 1);
	}
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, head_out_of_range)
{
	struct drv d;

	drv_init(&d, false, false);
	publish(&d, QSIZE);
	expect_broken(&d);
}

Test(queue, next_out_of_range)
{
	struct drv d;

	drv_init(&d, false, false);
	desc(&d, 0, BUF, 8, F_NEXT, QSIZE);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, chain_loop)
{
	struct drv d;

	drv_init(&d, false, false);
	desc(&d, 0, BUF, 8, F_NEXT, 1);
	desc(&d, 1, BUF, 8, F_NEXT, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, self_loop_of_zero_length_buffers)
{
	struct drv d;

	drv_init(&d, false, false);
	desc(&d, 3, 0, 0, F_NEXT, 3);
	publish(&d, 3);
	expect_broken(&d);
}

Test(queue, readable_after_writable)
{
	struct drv d;

	drv_init(&d, false, false);
	desc(&d, 0, BUF, 8, F_WRITE | F_NEXT, 1);
	desc(&d, 1, BUF, 8, 0, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, chain_too_many_bytes)
{
	struct drv d;

	drv_init(&d, false, false);
	/* Each buffer is guest RAM; together they pass the 256 MiB cap. */
	for (uint16_t i = 0; i < 6; i++)
		desc(&d, i, 0, 48u << 20, i < 5 ? F_NEXT : 0, i + 1);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, buffer_outside_ram)
{
	struct drv d;

	drv_init(&d, false, false);
	desc(&d, 0, (64ULL << 20) - 8, 16, 0, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, buffer_with_wrapping_address)
{
	struct drv d;

	drv_init(&d, false, false);
	desc(&d, 0, UINT64_MAX - 7, 16, 0, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, buffer_straddling_the_mmio_hole)
{
	struct drv d;

	drv_init_mem(&d, 5ULL << 30, false, false);
	/* RAM is [0, 3 GiB) and [4 GiB, 6 GiB): these all leave it. */
	desc(&d, 0, (3ULL << 30) - 8, 16, 0, 0);
	publish(&d, 0);
	expect_broken(&d);

	drv_init_mem(&d, 5ULL << 30, false, false);
	desc(&d, 0, (4ULL << 30) - 8, 16, 0, 0);
	publish(&d, 0);
	expect_broken(&d);

	drv_init_mem(&d, 5ULL << 30, false, false);
	desc(&d, 0, (6ULL << 30) - 8, 16, 0, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, buffers_in_high_ram_are_fine)
{
	struct drv d;

	drv_init_mem(&d, 5ULL << 30, false, false);
	desc(&d, 0, 4ULL << 30, 4096, F_NEXT, 1);
	desc(&d, 1, (6ULL << 30) - 16, 16, 0, 0);
	publish(&d, 0);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(d.chain.nread, 2);
	memory_destroy(&d.mem);
}

Test(queue, indirect_not_negotiated)
{
	struct drv d;

	drv_init(&d, false, false);
	desc_at(&d, BUF, 0, BUF + 0x100, 8, 0, 0);
	desc(&d, 0, BUF, 16, F_INDIRECT, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, indirect_nested)
{
	struct drv d;

	drv_init(&d, false, true);
	desc_at(&d, BUF + 0x100, 0, BUF + 0x200, 8, 0, 0);
	desc_at(&d, BUF, 0, BUF + 0x100, 16, F_INDIRECT, 0);
	desc(&d, 0, BUF, 16, F_INDIRECT, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, indirect_with_next)
{
	struct drv d;

	drv_init(&d, false, true);
	desc_at(&d, BUF, 0, BUF + 0x100, 8, 0, 0);
	desc(&d, 0, BUF, 16, F_INDIRECT | F_NEXT, 1);
	desc(&d, 1, BUF + 0x200, 8, 0, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, indirect_length_not_multiple_of_16)
{
	struct drv d;

	drv_init(&d, false, true);
	desc_at(&d, BUF, 0, BUF + 0x100, 8, 0, 0);
	desc(&d, 0, BUF, 24, F_INDIRECT, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, indirect_empty_table)
{
	struct drv d;

	drv_init(&d, false, true);
	desc(&d, 0, BUF, 0, F_INDIRECT, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, indirect_table_too_large)
{
	struct drv d;

	drv_init(&d, false, true);
	desc(&d, 0, BUF, (VQ_MAX_SIZE + 1) * 16, F_INDIRECT, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, indirect_table_outside_ram)
{
	struct drv d;

	drv_init(&d, false, true);
	desc(&d, 0, (64ULL << 20) - 16, 32, F_INDIRECT, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, indirect_next_beyond_its_table)
{
	struct drv d;

	drv_init(&d, false, true);
	/* Entry 1 would exist in the bigger main table, but not in this 2-entry table. */
	desc_at(&d, BUF, 0, BUF + 0x100, 8, F_NEXT, 2);
	desc(&d, 0, BUF, 32, F_INDIRECT, 0);
	publish(&d, 0);
	expect_broken(&d);
}

Test(queue, indirect_loop)
{
	struct drv d;

	drv_init(&d, false, true);
	desc_at(&d, BUF, 0, BUF + 0x100, 8, F_NEXT, 1);
	desc_at(&d, BUF, 1, BUF + 0x100, 8, F_NEXT, 0);
	desc(&d, 0, BUF, 32, F_INDIRECT, 0);
	publish(&d, 0);
	expect_broken(&d);
}

/*
 * A second thread rewrites descriptors and the available ring while the
 * device pops, as another vCPU may. Whatever it writes, every popped buffer
 * must lie in guest RAM: a double fetch would show up as one that does not.
 */
struct mutator {
	struct drv *d;
	bool stop;
};

static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void *mutate(void *arg)
{
	static const uint64_t addrs[] = {
	    BUF, (64ULL << 20) - 4096, (64ULL << 20) - 8, UINT64_MAX - 8, 0, BUF + 0x10000};
	static const uint32_t lens[] = {0, 8, 4096, 32, 1u << 20, UINT32_MAX};
	struct mutator *m = arg;
	uint8_t *ram = m->d->mem.base;
	uint32_t seed = 12345;

	while (!__atomic_load_n(&m->stop, __ATOMIC_RELAXED)) {
		uint32_t r = xorshift(&seed);
		uint8_t *p = ram + DESC + 16 * (r % QSIZE);

		__atomic_store_n((uint64_t *)p, addrs[(r >> 4) % 6], __ATOMIC_RELAXED);
		__atomic_store_n((uint32_t *)(p + 8), lens[(r >> 8) % 6], __ATOMIC_RELAXED);
		__atomic_store_n((uint16_t *)(p + 12), (r >> 12) & 7, __ATOMIC_RELAXED);
		__atomic_store_n((uint16_t *)(p + 14), (r >> 16) % (QSIZE + 1), __ATOMIC_RELAXED);
		__atomic_store_n((uint16_t *)(ram + AVAIL + 4 + 2 * ((r >> 20) % QSIZE)),
				 (r >> 24) % (QSIZE + 1), __ATOMIC_RELAXED);
	}
	return NULL;
}

static void check_in_ram(struct drv *d)
{
	const uint8_t *lo = d->mem.base, *hi = lo + d->mem.size;

	for (unsigned i = 0; i < d->chain.nread + d->chain.nwrite; i++) {
		const uint8_t *p = d->iov[i].iov_base;

		cr_assert(p >= lo && p < hi && d->iov[i].iov_len <= (size_t)(hi - p));
	}
}

Test(queue, hostile_concurrent_writer, .init = cr_redirect_stderr)
{
	struct drv d;
	struct mutator m = {.d = &d};
	pthread_t thread;
	unsigned popped = 0, broken = 0;

	drv_init(&d, true, true);
	cr_assert_eq(pthread_create(&thread, NULL, mutate, &m), 0);
	for (unsigned i = 0; i < 200000; i++) {
		/* The driver publishes one more head (the mutator owns the ring entries). */
		put16(&d, AVAIL + 2, ++d.avail_idx);
		int ret = pop(&d);

		if (ret == 1)
			check_in_ram(&d);
		if (ret == 1 || ret == -ENOBUFS) {
			popped++;
			cr_assert_eq(vq_push(&d.vq, d.chain.head, 0), 0);
			(void)vq_should_notify(&d.vq);
		} else if (ret == -EINVAL) {
			broken++;
			cr_assert_eq(vq_setup(&d.vq, &d.mem, QSIZE, DESC, AVAIL, USED, true, true),
				     0);
		}
	}
	__atomic_store_n(&m.stop, true, __ATOMIC_RELAXED);
	pthread_join(thread, NULL);
	cr_log_info("popped %u chains, %u violations", popped, broken);
	/* How many chains the race let through depends on scheduling; what must hold is that
	 * the queue works again once the guest behaves and resets it. */
	drv_setup(&d, QSIZE, true, true);
	desc(&d, 0, BUF, 100, 0, 0);
	publish(&d, 0);
	cr_assert_eq(pop(&d), 1);
	cr_assert_eq(d.chain.nread, 1);
	memory_destroy(&d.mem);
}
