/* The BIOS-style memory map handed to Linux in boot_params. */
#ifndef TABIQUE_ARCH_X86_E820_H
#define TABIQUE_ARCH_X86_E820_H

#include <asm/bootparam.h>
#include <stdint.h>

#define E820_TYPE_RAM      1
#define E820_TYPE_RESERVED 2
#define E820_TYPE_ACPI     3

/*
 * Fills table with the map of a guest that has low_ram bytes below the MMIO
 * hole and high_ram bytes from 4 GiB up: conventional RAM below the EBDA, the
 * BIOS area reserved, RAM from 1 MiB, RAM above 4 GiB. Returns the number of
 * entries, or -ENOSPC when max is too small.
 */
int e820_build(struct boot_e820_entry *table, unsigned max, uint64_t low_ram, uint64_t high_ram);

#endif
