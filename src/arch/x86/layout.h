/*
 * The guest-physical memory map of an x86-64 tabique VM. RAM runs from 0 up
 * to the 32-bit MMIO hole; what does not fit below the hole continues at
 * 4 GiB, so a 4 GiB guest sees all its memory.
 */
#ifndef TABIQUE_ARCH_X86_LAYOUT_H
#define TABIQUE_ARCH_X86_LAYOUT_H

#define LAYOUT_GDT          0x00000500ULL /* boot GDT */
#define LAYOUT_BOOT_STACK   0x00008000ULL /* top of the early stack */
#define LAYOUT_ZERO_PAGE    0x00007000ULL /* struct boot_params */
#define LAYOUT_PML4         0x00009000ULL /* identity page tables: PML4, PDPT, 4 PDs */
#define LAYOUT_PDPT         0x0000a000ULL
#define LAYOUT_PD           0x0000b000ULL /* four pages: 0..4 GiB in 2 MiB pages */
#define LAYOUT_CMDLINE      0x00020000ULL
#define LAYOUT_CMDLINE_MAX  0x00010000ULL
#define LAYOUT_EBDA         0x0009fc00ULL /* end of conventional RAM */
#define LAYOUT_ACPI         0x000e0000ULL /* RSDP first, then the other tables */
#define LAYOUT_ACPI_MAX     0x00010000ULL
#define LAYOUT_BIOS_END     0x00100000ULL
#define LAYOUT_KERNEL       0x00100000ULL /* protected-mode kernel (code32_start) */

#define LAYOUT_MMIO_HOLE    0xc0000000ULL /* 3 GiB: start of the 32-bit MMIO hole */
#define LAYOUT_PCI_MMIO     0xc0000000ULL /* 32-bit BARs */
#define LAYOUT_PCI_MMIO_END 0xfec00000ULL
#define LAYOUT_IOAPIC       0xfec00000ULL
#define LAYOUT_LAPIC        0xfee00000ULL
#define LAYOUT_HIGH_RAM     0x100000000ULL /* RAM above the hole */

/* Legacy I/O ports. */
#define PORT_I8042_DATA     0x60
#define PORT_I8042_CMD      0x64
#define PORT_RTC            0x70 /* index 0x70, data 0x71 */
#define PORT_COM1           0x3f8
#define PORT_PVPANIC        0x505
#define PORT_ACPI_SLEEP_CTL 0x3c0 /* hardware-reduced ACPI: sleep control */
#define PORT_ACPI_SLEEP_STS 0x3c1 /* sleep status */
#define PORT_ACPI_RESET     0x3c4 /* FADT reset register */
#define ACPI_RESET_VALUE    0x01

/* Interrupt lines (GSIs on the in-kernel IOAPIC). */
#define IRQ_COM1            4
#define IRQ_RTC             8

#endif
