/*
 * The ACPI Generic Event Device (ACPI 6.x, 5.6.9): how a hardware-reduced
 * platform, which has no GPE blocks and no SCI, tells the guest about events.
 * The DSDT's \_SB_.GED_ (_HID "ACPI0013") has one edge interrupt; its _EVT
 * reads the event selector, a 1-byte I/O port, and notifies the device an
 * event bit names: bit 0 is the power button (\_SB_.PWRB, PNP0C0C), which
 * Linux's button driver turns into a KEY_POWER input event.
 *
 * The host raises events from any thread; the guest reads and clears them
 * from a vCPU. The pending bits are the only state.
 */
#ifndef TABIQUE_DEVICES_GED_H
#define TABIQUE_DEVICES_GED_H

#include <stdint.h>

#include "bus/bus.h"
#include "devices/irq.h"

/* Event selector bits: what the DSDT's _EVT method tests. */
#define GED_EVENT_POWER_BUTTON 0x01u
#define GED_EVENTS	       GED_EVENT_POWER_BUTTON

struct ged;

/* A GED that pulses irq (an edge-triggered GSI) for each event. NULL when out of memory. */
struct ged *ged_create(struct irq_line irq);
void ged_destroy(struct ged *ged);

/*
 * Claims the 1-byte event selector at port. Reading it returns the pending
 * events and clears them (so a second read returns 0); writes are ignored.
 * Returns 0 or bus_register's error.
 */
int ged_attach(struct ged *ged, struct bus *pio, uint16_t port);

/* Marks events (GED_EVENT_*) pending and pulses the interrupt. Any thread. */
void ged_raise(struct ged *ged, uint8_t events);

/* The device's state for snapshots and migration: fixed layout. */
#define GED_STATE_MAGIC	  0x44454754u /* "TGED" */
#define GED_STATE_VERSION 1

struct ged_state {
	uint32_t magic;
	uint32_t version;
	uint8_t pending;
	uint8_t pad[7];
};

void ged_save(struct ged *ged, struct ged_state *st);
/* Checks a saved state as untrusted input. Returns 0 or -EINVAL. */
int ged_restore(struct ged *ged, const struct ged_state *st);

#endif
