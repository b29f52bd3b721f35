/*
 * ACPI tables for x86 guests booted without firmware: hardware-reduced ACPI
 * (no PM1/GPE blocks, no SCI, no 8259), so a guest powers off and resets
 * through the FADT's sleep and reset registers, plain I/O ports.
 */
#ifndef TABIQUE_ARCH_X86_ACPI_H
#define TABIQUE_ARCH_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

/* Local APIC ids are 0..ncpus-1; xAPIC id 0xff is the broadcast id. */
#define ACPI_MAX_CPUS 255

/*
 * What the guest writes to the sleep control register (ACPI 6.x, 4.8.3.7)
 * to enter S5: SLP_EN | SLP_TYP << 2, i.e. 0x34 for the DSDT's \_S5_.
 */
#define ACPI_S5_SLP_TYP	      5
#define ACPI_SLEEP_CTL_SLP_EN 0x20
#define ACPI_SLEEP_CTL_TYP(v) (((v) >> 2) & 0x07)
/* Sleep status register: set by the platform when it wakes. */
#define ACPI_SLEEP_STS_WAK_STS 0x80

/*
 * The GED event selector bit the DSDT's _EVT tests for the power button. Must
 * equal devices/ged.h's GED_EVENT_POWER_BUTTON (kept apart, as ACPI_S5_SLP_TYP).
 */
#define ACPI_GED_POWER_BUTTON 0x01

struct acpi_config {
	unsigned ncpus;		  /* local APIC ids 0..ncpus-1, all enabled; 1..ACPI_MAX_CPUS */
	uint64_t ioapic_addr;	  /* LAYOUT_IOAPIC; below 4 GiB */
	uint32_t ioapic_gsi_base; /* 0 */
	uint64_t lapic_addr;	  /* LAYOUT_LAPIC; below 4 GiB */
	uint16_t sleep_ctl_port;  /* PORT_ACPI_SLEEP_CTL */
	uint16_t sleep_sts_port;  /* PORT_ACPI_SLEEP_STS */
	uint16_t reset_port;	  /* PORT_ACPI_RESET, 0 = no reset register */
	uint8_t reset_value;	  /* ACPI_RESET_VALUE */
	uint16_t pvpanic_port;	  /* PORT_PVPANIC, 0 = no pvpanic device */
	uint16_t com1_port;	  /* 0 = not described */
	uint8_t com1_irq;	  /* ISA IRQ 1-15, 0 = none */
	uint16_t rtc_port;	  /* 0 = not described, FADT: no RTC */
	uint8_t rtc_irq;	  /* ISA IRQ 1-15, 0 = none */
	/*
	 * Generic Event Device \_SB_.GED_ (ACPI0013) and the power button it
	 * notifies, \_SB_.PWRB (PNP0C0C): ged_port is its 1-byte event selector
	 * (0 = no GED, no power button), ged_gsi its edge-triggered interrupt.
	 */
	uint16_t ged_port;
	uint32_t ged_gsi;
	/*
	 * PCI root bridge \_SB_.PCI0 (bus 0, mechanism #1 at 0xCF8) and the MCFG.
	 * pci_ecam_base 0 = no PCI; else the 1 MiB of bus 0's ECAM, 1 MiB aligned,
	 * below 4 GiB, also reserved as a motherboard resource (PNP0C02).
	 */
	uint64_t pci_ecam_base;
	uint64_t pci_mmio32_base, pci_mmio32_size; /* window for 32-bit BARs, below 4 GiB */
	uint64_t pci_mmio64_base, pci_mmio64_size; /* window for 64-bit BARs; size 0 = none */
};

/*
 * Writes RSDP, XSDT, FADT, DSDT, MADT (and MCFG with PCI) into buf (cap bytes), which the guest
 * sees at guest-physical address gpa (the RSDP is at gpa itself, which must be
 * 16-byte aligned). Returns the number of bytes used, -ENOSPC when cap is too
 * small (nothing is written past cap), or -EINVAL for a bad config.
 */
long acpi_build(uint8_t *buf, size_t cap, uint64_t gpa, const struct acpi_config *cfg);

/*
 * ACPI table checksum helper: the two's complement of the byte sum, so 0 for
 * a valid table, and the value to store when the checksum field is still 0.
 */
uint8_t acpi_checksum(const void *data, size_t len);

#endif
