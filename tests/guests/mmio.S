/*
 * mmio: loads and stores of 1, 2, 4 and 8 bytes at CPL3 to an unbacked
 * guest-physical page, each a KVM_EXIT_MMIO for the runner's 16-byte scratch
 * device at GUEST_MMIO_BASE; then the page after it, which nobody claims,
 * must read as all ones. Each failed check reports its own number.
 */
#include "guest.h"

	.text
	.globl user_main
user_main:
	mov $GUEST_MMIO_BASE, %ebx

	/* 1: 8 bytes at +0 */
	movabs $0x0123456789abcdef, %rax
	mov %rax, (%rbx)
	xor %ecx, %ecx
	mov (%rbx), %rcx
	cmp %rax, %rcx
	mov $1, %ecx
	jne fail

	/* 2: 4 bytes at +8 */
	movl $0xcafef00d, 8(%rbx)
	mov 8(%rbx), %eax
	cmp $0xcafef00d, %eax
	mov $2, %ecx
	jne fail

	/* 3, 4: 2 bytes at +4, alone and inside the 8 bytes at +0 */
	movw $0xbeef, 4(%rbx)
	movzwl 4(%rbx), %eax
	cmp $0xbeef, %eax
	mov $3, %ecx
	jne fail
	mov (%rbx), %rax
	movabs $0x0123beef89abcdef, %rdx
	cmp %rdx, %rax
	mov $4, %ecx
	jne fail

	/* 5, 6: 1 byte at +15, alone and inside the 4 bytes at +12 */
	movb $0x5a, 15(%rbx)
	movzbl 15(%rbx), %eax
	cmp $0x5a, %eax
	mov $5, %ecx
	jne fail
	mov 12(%rbx), %eax
	cmp $0x5a000000, %eax
	mov $6, %ecx
	jne fail

	/* 7, 8: an unclaimed page in the hole drops writes and reads all ones */
	mov $GUEST_MMIO_UNCLAIMED, %ebx
	movq $0, (%rbx)
	mov (%rbx), %rax
	cmp $-1, %rax
	mov $7, %ecx
	jne fail
	movzbl 3(%rbx), %eax
	cmp $0xff, %eax
	mov $8, %ecx
	jne fail

	xor %eax, %eax
	jmp guest_done

fail:
	mov %ecx, %eax
	jmp guest_done
