/*
 * The x86 PC that tabique builds around a VM: legacy devices (COM1, RTC,
 * i8042, ACPI power management, pvpanic), a PCI bus with its virtio devices
 * (an entropy device in every VM), ACPI tables and the Linux boot.
 */
#ifndef TABIQUE_VMM_MACHINE_H
#define TABIQUE_VMM_MACHINE_H

#include <stdint.h>

#include "devices/serial.h"
#include "vmm/vm.h"

struct rtc;
struct i8042;
struct msi_router;
struct pci_bus;
struct rng;
struct virtio_pci;

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
	/* PCI: the host bridge on bus 0, MSI-X through KVM, virtio devices. */
	struct msi_router *msi;
	struct pci_bus *pci;
	uint64_t mmio64_base, mmio64_size; /* the 64-bit BAR window above RAM; size 0 = none */
	struct rng *rng;
	struct virtio_pci *rng_pci;
};

/*
 * Builds the VM, its devices and tables, and loads the kernel. Returns 0, or
 * a negative errno after one line saying what was wrong; machine_destroy()
 * cleans up either way.
 */
int machine_create(struct machine *m, const struct machine_config *cfg);
void machine_destroy(struct machine *m);

#endif
