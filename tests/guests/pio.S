/*
 * pio: port I/O of every width through the exit path and the PIO bus. The
 * runner's echo register (GUEST_PORT_ECHO) keeps the bytes written at +0..3
 * and returns them at +4..7, so each check writes at some offset and width
 * and reads back at another. Each failed check reports its own number.
 */
#include "guest.h"

	.text
	.globl user_main
user_main:
	/* 1: a 4-byte write, read back whole */
	mov $GUEST_PORT_ECHO, %dx
	mov $0x12345678, %eax
	out %eax, %dx
	add $4, %dx
	in %dx, %eax
	cmp $0x12345678, %eax
	mov $1, %ecx
	jne fail

	/* 2, 3: a 2-byte write at +2 replaces the upper half only */
	mov $GUEST_PORT_ECHO + 2, %dx
	mov $0xbeef, %ax
	out %ax, %dx
	mov $GUEST_PORT_ECHO + 4, %dx
	in %dx, %eax
	cmp $0xbeef5678, %eax
	mov $2, %ecx
	jne fail
	mov $GUEST_PORT_ECHO + 6, %dx
	in %dx, %ax
	cmp $0xbeef, %ax
	mov $3, %ecx
	jne fail

	/* 4, 5: a 1-byte write at +1, read back as a byte and whole */
	mov $GUEST_PORT_ECHO + 1, %dx
	mov $0xa5, %al
	out %al, %dx
	mov $GUEST_PORT_ECHO + 5, %dx
	in %dx, %al
	cmp $0xa5, %al
	mov $4, %ecx
	jne fail
	mov $GUEST_PORT_ECHO + 4, %dx
	in %dx, %eax
	cmp $0xbeefa578, %eax
	mov $5, %ecx
	jne fail

	/* 6: a 1-byte write at +3, read as the upper 2 bytes */
	mov $GUEST_PORT_ECHO + 3, %dx
	mov $0x3c, %al
	out %al, %dx
	mov $GUEST_PORT_ECHO + 6, %dx
	in %dx, %ax
	cmp $0x3cef, %ax
	mov $6, %ecx
	jne fail

	/* 7, 8: nobody claims GUEST_PORT_UNCLAIMED: reads are all ones */
	mov $GUEST_PORT_UNCLAIMED, %dx
	xor %eax, %eax
	in %dx, %eax
	cmp $0xffffffff, %eax
	mov $7, %ecx
	jne fail
	xor %eax, %eax
	in %dx, %al
	cmp $0xff, %al
	mov $8, %ecx
	jne fail

	/* 9: string I/O, 16 bytes out with rep outsb and back with rep insb */
	lea pattern(%rip), %rsi
	mov $GUEST_PORT_FIFO, %dx
	mov $16, %ecx
	rep outsb
	mov $GUEST_SHARED, %edi
	mov $GUEST_PORT_FIFO + 1, %dx
	mov $16, %ecx
	rep insb
	lea pattern(%rip), %rsi
	mov $GUEST_SHARED, %edi
	mov $16, %ecx
	repe cmpsb
	mov $9, %ecx
	jne fail

	xor %eax, %eax
	jmp guest_done

fail:
	mov %ecx, %eax
	jmp guest_done

	.section .rodata
	.globl pattern
pattern:
	.ascii "tabique pio 0123"
