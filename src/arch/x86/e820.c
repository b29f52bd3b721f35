#include "arch/x86/e820.h"

#include <errno.h>

#include "arch/x86/layout.h"

static int e820_add(struct boot_e820_entry *table, unsigned max, unsigned *n, uint64_t addr,
		    uint64_t size, uint32_t type)
{
	if (size == 0)
		return 0;
	if (*n >= max)
		return -ENOSPC;
	table[*n].addr = addr;
	table[*n].size = size;
	table[*n].type = type;
	(*n)++;
	return 0;
}

int e820_build(struct boot_e820_entry *table, unsigned max, uint64_t low_ram, uint64_t high_ram)
{
	unsigned n = 0;
	int ret = 0;

	if (low_ram <= LAYOUT_BIOS_END)
		return -EINVAL;
	ret |= e820_add(table, max, &n, 0, LAYOUT_EBDA, E820_TYPE_RAM);
	ret |= e820_add(table, max, &n, LAYOUT_EBDA, LAYOUT_BIOS_END - LAYOUT_EBDA,
			E820_TYPE_RESERVED);
	ret |= e820_add(table, max, &n, LAYOUT_BIOS_END, low_ram - LAYOUT_BIOS_END, E820_TYPE_RAM);
	ret |= e820_add(table, max, &n, LAYOUT_HIGH_RAM, high_ram, E820_TYPE_RAM);
	return ret != 0 ? -ENOSPC : (int)n;
}
