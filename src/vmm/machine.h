/*
 * The x86 PC that tabique builds around a VM: legacy devices (COM1, RTC,
 * i8042, ACPI power management, pvpanic), a PCI bus with its virtio devices
 * (an entropy device in every VM), ACPI tables and the Linux boot.
 */
#ifndef TABIQUE_VMM_MACHINE_H
#define TABIQUE_VMM_MACHINE_H

#include <stdint.h>

#include "devices/serial.h"
#include "disk/disk.h"
#include "net/spec.h"
#include "vmm/vm.h"

struct rtc;
struct i8042;
struct ged;
struct msi_router;
struct pci_bus;
struct rng;
struct blk;
struct net;
struct net_backend;
struct virtio_pci;
struct vsock;

struct machine_config {
	uint64_t memory;
	unsigned cpus;
	const char *kernel;
	const char *initrd; /* NULL for none */
	const char *cmdline;
	struct serial_output console; /* where COM1's output goes */
	/* Disks, opened by the caller and kept across reboots: vda, vdb ... in this order. */
	struct machine_disk {
		struct disk *disk;
		const char *serial; /* NULL or "" for none */
	} disks[DISK_MAX];
	unsigned ndisks;
	/* Network cards, their backends opened by the caller and kept across reboots. */
	struct machine_nic {
		struct net_backend *backend;
		uint8_t mac[6];
	} nics[NET_MAX_NICS];
	unsigned nnics;
	/* The socket device (--vsock), NULL for none: the caller's, kept across reboots. */
	struct vsock *vsock;
};

struct machine {
	struct vm vm;
	struct serial *com1;
	struct rtc *rtc;
	struct i8042 *i8042;
	struct ged *ged; /* ACPI events: the power button */
	/* PCI: the host bridge on bus 0, MSI-X through KVM, virtio devices. */
	struct msi_router *msi;
	struct pci_bus *pci;
	uint64_t mmio64_base, mmio64_size; /* the 64-bit BAR window above RAM; size 0 = none */
	struct rng *rng;
	struct virtio_pci *rng_pci;
	struct blk *blk[DISK_MAX];
	struct virtio_pci *blk_pci[DISK_MAX];
	unsigned nblk;
	struct net *net[NET_MAX_NICS];
	struct virtio_pci *net_pci[NET_MAX_NICS];
	unsigned nnet;
	struct virtio_pci *vsock_pci;
};

/*
 * Builds the VM, its devices and tables, and loads the kernel. Returns 0, or
 * a negative errno after one line saying what was wrong; machine_destroy()
 * cleans up either way.
 */
int machine_create(struct machine *m, const struct machine_config *cfg);
void machine_destroy(struct machine *m);

/*
 * Presses the ACPI power button: a guest that handles it (the default guest
 * does) shuts itself down. Any thread, while the machine exists.
 */
void machine_power_button(struct machine *m);

#endif
