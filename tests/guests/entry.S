/*
 * Common start of every test guest, linked first. The runner enters it in
 * 64-bit mode at CPL0 (boot_enter_long_mode) with RSI = vCPU index and RSP =
 * the top of that vCPU's stack. CPL0 code may be emulated instruction by
 * instruction on nested hosts (kvm_pvm), so this does the least it must:
 * a per-vCPU GDT with user segments, a TSS (ltr), an IDT that reports any
 * exception to the runner, the guest's optional kernel_setup, then iretq to
 * user_main at CPL3 with IOPL=3, where in/out work and everything runs at
 * native speed. RSI still holds the vCPU index there.
 */
#include "guest.h"

/* Percpu page layout. */
#define PC_GDT  0x000
#define PC_GDTR 0x040
#define PC_IDTR 0x050
#define PC_IDT  0x100 /* 32 gates */
#define PC_TSS  0x400 /* with its I/O bitmap, up to 0x669 */

#define TSS_RSP0   4
#define TSS_IOMAP  102
#define TSS_BITMAP 0x68  /* I/O permission bitmap right after the TSS */
#define IO_PORTS   0x1000 /* ports 0..0xfff allowed: every port the tests use */
#define TSS_LIMIT  (TSS_BITMAP + IO_PORTS / 8) /* includes the 0xff terminator */

#define IDT_VECTORS 32
#define USER_STACK_GAP 0x800 /* the user stack starts below the exception stack */
#define USER_RFLAGS 0x3002   /* IOPL=3, interrupts off */
#define ERRCODE_VECTORS 0x60227d00 /* 8, 10-14, 17, 21, 29, 30 push an error code */

	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	cmp $GUEST_MAX_CPUS, %rsi
	jae park
	mov %rsi, %rdi
	shl $12, %rdi
	add $GUEST_PERCPU, %rdi /* rdi: this vCPU's page */
	call gdt_build
	call idt_build
	lgdt PC_GDTR(%rdi)
	lidt PC_IDTR(%rdi)
	mov $GUEST_SEL_TSS, %ax
	ltr %ax
	call kernel_setup
	mov $GUEST_SEL_UDATA, %ax
	mov %ax, %ds
	mov %ax, %es
	/* iretq frame: SS, RSP, RFLAGS, CS, RIP. */
	lea -USER_STACK_GAP(%rsp), %rax
	push $GUEST_SEL_UDATA
	push %rax
	push $USER_RFLAGS
	push $GUEST_SEL_UCODE
	lea user_main(%rip), %rax
	push %rax
	iretq

park:
	hlt
	jmp park

/* Kernel, user data, user code, TSS descriptors and the GDTR in the page at rdi. */
gdt_build:
	movq $0, PC_GDT(%rdi)
	movabs $0x00af9b000000ffff, %rax /* 64-bit code, DPL0 */
	mov %rax, PC_GDT + GUEST_SEL_KCODE(%rdi)
	movabs $0x00cf93000000ffff, %rax /* data, DPL0 */
	mov %rax, PC_GDT + GUEST_SEL_KDATA(%rdi)
	movabs $0x00cff3000000ffff, %rax /* data, DPL3 */
	mov %rax, PC_GDT + (GUEST_SEL_UDATA & ~3)(%rdi)
	movabs $0x00affb000000ffff, %rax /* 64-bit code, DPL3 */
	mov %rax, PC_GDT + (GUEST_SEL_UCODE & ~3)(%rdi)
	/* Available 64-bit TSS (type 9): the percpu page is below 16 MiB, so base[31:24] = 0. */
	/* TSS limit < 64 KiB: the descriptor's limit[19:16] stays 0. */
	lea PC_TSS(%rdi), %rax
	shl $16, %rax
	or $TSS_LIMIT, %rax
	movabs $0x0000890000000000, %rcx
	or %rcx, %rax
	mov %rax, PC_GDT + GUEST_SEL_TSS(%rdi)
	movq $0, PC_GDT + GUEST_SEL_TSS + 8(%rdi)
	/*
	 * TSS: exceptions at CPL3 switch to the top of this vCPU's stack. The
	 * bitmap (zero: allowed, as fresh RAM is) grants the ports a second time,
	 * besides IOPL=3: some nested KVMs (kvm_pvm) lose IOPL on the way to CPL3
	 * but their instruction emulator honours the bitmap.
	 */
	lea 8(%rsp), %rax
	mov %rax, PC_TSS + TSS_RSP0(%rdi)
	movw $TSS_BITMAP, PC_TSS + TSS_IOMAP(%rdi)
	movb $0xff, PC_TSS + TSS_LIMIT(%rdi)
	movw $(GUEST_SEL_TSS + 15), PC_GDTR(%rdi)
	lea PC_GDT(%rdi), %rax
	mov %rax, PC_GDTR + 2(%rdi)
	ret

/* Interrupt gates for the 32 exceptions, each to its 16-byte stub. */
idt_build:
	lea fault_stubs(%rip), %rax
	lea PC_IDT(%rdi), %rbx
	mov $IDT_VECTORS, %ecx
1:	mov %eax, %edx
	and $0xffff, %edx
	or $(GUEST_SEL_KCODE << 16), %edx
	mov %edx, (%rbx)
	mov %eax, %edx
	and $0xffff0000, %edx
	or $0x8e00, %edx /* present, DPL0, 64-bit interrupt gate */
	mov %edx, 4(%rbx)
	movq $0, 8(%rbx)
	add $16, %rax
	add $16, %rbx
	dec %ecx
	jnz 1b
	movw $(IDT_VECTORS * 16 - 1), PC_IDTR(%rdi)
	lea PC_IDT(%rdi), %rax
	mov %rax, PC_IDTR + 2(%rdi)
	ret

/* A guest that needs CPL0 work (page tables) defines its own. */
	.weak kernel_setup
kernel_setup:
	ret

	.align 16
fault_stubs:
	.set vector, 0
	.rept IDT_VECTORS
	.align 16
	push $vector
	jmp fault_report
	.set vector, vector + 1
	.endr

/* Tells the runner the vector, RIP, error code and CR2, then stops. */
fault_report:
	pop %rax
	xor %ebx, %ebx
	mov $ERRCODE_VECTORS, %ecx
	bt %eax, %ecx
	jnc 1f
	pop %rbx
1:	mov %rax, %rsi
	mov (%rsp), %rax
	mov $GUEST_PORT_FAULT_RIP, %dx
	out %eax, %dx
	mov %ebx, %eax
	mov $GUEST_PORT_FAULT_ERR, %dx
	out %eax, %dx
	mov %cr2, %rax
	mov $GUEST_PORT_FAULT_CR2, %dx
	out %eax, %dx
	shr $32, %rax
	out %eax, %dx
	mov %esi, %eax
	mov $GUEST_PORT_FAULT, %dx
	out %eax, %dx
	jmp park

	.text
/* CPL3: reports the result in eax to the runner, which stops the VM. */
	.globl guest_done
guest_done:
	mov $GUEST_PORT_RESULT, %dx
	out %eax, %dx
1:	pause
	jmp 1b
