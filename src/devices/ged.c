#include "devices/ged.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ged {
	struct irq_line irq;
	uint8_t pending; /* GED_EVENT_* bits; atomic: the host sets, a vCPU clears */
};

struct ged *ged_create(struct irq_line irq)
{
	struct ged *ged = calloc(1, sizeof(*ged));

	if (ged != NULL)
		ged->irq = irq;
	return ged;
}

void ged_destroy(struct ged *ged)
{
	free(ged);
}

/* Read-to-clear, as QEMU's GED: _EVT reads once and handles every bit it got. */
static enum vm_action ged_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct ged *ged = opaque;

	memset(data, 0, len);
	if (offset == 0)
		data[0] = __atomic_exchange_n(&ged->pending, 0, __ATOMIC_ACQ_REL);
	return VM_CONTINUE;
}

static enum vm_action ged_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	(void)opaque;
	(void)offset;
	(void)data;
	(void)len;
	return VM_CONTINUE;
}

static const struct bus_ops ged_ops = {ged_read, ged_write};

int ged_attach(struct ged *ged, struct bus *pio, uint16_t port)
{
	return bus_register(pio, port, 1, &ged_ops, ged);
}

void ged_raise(struct ged *ged, uint8_t events)
{
	__atomic_fetch_or(&ged->pending, events & GED_EVENTS, __ATOMIC_ACQ_REL);
	/* An edge: the interrupt is not shared and nothing needs to lower it later. */
	irq_line_set(&ged->irq, true);
	irq_line_set(&ged->irq, false);
}

void ged_save(struct ged *ged, struct ged_state *st)
{
	memset(st, 0, sizeof(*st));
	st->magic = GED_STATE_MAGIC;
	st->version = GED_STATE_VERSION;
	st->pending = __atomic_load_n(&ged->pending, __ATOMIC_ACQUIRE);
}

int ged_restore(struct ged *ged, const struct ged_state *st)
{
	static const uint8_t zero[sizeof(st->pad)];

	if (st->magic != GED_STATE_MAGIC || st->version != GED_STATE_VERSION ||
	    (st->pending & ~GED_EVENTS) || memcmp(st->pad, zero, sizeof(zero)) != 0)
		return -EINVAL;
	__atomic_store_n(&ged->pending, st->pending, __ATOMIC_RELEASE);
	return 0;
}
