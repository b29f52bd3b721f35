/*
 * Hardware-reduced ACPI power management: the FADT's sleep control and sleep
 * status registers and its reset register (ports in arch/x86/layout.h). The
 * device has no state: one static set of handlers, nothing to save.
 */
#ifndef TABIQUE_DEVICES_ACPI_PM_H
#define TABIQUE_DEVICES_ACPI_PM_H

#include "bus/bus.h"

/*
 * The SLP_TYP our DSDT's \_S5 package names. Must equal acpi.h's
 * ACPI_S5_SLP_TYP; kept separate so that devices do not depend on the table
 * builder.
 */
#define ACPI_PM_S5_TYP 5

/* Sleep control register layout (ACPI 6.x, 4.8.3.7). */
#define ACPI_PM_SLP_TYP_SHIFT 2
#define ACPI_PM_SLP_TYP_MASK  0x1c
#define ACPI_PM_SLP_EN	      0x20

/*
 * Claims the three 1-byte ports. Writing SLP_EN with SLP_TYP = S5 to sleep
 * control returns VM_POWEROFF (other sleep types are ignored); writing
 * ACPI_RESET_VALUE to the reset register returns VM_REBOOT. Everything reads
 * as 0. Returns 0 or bus_register's error (nothing stays claimed then).
 */
int acpi_pm_attach(struct bus *pio);

#endif
