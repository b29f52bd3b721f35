#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "devices/rtc.h"

#define T_2026_11_21_094602 1795254362 /* a Saturday */
#define T_2030_01_02_030405 1893553445

static time_t fake_now;

static time_t fake_clock(void)
{
	return fake_now;
}

struct rig {
	struct bus bus;
	struct rtc *rtc;
};

static void rig_irq(void *opaque, uint32_t gsi, bool level)
{
	(void)opaque;
	(void)gsi;
	(void)level;
	cr_assert_fail("the RTC has no interrupt sources");
}

static void rig_init(struct rig *r)
{
	bus_init(&r->bus, "pio");
	r->rtc = rtc_create((struct irq_line){rig_irq, NULL, 8});
	cr_assert_not_null(r->rtc);
	cr_assert_eq(rtc_attach(r->rtc, &r->bus), 0);
	fake_now = T_2026_11_21_094602;
	rtc_set_clock(r->rtc, fake_clock);
}

static void rig_fini(struct rig *r)
{
	bus_destroy(&r->bus);
	rtc_destroy(r->rtc);
}

static uint8_t cmos_read(struct rig *r, uint8_t idx)
{
	uint8_t v;

	cr_assert_eq(bus_write(&r->bus, 0x70, &idx, 1), VM_CONTINUE);
	cr_assert_eq(bus_read(&r->bus, 0x71, &v, 1), VM_CONTINUE);
	return v;
}

static void cmos_write(struct rig *r, uint8_t idx, uint8_t v)
{
	cr_assert_eq(bus_write(&r->bus, 0x70, &idx, 1), VM_CONTINUE);
	cr_assert_eq(bus_write(&r->bus, 0x71, &v, 1), VM_CONTINUE);
}

Test(rtc, bcd_24h_by_default)
{
	struct rig r;

	rig_init(&r);
	cr_assert_eq(cmos_read(&r, RTC_REG_B), 0x02);
	cr_assert_eq(cmos_read(&r, RTC_SECONDS), 0x02);
	cr_assert_eq(cmos_read(&r, RTC_MINUTES), 0x46);
	cr_assert_eq(cmos_read(&r, RTC_HOURS), 0x09);
	cr_assert_eq(cmos_read(&r, RTC_WEEKDAY), 7, "Saturday");
	cr_assert_eq(cmos_read(&r, RTC_MDAY), 0x21);
	cr_assert_eq(cmos_read(&r, RTC_MONTH), 0x11);
	cr_assert_eq(cmos_read(&r, RTC_YEAR), 0x26);
	cr_assert_eq(cmos_read(&r, RTC_CENTURY), 0x20);
	cr_assert_eq(cmos_read(&r, RTC_REG_A), 0x26, "UIP clear, normal divider");
	cr_assert_eq(cmos_read(&r, RTC_REG_C), 0x00);
	cr_assert_eq(cmos_read(&r, RTC_REG_D), 0x80, "valid RAM and time");
	/* The clock is read at each access. */
	fake_now += 61;
	cr_assert_eq(cmos_read(&r, RTC_SECONDS), 0x03);
	cr_assert_eq(cmos_read(&r, RTC_MINUTES), 0x47);
	rig_fini(&r);
}

Test(rtc, binary_mode)
{
	struct rig r;

	rig_init(&r);
	cmos_write(&r, RTC_REG_B, 0x06);
	cr_assert_eq(cmos_read(&r, RTC_SECONDS), 2);
	cr_assert_eq(cmos_read(&r, RTC_MINUTES), 46);
	cr_assert_eq(cmos_read(&r, RTC_HOURS), 9);
	cr_assert_eq(cmos_read(&r, RTC_MDAY), 21);
	cr_assert_eq(cmos_read(&r, RTC_MONTH), 11);
	cr_assert_eq(cmos_read(&r, RTC_YEAR), 26);
	cr_assert_eq(cmos_read(&r, RTC_CENTURY), 20);
	rig_fini(&r);
}

Test(rtc, twelve_hour_mode)
{
	struct rig r;

	rig_init(&r);
	cmos_write(&r, RTC_REG_B, 0x00); /* BCD, 12h */
	cr_assert_eq(cmos_read(&r, RTC_HOURS), 0x09, "9 AM");
	fake_now = T_2026_11_21_094602 + 12 * 3600;
	cr_assert_eq(cmos_read(&r, RTC_HOURS), 0x89, "9 PM");
	fake_now = 1795219500; /* 00:05 */
	cr_assert_eq(cmos_read(&r, RTC_HOURS), 0x12, "12 AM");
	fake_now = 1795264200; /* 12:30 */
	cr_assert_eq(cmos_read(&r, RTC_HOURS), 0x92, "12 PM");
	cmos_write(&r, RTC_REG_B, 0x04); /* binary, 12h */
	cr_assert_eq(cmos_read(&r, RTC_HOURS), 0x8c);
	rig_fini(&r);
}

/* Linux's mc146818_set_time: SET, divider reset, the fields, then both restored. */
Test(rtc, guest_sets_the_time)
{
	struct rig r;
	struct rtc_state st;

	rig_init(&r);
	cmos_write(&r, RTC_REG_B, 0x02 | RTC_B_SET);
	cmos_write(&r, RTC_REG_A, 0x76);
	fake_now += 100; /* stopped: nothing moves */
	cr_assert_eq(cmos_read(&r, RTC_SECONDS), 0x02);
	cmos_write(&r, RTC_YEAR, 0x30);
	cmos_write(&r, RTC_MONTH, 0x01);
	cmos_write(&r, RTC_MDAY, 0x02);
	cmos_write(&r, RTC_HOURS, 0x03);
	cmos_write(&r, RTC_MINUTES, 0x04);
	cmos_write(&r, RTC_SECONDS, 0x05);
	cmos_write(&r, RTC_CENTURY, 0x20);
	cr_assert_eq(cmos_read(&r, RTC_MINUTES), 0x04, "SET shows what was written");
	cmos_write(&r, RTC_REG_B, 0x02);
	cmos_write(&r, RTC_REG_A, 0x26);
	rtc_save(r.rtc, &st);
	cr_assert_eq(st.offset, (int64_t)T_2030_01_02_030405 - fake_now);
	cr_assert_eq(cmos_read(&r, RTC_YEAR), 0x30);
	cr_assert_eq(cmos_read(&r, RTC_WEEKDAY), 4, "2030-01-02 is a Wednesday");
	fake_now += 10;
	cr_assert_eq(cmos_read(&r, RTC_SECONDS), 0x15);
	cr_assert_eq(cmos_read(&r, RTC_MINUTES), 0x04);
	cr_assert_eq(cmos_read(&r, RTC_HOURS), 0x03);
	rig_fini(&r);
}

Test(rtc, single_field_written_while_running)
{
	struct rig r;

	rig_init(&r);
	cmos_write(&r, RTC_HOURS, 0x23);
	cr_assert_eq(cmos_read(&r, RTC_HOURS), 0x23);
	cr_assert_eq(cmos_read(&r, RTC_MINUTES), 0x46);
	cr_assert_eq(cmos_read(&r, RTC_MDAY), 0x21);
	fake_now += 3600;
	cr_assert_eq(cmos_read(&r, RTC_HOURS), 0x00);
	cr_assert_eq(cmos_read(&r, RTC_MDAY), 0x22);
	cr_assert_eq(cmos_read(&r, RTC_WEEKDAY), 1, "Sunday");
	rig_fini(&r);
}

Test(rtc, garbage_time_is_normalized)
{
	struct rig r;

	rig_init(&r);
	cmos_write(&r, RTC_REG_B, 0x02 | RTC_B_SET);
	cmos_write(&r, RTC_MONTH, 0x00); /* month 0: December of the year before */
	cmos_write(&r, RTC_MDAY, 0xff);
	cmos_write(&r, RTC_SECONDS, 0xff);
	cmos_write(&r, RTC_CENTURY, 0x00);
	cmos_write(&r, RTC_YEAR, 0x00);
	cmos_write(&r, RTC_REG_B, 0x02);
	cr_assert_eq(cmos_read(&r, RTC_CENTURY), 0x00, "clamped to the year 0");
	cmos_write(&r, RTC_REG_B, 0x06 | RTC_B_SET);
	cmos_write(&r, RTC_CENTURY, 0xff);
	cmos_write(&r, RTC_YEAR, 0xff);
	cmos_write(&r, RTC_REG_B, 0x06);
	cr_assert_eq(cmos_read(&r, RTC_CENTURY), 99, "clamped to 9999");
	cr_assert_eq(cmos_read(&r, RTC_YEAR), 99);
	cr_assert_eq(cmos_read(&r, RTC_MONTH), 12);
	rig_fini(&r);
}

Test(rtc, index_is_masked_and_cmos_stores)
{
	struct rig r;
	uint8_t w[2] = {0x8e, 0xab}, v[2];

	rig_init(&r);
	for (unsigned int i = 0x0e; i < RTC_CMOS_SIZE; i++)
		if (i != RTC_CENTURY)
			cmos_write(&r, (uint8_t)i, (uint8_t)(i * 3));
	for (unsigned int i = 0x0e; i < RTC_CMOS_SIZE; i++)
		if (i != RTC_CENTURY)
			cr_assert_eq(cmos_read(&r, (uint8_t)i), (uint8_t)(i * 3), "index %#x", i);
	/* Bit 7 is the NMI mask: 0x8e is register 0x0e, 0xff is 0x7f. */
	cmos_write(&r, 0x8e, 0x11);
	cr_assert_eq(cmos_read(&r, 0x0e), 0x11);
	cmos_write(&r, 0xff, 0x22);
	cr_assert_eq(cmos_read(&r, 0x7f), 0x22);
	/* One 16-bit access: index, then data. */
	cr_assert_eq(bus_write(&r.bus, 0x70, w, 2), VM_CONTINUE);
	cr_assert_eq(cmos_read(&r, 0x0e), 0xab);
	cr_assert_eq(bus_read(&r.bus, 0x70, v, 2), VM_CONTINUE);
	cr_assert_eq(v[0], 0x0e);
	cr_assert_eq(v[1], 0xab);
	/* Read-only registers. */
	cmos_write(&r, RTC_REG_C, 0xff);
	cmos_write(&r, RTC_REG_D, 0x00);
	cr_assert_eq(cmos_read(&r, RTC_REG_C), 0x00);
	cr_assert_eq(cmos_read(&r, RTC_REG_D), 0x80);
	cmos_write(&r, RTC_REG_A, 0xff);
	cr_assert_eq(cmos_read(&r, RTC_REG_A), 0x7f, "UIP is not writable");
	rig_fini(&r);
}

Test(rtc, uip_is_never_stuck_on_the_host_clock)
{
	struct rig r;
	int clear = 0;

	rig_init(&r);
	rtc_set_clock(r.rtc, NULL);
	for (int i = 0; i < 100000 && clear < 1000; i++)
		if (!(cmos_read(&r, RTC_REG_A) & RTC_A_UIP))
			clear++;
	cr_assert_eq(clear, 1000);
	cr_assert_lt(cmos_read(&r, RTC_SECONDS) & 0x0f, 10, "BCD");
	rig_fini(&r);
}

static uint32_t lcg(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

static uint32_t random_step(struct rig *r, uint32_t *seed)
{
	uint8_t data[8];
	uint32_t op = lcg(seed), len = 1 + lcg(seed) % 8, port = 0x6f + lcg(seed) % 4, trace = 0;

	for (int i = 0; i < 8; i++)
		data[i] = (uint8_t)lcg(seed);
	if (op % 3 == 0)
		fake_now += lcg(seed) % 100000;
	if (op % 2 == 0) {
		cr_assert_eq(bus_write(&r->bus, port, data, len), VM_CONTINUE);
		return 0;
	}
	cr_assert_eq(bus_read(&r->bus, port, data, len), VM_CONTINUE);
	for (uint32_t i = 0; i < len; i++)
		trace = trace * 31 + data[i];
	return trace;
}

Test(rtc, hostile_accesses_never_fail)
{
	struct rig r;
	struct rtc_state st;
	uint32_t seed = 7;

	rig_init(&r);
	for (int i = 0; i < 20000; i++) {
		random_step(&r, &seed);
		/* Index straight at the time registers with random values and modes. */
		cmos_write(&r, (uint8_t)(lcg(&seed) % 14), (uint8_t)lcg(&seed));
		if (i % 1000 == 0) {
			rtc_save(r.rtc, &st);
			cr_assert_eq(rtc_restore(r.rtc, &st), 0);
		}
	}
	rig_fini(&r);
}

Test(rtc, save_restore_same_behaviour)
{
	struct rig a, b;
	struct rtc_state st;
	uint32_t seed = 99, sa, sb;
	time_t t0;

	rig_init(&a);
	rig_init(&b);
	cmos_write(&a, RTC_REG_B, 0x06);
	cmos_write(&a, RTC_HOURS, 17);
	cmos_write(&a, 0x40, 0x5a);
	for (int i = 0; i < 300; i++)
		random_step(&a, &seed);
	rtc_save(a.rtc, &st);
	cr_assert_eq(rtc_restore(b.rtc, &st), 0);
	sa = sb = seed;
	for (int i = 0; i < 3000; i++) {
		t0 = fake_now;
		uint32_t ta = random_step(&a, &sa);
		fake_now = t0;
		cr_assert_eq(ta, random_step(&b, &sb), "step %d", i);
	}
	rig_fini(&a);
	rig_fini(&b);
}

Test(rtc, restore_rejects_corrupt_state)
{
	struct rig r;
	struct rtc_state good, bad;

	rig_init(&r);
	rtc_save(r.rtc, &good);
	bad = good;
	bad.index = 0x80;
	cr_assert_eq(rtc_restore(r.rtc, &bad), -EINVAL);
	bad = good;
	bad.offset = INT64_MAX;
	cr_assert_eq(rtc_restore(r.rtc, &bad), -EINVAL);
	bad = good;
	bad.offset = INT64_MIN;
	cr_assert_eq(rtc_restore(r.rtc, &bad), -EINVAL);
	cr_assert_eq(rtc_restore(r.rtc, &good), 0);
	rig_fini(&r);
}
