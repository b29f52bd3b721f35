#include "bus/bus.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
	pthread_rwlock_init(&bus->lock, NULL);
}

void bus_destroy(struct bus *bus)
{
	free(bus->ranges);
	pthread_rwlock_destroy(&bus->lock);
	memset(bus, 0, sizeof(*bus));
}

/* Index of the first range whose end is above addr (ranges are sorted and disjoint). */
static size_t bus_lower_bound(const struct bus *bus, uint64_t addr)
{
	size_t lo = 0, hi = bus->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->ranges[mid];

		if (r->base + r->len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int bus_grow(struct bus *bus)
{
	size_t capacity = bus->capacity ? bus->capacity * 2 : 16;
	struct bus_range *ranges = realloc(bus->ranges, capacity * sizeof(*ranges));

	if (ranges == NULL)
		return -ENOMEM;
	bus->ranges = ranges;
	bus->capacity = capacity;
	return 0;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque)
{
	struct bus_range range = {base, len, ops, opaque};
	size_t at;
	int ret = 0;

	if (len == 0 || base + len < base || ops == NULL)
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	at = bus_lower_bound(bus, base);
	if (at < bus->count && bus->ranges[at].base < base + len) {
		ret = -EEXIST;
		goto out;
	}
	if (bus->count == bus->capacity && (ret = bus_grow(bus)) != 0)
		goto out;
	memmove(&bus->ranges[at + 1], &bus->ranges[at], (bus->count - at) * sizeof(range));
	bus->ranges[at] = range;
	bus->count++;
out:
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

int bus_unregister(struct bus *bus, uint64_t base)
{
	size_t at;
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&bus->lock);
	at = bus_lower_bound(bus, base);
	if (at < bus->count && bus->ranges[at].base == base) {
		memmove(&bus->ranges[at], &bus->ranges[at + 1],
			(bus->count - at - 1) * sizeof(bus->ranges[0]));
		bus->count--;
		ret = 0;
	}
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

/* The range holding the whole access [addr, addr + len), or NULL. */
static const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len)
{
	size_t at = bus_lower_bound(bus, addr);
	const struct bus_range *r;

	if (at == bus->count)
		return NULL;
	r = &bus->ranges[at];
	if (addr < r->base || addr - r->base + len > r->len)
		return NULL;
	return r;
}

/*
 * Copies the range that holds the access, so that the handler runs without
 * the lock: a handler may then move ranges on this very bus (a PCI BAR
 * reprogrammed through ECAM) without deadlocking on its own read lock.
 */
static bool bus_lookup(struct bus *bus, uint64_t addr, uint32_t len, struct bus_range *out)
{
	const struct bus_range *r;

	pthread_rwlock_rdlock(&bus->lock);
	r = bus_find(bus, addr, len);
	if (r != NULL)
		*out = *r;
	pthread_rwlock_unlock(&bus->lock);
	return r != NULL;
}

enum vm_action bus_read(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len)
{
	struct bus_range r;

	memset(data, 0xff, len);
	if (!bus_lookup(bus, addr, len, &r) || r.ops->read == NULL)
		return VM_CONTINUE;
	return r.ops->read(r.opaque, addr - r.base, data, len);
}

enum vm_action bus_write(struct bus *bus, uint64_t addr, const uint8_t *data, uint32_t len)
{
	struct bus_range r;

	if (!bus_lookup(bus, addr, len, &r) || r.ops->write == NULL)
		return VM_CONTINUE;
	return r.ops->write(r.opaque, addr - r.base, data, len);
}
