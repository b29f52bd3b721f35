/*
 * MSI delivery through KVM: every interrupt source is a GSI with an MSI
 * route (KVM_SET_GSI_ROUTING) and an irqfd (KVM_IRQFD), so a device thread
 * raises an interrupt by writing an eventfd, without a system call into the
 * vCPU or a VM exit. The routing table always keeps KVM's default routes for
 * the 8259 and IOAPIC pins (GSIs 0-23), which a table update replaces.
 *
 * Implements struct pci_msi_ops for the PCI bus.
 */
#ifndef TABIQUE_VMM_MSI_H
#define TABIQUE_VMM_MSI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/pci.h"

#define MSI_FIRST_GSI	24  /* after the IOAPIC pins */
#define MSI_MAX_SOURCES 512 /* GSIs 24..535: well under KVM's 1024 routes */

struct msi_source {
	bool used;
	bool routed; /* has a valid route in the table */
	int efd;     /* irqfd; written to raise */
	uint64_t addr;
	uint32_t data;
};

struct msi_router {
	int vm_fd;
	pthread_mutex_t lock; /* the table and the sources */
	struct msi_source sources[MSI_MAX_SOURCES];
};

/* The PCI bus's view of a router: pass {&msi_router_ops, router}. */
extern const struct pci_msi_ops msi_router_ops;

void msi_router_init(struct msi_router *r, int vm_fd);
/* Closes every source's eventfd; KVM drops the irqfds with the VM. */
void msi_router_destroy(struct msi_router *r);

#endif
