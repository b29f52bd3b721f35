/*
 * pci: PCI configuration mechanism #1 (ports 0xCF8/0xCFC) and ECAM from CPL3,
 * as a firmware-less OS probes bus 0: CONFIG_ADDRESS read-back, the host
 * bridge's ids and class, the virtio-rng in slot 1, odd widths on the data
 * port, the enable bit, BAR sizing, then the virtio common configuration in
 * BAR 0 once memory decoding is on. Each failed check reports its own number.
 */
#include "guest.h"
#include "arch/x86/layout.h"

/* No spaces: gas splits macro arguments at them. */
#define CA(dev, reg) (0x80000000|((dev)<<11)|(reg))
#define RNG_IDS      0x10441af4 /* virtio entropy: 1af4:1040+4 */

/* CONFIG_ADDRESS = \ca */
.macro select ca
	mov $\ca, %eax
	mov $PORT_PCI_CONFIG_ADDRESS, %dx
	out %eax, %dx
.endm

/* EAX = the dword \ca selects */
.macro cfg_read ca
	select \ca
	mov $PORT_PCI_CONFIG_DATA, %dx
	in %dx, %eax
.endm

.macro check n
	mov $\n, %ecx
	jne fail
.endm

	.text
	.globl user_main
user_main:
	/* 1: CONFIG_ADDRESS reads back what was written (Linux's type-1 probe) */
	select 0x80000000
	in %dx, %eax
	cmp $0x80000000, %eax
	check 1

	/* 2, 3: device 0 is the host bridge, class 06/00 */
	cfg_read CA(0, 0)
	cmp $0xffffffff, %eax
	mov $2, %ecx
	je fail
	cfg_read CA(0, 8)
	shr $8, %eax
	cmp $0x060000, %eax
	check 3

	/* 4: device 1 is the virtio-rng */
	cfg_read CA(1, 0)
	cmp $RNG_IDS, %eax
	check 4

	/* 5, 6: a word at 0xCFE is the device id, a byte at 0xCFD the vendor's high byte */
	mov $PORT_PCI_CONFIG_DATA + 2, %dx
	xor %eax, %eax
	in %dx, %ax
	cmp $0x1044, %ax
	check 5
	mov $PORT_PCI_CONFIG_DATA + 1, %dx
	in %dx, %al
	cmp $0x1a, %al
	check 6

	/* 7: without the enable bit, nothing answers */
	select CA(1, 0)&0x7fffffff
	mov $PORT_PCI_CONFIG_DATA, %dx
	in %dx, %eax
	cmp $0xffffffff, %eax
	check 7

	/* 8: BAR 0 sizing: 32 KiB, 64-bit memory */
	cfg_read CA(1, 0x10)
	mov %eax, %ebx
	mov $0xffffffff, %eax
	out %eax, %dx
	in %dx, %eax
	cmp $0xffff8004, %eax
	check 8
	mov %ebx, %eax
	out %eax, %dx

	/* 9: ECAM agrees, through a CPL3 load from the MMIO window */
	mov $GUEST_PCI_ECAM + (1 << 15), %esi
	mov (%rsi), %eax
	cmp $RNG_IDS, %eax
	check 9

	/* 10: BAR 0 where the runner's window puts it, upper half 0 */
	and $0xfffffff0, %ebx
	cmp $GUEST_PCI_BAR0, %ebx
	check 10

	/* 11, 12: memory decoding on (through ECAM), then num_queues and device_status */
	movw $2, 4(%rsi)
	movzwl 0x12(%rbx), %eax
	cmp $1, %eax
	check 11
	movb $1, 0x14(%rbx)
	movzbl 0x14(%rbx), %eax
	cmp $1, %eax
	check 12

	/* A queue notification: KVM's ioeventfd takes it without an exit. */
	movw $0, 0x3000(%rbx)

	xor %eax, %eax
	jmp guest_done

fail:
	mov %ecx, %eax
	jmp guest_done
