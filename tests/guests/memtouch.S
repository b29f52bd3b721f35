/*
 * memtouch: writes GUEST_TOUCH_MAGIC ^ gpa at every GUEST_TOUCH_STRIDE of RAM
 * (and in the last qword) below the MMIO hole and above 4 GiB, reads it all
 * back, and checks that the hole and the end of RAM are not RAM. The runner
 * then finds the same values host-side through gpa_to_hva, which proves the
 * guest and the VMM agree on the memory split. The boot page tables map only
 * 0-4 GiB, so kernel_setup (CPL0) maps the high RAM first.
 */
#include "guest.h"

#define PTE_USER_RW 0x07 /* present, writable, user */
#define PDE_2M      0x87 /* ... and a 2 MiB page */
#define PAGE_2M     0x200000
#define ADDR_MASK   0x000ffffffffff000

	.text
	.globl kernel_setup
kernel_setup:
	push %rsi
	push %rdi
	mov GUEST_PARAMS + PARAM_HIGH_SIZE, %rcx
	shr $21, %rcx /* 2 MiB pages above 4 GiB */
	jz 3f
	cmp $(GUEST_HIGH_PD_MAX * 512), %rcx
	jbe 1f
	mov $(GUEST_HIGH_PD_MAX * 512), %rcx
1:	mov $GUEST_HIGH_PD, %edi
	movabs $(GUEST_HIGH | PDE_2M), %rax
	mov %rcx, %rdx
2:	mov %rax, (%rdi)
	add $PAGE_2M, %rax
	add $8, %rdi
	dec %rdx
	jnz 2b
	/* PDPT entries 4 and up (the PDPT is the one PML4[0] points at) */
	movabs $ADDR_MASK, %rdx
	mov %cr3, %rsi
	and %rdx, %rsi
	mov (%rsi), %rsi
	and %rdx, %rsi
	add $(4 * 8), %rsi
	add $511, %rcx
	shr $9, %rcx
	mov $(GUEST_HIGH_PD | PTE_USER_RW), %eax
2:	mov %rax, (%rsi)
	add $0x1000, %rax
	add $8, %rsi
	dec %rcx
	jnz 2b
	mov %cr3, %rax
	mov %rax, %cr3
3:	pop %rdi
	pop %rsi
	ret

	.globl user_main
user_main:
	movabs $GUEST_TOUCH_MAGIC, %r15
	mov $GUEST_TOUCH_START, %edi
	mov GUEST_PARAMS + PARAM_LOW_SIZE, %rsi
	call touch_range
	movabs $GUEST_HIGH, %rdi
	mov GUEST_PARAMS + PARAM_HIGH_SIZE, %rsi
	add %rdi, %rsi
	call touch_range

	/* 1, 2: every value reads back (high RAM aliasing low RAM would not) */
	mov $GUEST_TOUCH_START, %edi
	mov GUEST_PARAMS + PARAM_LOW_SIZE, %rsi
	call check_range
	mov $1, %ecx
	jne fail
	movabs $GUEST_HIGH, %rdi
	mov GUEST_PARAMS + PARAM_HIGH_SIZE, %rsi
	add %rdi, %rsi
	call check_range
	mov $2, %ecx
	jne fail

	/* 3: the start of the MMIO hole is not RAM: writes vanish, reads are all ones */
	mov $GUEST_HOLE, %ebx
	mov %r15, (%rbx)
	mov (%rbx), %rax
	cmp $-1, %rax
	mov $3, %ecx
	jne fail

	/* 4: nor is what follows the low RAM of a VM smaller than the hole */
	mov GUEST_PARAMS + PARAM_LOW_SIZE, %rbx
	mov $GUEST_HOLE, %eax
	cmp %rax, %rbx
	jae 1f
	mov %r15, (%rbx)
	mov (%rbx), %rax
	cmp $-1, %rax
	mov $4, %ecx
	jne fail
1:	xor %eax, %eax
	jmp guest_done

fail:
	mov %ecx, %eax
	jmp guest_done

/* Writes r15 ^ gpa at rdi, rdi + STRIDE, ... below rsi, and in the last qword before rsi. */
touch_range:
	lea 8(%rdi), %rax
	cmp %rsi, %rax
	ja 2f
1:	mov %rdi, %rax
	xor %r15, %rax
	mov %rax, (%rdi)
	add $GUEST_TOUCH_STRIDE, %rdi
	lea 8(%rdi), %rax
	cmp %rsi, %rax
	jbe 1b
	lea -8(%rsi), %rdi
	mov %rdi, %rax
	xor %r15, %rax
	mov %rax, (%rdi)
2:	ret

/* The same walk, comparing; returns with ZF set when everything matched. */
touch_check_one:
	mov %rdi, %rax
	xor %r15, %rax
	cmp %rax, (%rdi)
	ret

check_range:
	lea 8(%rdi), %rax
	cmp %rsi, %rax
	ja 2f
1:	call touch_check_one
	jne 3f
	add $GUEST_TOUCH_STRIDE, %rdi
	lea 8(%rdi), %rax
	cmp %rsi, %rax
	jbe 1b
	lea -8(%rsi), %rdi
	call touch_check_one
	ret
2:	cmp %eax, %eax /* empty range: ZF set */
3:	ret
