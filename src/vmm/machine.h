/*
 * The x86 PC that tabique builds around a VM: legacy devices (COM1, RTC,
 * i8042, ACPI power management, pvpanic), ACPI tables and the Linux boot.
 */
#ifndef TABIQUE_VMM_MACHINE_H
#define TABIQUE_VMM_MACHINE_H

#include <stdint.h>

#include "devices/serial.h"
#include "vmm/vm.h"

struct rtc;
struct i8042;

struct machine_config {
	uint64_t memory;
	unsigned cpus;
	const char *kernel;
	const char *initrd; /* NULL for none */
	const char *cmdline;
	struct serial_output console; /* where COM1's output goes */
};

struct machine {
	struct vm vm;
	struct serial *com1;
	struct rtc *rtc;
	struct i8042 *i8042;
};

/*
 * Builds the VM, its devices and tables, and loads the kernel. Returns 0, or
 * a negative errno after one line saying what was wrong; machine_destroy()
 * cleans up either way.
 */
int machine_create(struct machine *m, const struct machine_config *cfg);
void machine_destroy(struct machine *m);

#endif
