/*
 * The MC146818 real-time clock and its 128 bytes of CMOS, at ports 0x70
 * (index; bit 7 is the NMI mask, ignored) and 0x71 (data). The time is the
 * host's UTC clock at the moment of each read plus an offset the guest sets by
 * writing the time registers. Interrupts are not implemented: register C reads
 * 0 and the IRQ line never fires.
 */
#ifndef TABIQUE_DEVICES_RTC_H
#define TABIQUE_DEVICES_RTC_H

#include <stdint.h>
#include <time.h>

#include "bus/bus.h"
#include "devices/irq.h"

#define RTC_CMOS_SIZE 128

/* Register indices. */
#define RTC_SECONDS	  0x00
#define RTC_SECONDS_ALARM 0x01
#define RTC_MINUTES	  0x02
#define RTC_MINUTES_ALARM 0x03
#define RTC_HOURS	  0x04 /* 12-hour mode: bit 7 = PM */
#define RTC_HOURS_ALARM	  0x05
#define RTC_WEEKDAY	  0x06 /* 1 = Sunday */
#define RTC_MDAY	  0x07
#define RTC_MONTH	  0x08
#define RTC_YEAR	  0x09
#define RTC_REG_A	  0x0a
#define RTC_REG_B	  0x0b
#define RTC_REG_C	  0x0c
#define RTC_REG_D	  0x0d
#define RTC_CENTURY	  0x32 /* the FADT's century index */

#define RTC_A_UIP    0x80 /* update in progress: the time registers are about to change */
#define RTC_B_SET    0x80 /* updates stopped while the guest writes the time */
#define RTC_B_BINARY 0x04 /* binary, not BCD */
#define RTC_B_24H    0x02
#define RTC_D_VRT    0x80 /* valid RAM and time */

struct rtc;

/* Everything a snapshot needs; plain data, no pointers. */
struct rtc_state {
	int64_t offset;		     /* guest time minus host time, seconds */
	uint8_t cmos[RTC_CMOS_SIZE]; /* the time registers hold the stopped time while SET */
	uint8_t index;		     /* < RTC_CMOS_SIZE */
};

/* A clock set to the host's time, 24-hour BCD mode. Returns NULL on ENOMEM. */
struct rtc *rtc_create(struct irq_line irq);
/* Frees the device; unregister it from the bus (or destroy the bus) first. */
void rtc_destroy(struct rtc *rtc);
/* Claims ports 0x70..0x71. Returns 0 or bus_register's error. */
int rtc_attach(struct rtc *rtc, struct bus *pio);
/* For tests: replaces the host clock (NULL restores it). Whole seconds, UTC. */
void rtc_set_clock(struct rtc *rtc, time_t (*now)(void));

void rtc_save(struct rtc *rtc, struct rtc_state *out);
/* Returns 0 or -EINVAL (index out of range, offset beyond +-2^40 s). */
int rtc_restore(struct rtc *rtc, const struct rtc_state *in);

#endif
