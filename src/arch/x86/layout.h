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
#define LAYOUT_RESET_VECTOR 0x000ffff0ULL /* where a real-mode reboot jumps (F000:FFF0) */
#define LAYOUT_BIOS_END     0x00100000ULL
#define LAYOUT_KERNEL       0x00100000ULL /* protected-mode kernel (code32_start) */

#define LAYOUT_MMIO_HOLE    0xc0000000ULL /* 3 GiB: start of the 32-bit MMIO hole */
#define LAYOUT_PCI_MMIO     0xc0000000ULL /* 32-bit BARs */
#define LAYOUT_PCI_MMIO_END 0xe0000000ULL
/*
 * PCI Express ECAM (PCI Firmware spec 3.x, MCFG): 4 KiB of configuration
 * space per function, 1 MiB per bus; tabique has bus 0 only. The 255 MiB
 * after it stay free so more buses can follow without moving anything.
 */
#define LAYOUT_PCI_ECAM      0xe0000000ULL
#define LAYOUT_PCI_ECAM_SIZE 0x00100000ULL
/* 64-bit BARs: a window that starts at the first GiB boundary above RAM. */
#define LAYOUT_PCI_MMIO64_ALIGN (1ULL << 30)
#define LAYOUT_PCI_MMIO64_SIZE  (64ULL << 30)
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
#define PORT_ACPI_GED       0x3c8 /* Generic Event Device: event selector (read to clear) */
#define PORT_PCI_CONFIG_ADDRESS 0xcf8 /* PCI configuration mechanism #1 */
#define PORT_PCI_CONFIG_DATA    0xcfc

/* Interrupt lines (GSIs on the in-kernel IOAPIC). */
#define IRQ_COM1            4
#define IRQ_RTC             8
#define IRQ_ACPI_GED        16 /* edge, active high; not an ISA line, nothing shares it */

#endif
