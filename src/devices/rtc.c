#include "devices/rtc.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"

#define RTC_PORTS	 2
#define RTC_B_UIE	 0x10
#define RTC_A_DEFAULT	 0x26 /* 32.768 kHz time base, 1024 Hz periodic rate */
#define RTC_SECS_PER_DAY 86400
#define RTC_UIP_NSEC	 244000 /* UIP rises this long before each update */
/* Bounds that keep every sum below far from overflow: more than the 0000..9999 range. */
#define RTC_OFFSET_MAX ((int64_t)1 << 40)

struct rtc {
	pthread_mutex_t lock;
	struct irq_line irq; /* kept for update/alarm interrupts; never raised yet */
	time_t (*clock)(void);
	struct rtc_state st;
};

/* A broken-down UTC time; year 0..9999. */
struct rtc_tm {
	unsigned int sec, min, hour, wday, mday, mon, year;
};

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
static int64_t rtc_days_from_civil(int64_t y, unsigned int m, unsigned int d)
{
	int64_t era;
	unsigned int yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned int)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void rtc_civil_from_days(int64_t z, struct rtc_tm *tm)
{
	int64_t era, y;
	unsigned int doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned int)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	tm->mday = doy - (153 * mp + 2) / 5 + 1;
	tm->mon = mp < 10 ? mp + 3 : mp - 9;
	tm->year = (unsigned int)(y + (tm->mon <= 2));
}

static int64_t rtc_clamp(int64_t t, int64_t lo, int64_t hi)
{
	return t < lo ? lo : t > hi ? hi : t;
}

/* The representable range, 0000-01-01 00:00:00 to 9999-12-31 23:59:59. */
static int64_t rtc_clamp_time(int64_t t)
{
	int64_t lo = rtc_days_from_civil(0, 1, 1) * RTC_SECS_PER_DAY;
	int64_t hi = rtc_days_from_civil(10000, 1, 1) * RTC_SECS_PER_DAY - 1;

	return rtc_clamp(t, lo, hi);
}

static void rtc_breakdown(int64_t t, struct rtc_tm *tm)
{
	int64_t days = t / RTC_SECS_PER_DAY, secs = t % RTC_SECS_PER_DAY;

	if (secs < 0) {
		secs += RTC_SECS_PER_DAY;
		days--;
	}
	rtc_civil_from_days(days, tm);
	tm->wday = (unsigned int)(((days % 7) + 7 + 4) % 7) + 1; /* 1970-01-01 was a Thursday */
	tm->hour = (unsigned int)(secs / 3600);
	tm->min = (unsigned int)(secs / 60 % 60);
	tm->sec = (unsigned int)(secs % 60);
}

/* Host time, clamped so that adding a valid offset cannot overflow. */
static int64_t rtc_host_now(const struct rtc *rtc, long *nsec)
{
	struct timespec ts = {0};

	if (rtc->clock != NULL)
		ts.tv_sec = rtc->clock();
	else
		clock_gettime(CLOCK_REALTIME, &ts);
	*nsec = ts.tv_nsec;
	return rtc_clamp(ts.tv_sec, -RTC_OFFSET_MAX, RTC_OFFSET_MAX);
}

static int64_t rtc_guest_now(const struct rtc *rtc, long *nsec)
{
	return rtc_clamp_time(rtc_host_now(rtc, nsec) + rtc->st.offset);
}

static uint8_t rtc_encode(uint8_t b, unsigned int v)
{
	v %= 100;
	return (b & RTC_B_BINARY) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | v % 10);
}

/* Non-BCD nibbles decode to out-of-range numbers; the time arithmetic normalizes them. */
static int64_t rtc_decode(uint8_t b, uint8_t v)
{
	return (b & RTC_B_BINARY) ? v : (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t rtc_encode_hour(uint8_t b, unsigned int hour)
{
	unsigned int h12 = hour % 12 == 0 ? 12 : hour % 12;

	if (b & RTC_B_24H)
		return rtc_encode(b, hour);
	return rtc_encode(b, h12) | (hour >= 12 ? 0x80 : 0);
}

static int64_t rtc_decode_hour(uint8_t b, uint8_t v)
{
	int64_t h;

	if (b & RTC_B_24H)
		return rtc_decode(b, v);
	h = rtc_decode(b, v & 0x7f);
	if (h == 12)
		h = 0;
	return h + ((v & 0x80) ? 12 : 0);
}

static bool rtc_is_time_reg(uint8_t idx)
{
	switch (idx) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_WEEKDAY:
	case RTC_MDAY:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
		return true;
	default:
		return false;
	}
}

static uint8_t rtc_time_field(const struct rtc_tm *tm, uint8_t idx, uint8_t b)
{
	switch (idx) {
	case RTC_SECONDS:
		return rtc_encode(b, tm->sec);
	case RTC_MINUTES:
		return rtc_encode(b, tm->min);
	case RTC_HOURS:
		return rtc_encode_hour(b, tm->hour);
	case RTC_WEEKDAY:
		return rtc_encode(b, tm->wday);
	case RTC_MDAY:
		return rtc_encode(b, tm->mday);
	case RTC_MONTH:
		return rtc_encode(b, tm->mon);
	case RTC_YEAR:
		return rtc_encode(b, tm->year % 100);
	default:
		return rtc_encode(b, tm->year / 100);
	}
}

/* Stops the clock: the time registers now hold the current time as plain bytes. */
static void rtc_freeze(struct rtc *rtc)
{
	static const uint8_t regs[] = {RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_WEEKDAY,
				       RTC_MDAY,    RTC_MONTH,	 RTC_YEAR,  RTC_CENTURY};
	struct rtc_tm tm;
	long nsec;

	rtc_breakdown(rtc_guest_now(rtc, &nsec), &tm);
	for (size_t i = 0; i < sizeof(regs); i++)
		rtc->st.cmos[regs[i]] = rtc_time_field(&tm, regs[i], rtc->st.cmos[RTC_REG_B]);
}

/* The time the frozen registers hold; out-of-range fields carry over linearly. */
static int64_t rtc_frozen_time(const struct rtc_state *st)
{
	const uint8_t *c = st->cmos;
	uint8_t b = c[RTC_REG_B];
	int64_t year = rtc_decode(b, c[RTC_CENTURY]) * 100 + rtc_decode(b, c[RTC_YEAR]);
	int64_t mon0 = rtc_decode(b, c[RTC_MONTH]) - 1; /* -1..164 */
	int64_t days;

	year += mon0 / 12;
	mon0 %= 12;
	if (mon0 < 0) {
		mon0 += 12;
		year--;
	}
	days =
	    rtc_days_from_civil(year, (unsigned int)mon0 + 1, 1) + rtc_decode(b, c[RTC_MDAY]) - 1;
	return days * RTC_SECS_PER_DAY + rtc_decode_hour(b, c[RTC_HOURS]) * 3600 +
	       rtc_decode(b, c[RTC_MINUTES]) * 60 + rtc_decode(b, c[RTC_SECONDS]);
}

/* Restarts the clock from the frozen registers. */
static void rtc_thaw(struct rtc *rtc)
{
	long nsec;
	int64_t t = rtc_clamp_time(rtc_frozen_time(&rtc->st));

	rtc->st.offset = t - rtc_host_now(rtc, &nsec);
}

static void rtc_write_b(struct rtc *rtc, uint8_t v)
{
	uint8_t old = rtc->st.cmos[RTC_REG_B];

	if (v & RTC_B_SET)
		v &= (uint8_t)~RTC_B_UIE; /* SET clears UIE, per the datasheet */
	rtc->st.cmos[RTC_REG_B] = v;
	if ((v & RTC_B_SET) && !(old & RTC_B_SET))
		rtc_freeze(rtc);
	else if (!(v & RTC_B_SET) && (old & RTC_B_SET))
		rtc_thaw(rtc);
}

static void rtc_write_reg(struct rtc *rtc, uint8_t idx, uint8_t v)
{
	uint8_t *c = rtc->st.cmos;

	switch (idx) {
	case RTC_REG_A:
		c[RTC_REG_A] = v & (uint8_t)~RTC_A_UIP;
		return;
	case RTC_REG_B:
		rtc_write_b(rtc, v);
		return;
	case RTC_REG_C:
	case RTC_REG_D:
		return; /* read-only */
	default:
		break;
	}
	if (rtc_is_time_reg(idx) && !(c[RTC_REG_B] & RTC_B_SET)) {
		/* Setting one field while the clock runs changes just that field. */
		rtc_freeze(rtc);
		c[idx] = v;
		rtc_thaw(rtc);
		return;
	}
	c[idx] = v;
}

static uint8_t rtc_read_reg(struct rtc *rtc, uint8_t idx)
{
	const uint8_t *c = rtc->st.cmos;
	bool running = !(c[RTC_REG_B] & RTC_B_SET);
	struct rtc_tm tm;
	long nsec;
	int64_t t;

	if (idx == RTC_REG_C)
		return 0; /* no interrupt flags: none are implemented */
	if (idx == RTC_REG_D)
		return RTC_D_VRT;
	if (!running || (idx != RTC_REG_A && !rtc_is_time_reg(idx)))
		return c[idx];
	t = rtc_guest_now(rtc, &nsec);
	if (idx == RTC_REG_A) {
		/* UIP is up only in the last 244 us of a second: a reader never waits long. */
		return c[RTC_REG_A] | (nsec >= 1000000000L - RTC_UIP_NSEC ? RTC_A_UIP : 0);
	}
	rtc_breakdown(t, &tm);
	return rtc_time_field(&tm, idx, c[RTC_REG_B]);
}

/* Port 0: index, port 1: data. A 16-bit access sets the index and moves data in one go. */
static enum vm_action rtc_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct rtc *rtc = opaque;

	pthread_mutex_lock(&rtc->lock);
	for (uint32_t i = 0; i < len; i++) {
		if (offset >= RTC_PORTS || i >= RTC_PORTS - offset)
			data[i] = 0xff;
		else if (offset + i == 0)
			data[i] = rtc->st.index;
		else
			data[i] = rtc_read_reg(rtc, rtc->st.index);
	}
	pthread_mutex_unlock(&rtc->lock);
	return VM_CONTINUE;
}

static enum vm_action rtc_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct rtc *rtc = opaque;

	pthread_mutex_lock(&rtc->lock);
	for (uint32_t i = 0; i < len && offset < RTC_PORTS && i < RTC_PORTS - offset; i++) {
		if (offset + i == 0)
			rtc->st.index = data[i] & (RTC_CMOS_SIZE - 1); /* drops the NMI mask bit */
		else
			rtc_write_reg(rtc, rtc->st.index, data[i]);
	}
	pthread_mutex_unlock(&rtc->lock);
	return VM_CONTINUE;
}

static const struct bus_ops rtc_ops = {rtc_read, rtc_write};

struct rtc *rtc_create(struct irq_line irq)
{
	struct rtc *rtc = calloc(1, sizeof(*rtc));

	if (rtc == NULL)
		return NULL;
	if (pthread_mutex_init(&rtc->lock, NULL) != 0) {
		free(rtc);
		return NULL;
	}
	rtc->irq = irq;
	rtc->st.cmos[RTC_REG_A] = RTC_A_DEFAULT;
	rtc->st.cmos[RTC_REG_B] = RTC_B_24H;
	return rtc;
}

void rtc_destroy(struct rtc *rtc)
{
	if (rtc == NULL)
		return;
	pthread_mutex_destroy(&rtc->lock);
	free(rtc);
}

int rtc_attach(struct rtc *rtc, struct bus *pio)
{
	return bus_register(pio, PORT_RTC, RTC_PORTS, &rtc_ops, rtc);
}

void rtc_set_clock(struct rtc *rtc, time_t (*now)(void))
{
	pthread_mutex_lock(&rtc->lock);
	rtc->clock = now;
	pthread_mutex_unlock(&rtc->lock);
}

void rtc_save(struct rtc *rtc, struct rtc_state *out)
{
	pthread_mutex_lock(&rtc->lock);
	memcpy(out, &rtc->st, sizeof(*out));
	pthread_mutex_unlock(&rtc->lock);
}

int rtc_restore(struct rtc *rtc, const struct rtc_state *in)
{
	if (in->index >= RTC_CMOS_SIZE || in->offset > RTC_OFFSET_MAX ||
	    in->offset < -RTC_OFFSET_MAX)
		return -EINVAL;
	pthread_mutex_lock(&rtc->lock);
	memcpy(&rtc->st, in, sizeof(rtc->st));
	rtc->st.cmos[RTC_REG_A] &= (uint8_t)~RTC_A_UIP;
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}
