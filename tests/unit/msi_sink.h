/*
 * A fake MSI sink for device tests: hands out up to MSI_SINK_VECTORS handles
 * and counts the interrupts raised on each (atomically: device threads raise
 * them). Include once per test file; it defines `sink` and `sink_ops`.
 */
#ifndef TABIQUE_TESTS_MSI_SINK_H
#define TABIQUE_TESTS_MSI_SINK_H

#include "bus/pci.h"

#define MSI_SINK_VECTORS 8

struct sink {
	int next;
	int count[MSI_SINK_VECTORS];
};

static struct sink sink;

static int sink_alloc(void *o)
{
	struct sink *s = o;

	return s->next < MSI_SINK_VECTORS ? s->next++ : -1;
}

static int sink_route(void *o, int h, uint64_t addr, uint32_t data)
{
	(void)o;
	(void)h;
	(void)addr;
	(void)data;
	return 0;
}

static void sink_raise(void *o, int h)
{
	__atomic_add_fetch(&((struct sink *)o)->count[h], 1, __ATOMIC_SEQ_CST);
}

static void sink_release(void *o, int h)
{
	(void)o;
	(void)h;
}

static const struct pci_msi_ops sink_ops = {sink_alloc, sink_route, sink_raise, sink_release};

#endif
