/*
 * The contract between the test guests (the .S files in this folder) and their runner
 * (guest_test.c): where a guest lives in guest-physical memory, which ports
 * it talks to. Included by C and by the assembler, so no C here outside
 * __ASSEMBLER__ guards, and no ULL suffixes (gas does not take them).
 */
#ifndef TABIQUE_TESTS_GUEST_H
#define TABIQUE_TESTS_GUEST_H

/* Guest-physical layout; the boot page tables and GDT sit below 64 KiB. */
#define GUEST_LOAD	  0x100000 /* the flat binary, entered at its first byte */
#define GUEST_IMAGE_MAX	  0x10000
#define GUEST_PERCPU	  0x110000 /* one page per vCPU: GDT, TSS, IDT */
#define GUEST_STACKS	  0x120000 /* GUEST_STACK_SIZE per vCPU, vCPU i's top at (i + 1) */
#define GUEST_STACK_SIZE  0x4000
#define GUEST_MAX_CPUS	  8
#define GUEST_PARAMS	  0x140000 /* written by the runner before the start */
#define GUEST_SHARED	  0x141000 /* scratch page shared by all vCPUs */
#define GUEST_HIGH_PD	  0x150000 /* memtouch: page directories for RAM above 4 GiB */
#define GUEST_HIGH_PD_MAX 16	   /* pages there: maps up to 16 GiB of high RAM */

/* struct guest_params, as offsets for the assembler. */
#define PARAM_NCPUS	0
#define PARAM_LOW_SIZE	8  /* RAM below the MMIO hole */
#define PARAM_HIGH_SIZE 16 /* RAM from 4 GiB */

/* Where the 32-bit MMIO hole starts and high RAM begins (layout.h, without suffixes). */
#define GUEST_HOLE 0xc0000000
#define GUEST_HIGH 0x100000000

/* The runner's control ports. */
#define GUEST_PORT_RESULT    0x700 /* out 4 bytes: 0 = pass, else the failed check; stops the VM */
#define GUEST_PORT_FAULT     0x704 /* out the vector of an unexpected exception; stops the VM */
#define GUEST_PORT_FAULT_RIP 0x708 /* out before FAULT: low 32 bits of the faulting RIP */
#define GUEST_PORT_FAULT_ERR 0x70c /* out before FAULT: the error code (0 if none) */
#define GUEST_PORT_FAULT_CR2 0x710 /* out before FAULT: CR2, low 32 bits, then high 32 bits */
#define GUEST_PORT_CPU	     0x714 /* smp: out this vCPU's index */
#define GUEST_PORT_CTL_LEN   0x18

/* pio: a 4-byte register written at +0..3 and read back at +4..7. */
#define GUEST_PORT_ECHO 0x720
/* pio: what `rep outsb` writes at +0 comes back, in order, from `rep insb` at +1. */
#define GUEST_PORT_FIFO	     0x728
#define GUEST_PORT_UNCLAIMED 0x7f0

/* mmio: 16 bytes of scratch registers; the next page is claimed by nobody. */
#define GUEST_MMIO_BASE	     0xd0000000
#define GUEST_MMIO_SIZE	     0x1000
#define GUEST_MMIO_UNCLAIMED 0xd0001000
/* pci: the runner's PCI bus (ECAM as in layout.h) with a virtio-rng in slot 1. */
#define GUEST_PCI_ECAM	     0xe0000000
#define GUEST_PCI_BAR0	     0xc0000000 /* the first BAR the 32-bit window hands out */

/* memtouch: one qword every GUEST_TOUCH_STRIDE from GUEST_TOUCH_START, value gpa ^ magic. */
#define GUEST_TOUCH_START  0x1000000
#define GUEST_TOUCH_STRIDE 0x100000
#define GUEST_TOUCH_MAGIC  0x7ab1c0de5eed0000

/* ACPI S5 for PORT_ACPI_SLEEP_CTL: SLP_EN (bit 5) | SLP_TYP 5 << 2. */
#define GUEST_ACPI_S5 0x34

/* Selectors of the GDT each vCPU builds (user ones with RPL 3). */
#define GUEST_SEL_KCODE 0x08
#define GUEST_SEL_KDATA 0x10
#define GUEST_SEL_UDATA 0x1b
#define GUEST_SEL_UCODE 0x23
#define GUEST_SEL_TSS	0x28

#ifndef __ASSEMBLER__
#include <stdint.h>

struct guest_params {
	uint64_t ncpus;
	uint64_t low_size;
	uint64_t high_size;
};
#endif

#endif
