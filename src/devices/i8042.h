/*
 * Enough of the 8042 PS/2 controller for a guest's reset path and a harmless
 * probe, with no keyboard or mouse behind it and no interrupt: status port
 * 0x64, command port 0x64, data port 0x60. Pulsing the reset line (command
 * 0xFE, any even 0xF0..0xFE, or 0xD1 with output-port bit 0 clear) asks for
 * VM_REBOOT.
 */
#ifndef TABIQUE_DEVICES_I8042_H
#define TABIQUE_DEVICES_I8042_H

#include <stdint.h>

#include "bus/bus.h"

struct i8042;

/* Everything a snapshot needs; plain data, no pointers. */
struct i8042_state {
	uint8_t ctr;	 /* controller command byte ("CTR") */
	uint8_t outport; /* output port: bit 0 = not in reset, bit 1 = A20 */
	uint8_t out;	 /* output buffer (stays readable after it was read) */
	uint8_t status;	 /* the stored status bits: OBF (0), CMD (3), AUX data (5) */
	uint8_t pending; /* command waiting for its data byte on port 0x60, or 0 */
};

/* Returns NULL on ENOMEM. */
struct i8042 *i8042_create(void);
/* Frees the device; unregister it from the bus (or destroy the bus) first. */
void i8042_destroy(struct i8042 *kbc);
/* Claims ports 0x60 and 0x64 (two 1-byte ranges). Returns 0 or bus_register's error. */
int i8042_attach(struct i8042 *kbc, struct bus *pio);

void i8042_save(struct i8042 *kbc, struct i8042_state *out);
/* Returns 0 or -EINVAL (unknown pending command, undefined status bits). */
int i8042_restore(struct i8042 *kbc, const struct i8042_state *in);

#endif
