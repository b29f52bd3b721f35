/* How a device raises its interrupt line without knowing about KVM (so it can be unit-tested). */
#ifndef TABIQUE_DEVICES_IRQ_H
#define TABIQUE_DEVICES_IRQ_H

#include <stdbool.h>
#include <stdint.h>

struct irq_line {
	void (*set)(void *opaque, uint32_t gsi, bool level);
	void *opaque;
	uint32_t gsi;
};

static inline void irq_line_set(const struct irq_line *line, bool level)
{
	if (line->set != NULL)
		line->set(line->opaque, line->gsi, level);
}

#endif
