/*
 * The pvpanic I/O port (QEMU's "QEMU0001" device, which Linux's pvpanic
 * driver knows): the guest kernel writes an event when it panics. Stateless.
 */
#ifndef TABIQUE_DEVICES_PVPANIC_H
#define TABIQUE_DEVICES_PVPANIC_H

#include "bus/bus.h"

#define PVPANIC_PANICKED     0x01 /* the guest kernel panicked */
#define PVPANIC_CRASH_LOADED 0x02 /* it panicked and is booting its kdump kernel */
#define PVPANIC_EVENTS	     (PVPANIC_PANICKED | PVPANIC_CRASH_LOADED)

/*
 * Claims PORT_PVPANIC. Reads return PVPANIC_EVENTS; a write with
 * PVPANIC_PANICKED set returns VM_CRASH, anything else (CRASH_LOADED: kdump
 * runs next) keeps the VM running. Returns 0 or bus_register's error.
 */
int pvpanic_attach(struct bus *pio);

#endif
