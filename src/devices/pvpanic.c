#include "devices/pvpanic.h"

#include <string.h>

#include "arch/x86/layout.h"
#include "util/log.h"

static enum vm_action pvpanic_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	(void)opaque;
	memset(data, 0, len);
	if (offset == 0)
		data[0] = PVPANIC_EVENTS;
	return VM_CONTINUE;
}

static enum vm_action pvpanic_write(void *opaque, uint64_t offset, const uint8_t *data,
				    uint32_t len)
{
	(void)opaque;
	(void)len;
	if (offset != 0)
		return VM_CONTINUE;
	if (data[0] & PVPANIC_PANICKED)
		return VM_CRASH;
	/* Debug only: a guest must not be able to flood the log. */
	if (data[0] & PVPANIC_CRASH_LOADED)
		log_debug("pvpanic: guest panicked, its crash kernel takes over");
	return VM_CONTINUE;
}

static const struct bus_ops pvpanic_ops = {pvpanic_read, pvpanic_write};

int pvpanic_attach(struct bus *pio)
{
	return bus_register(pio, PORT_PVPANIC, 1, &pvpanic_ops, NULL);
}
