/*
 * A tiny bzImage for the manager's tests: `tabique run` loads it through the
 * real 64-bit boot protocol, and it does what the tests need of a guest in a
 * few instructions at CPL0 (emulated, so slow, on hosts like the build
 * machines): it prints "tiny guest ready" on COM1, then either halts for good
 * (no CPU used: twenty of them run side by side) or, built with -DECHO,
 * echoes what arrives on COM1 and powers off (ACPI S5) on '!'.
 *
 * The file is the whole image: the setup header at its offsets, then the
 * "protected-mode kernel" one sector later, 64-bit entry 0x200 bytes into it.
 */
#define COM1		0x3f8
#define COM1_LSR	(COM1 + 5)
#define LSR_DATA_READY	0x01
#define ACPI_SLEEP_CTL	0x3c0
#define ACPI_S5		0x34	/* SLP_EN | SLP_TYP 5, as our DSDT's _S5 */

	.code64
	.text
	.globl image_start
image_start:
	.org 0x1f1
	.byte 1				/* setup_sects: one sector of "setup" */
	.word 0
	.long (kernel_end - kernel_start + 15) / 16	/* syssize, in 16-byte units */
	.org 0x1fe
	.word 0xaa55
	.byte 0xeb, 0x6a		/* jump over the header, which runs to 0x26c */
	.ascii "HdrS"
	.word 0x020f			/* boot protocol 2.15 */
	.org 0x211
	.byte 1				/* loadflags: LOADED_HIGH */
	.org 0x214
	.long 0x100000			/* code32_start */
	.org 0x22c
	.long 0x7fffffff		/* initrd_addr_max */
	.long 0x200000			/* kernel_alignment */
	.byte 0				/* not relocatable */
	.org 0x236
	.word 1				/* xloadflags: XLF_KERNEL_64 */
	.long 256			/* cmdline_size */
	.org 0x260
	.long 0x10000			/* init_size */

	.org 0x400
kernel_start:
	hlt				/* startup_32: never used */
	.org kernel_start + 0x200
startup_64:
	cli
	lea ready(%rip), %rsi
	mov $COM1, %dx
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:
#ifdef ECHO
echo:
	mov $COM1_LSR, %dx
	in %dx, %al
	test $LSR_DATA_READY, %al
	jz echo
	mov $COM1, %dx
	in %dx, %al
	out %al, %dx
	cmp $'!', %al
	jne echo
	mov $ACPI_SLEEP_CTL, %dx
	mov $ACPI_S5, %al
	out %al, %dx
#endif
3:	hlt
	jmp 3b

ready:
	.asciz "tiny guest ready\n"
	.balign 16
kernel_end:
