/*
 * Port-I/O and MMIO address spaces. A device claims a range once, with one
 * call; overlapping claims are refused. A lookup is a binary search over the
 * sorted ranges. Accesses to unclaimed addresses read as all ones and writes
 * are dropped, as on real hardware.
 *
 * Handlers run without the bus lock, so they may register and unregister
 * ranges (PCI BARs move at run time). The price: an access that found a
 * range may still be in its handler after bus_unregister() returns, so a
 * range's opaque must live until no vCPU runs (in practice: until the VM is
 * destroyed).
 */
#ifndef TABIQUE_BUS_BUS_H
#define TABIQUE_BUS_BUS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/action.h"

/*
 * Handlers get the offset into their range and an access of 1 to 8 bytes
 * (guest-controlled: a handler must cope with any length in that range). A
 * read handler fills all of data[0..len).
 */
struct bus_ops {
	enum vm_action (*read)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len);
	enum vm_action (*write)(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus {
	const char *name;
	pthread_rwlock_t lock; /* ranges may move at run time (PCI BARs) */
	struct bus_range *ranges;
	size_t count;
	size_t capacity;
};

void bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);

/* Claims [base, base + len). Returns 0, -EINVAL (empty or wrapping), -EEXIST (overlap) or -ENOMEM. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque);
/* Releases the range that starts at base. Returns 0 or -ENOENT. */
int bus_unregister(struct bus *bus, uint64_t base);

/* Dispatches one guest access; len is clamped by the caller to 1..8. */
enum vm_action bus_read(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len);
enum vm_action bus_write(struct bus *bus, uint64_t addr, const uint8_t *data, uint32_t len);

#endif
