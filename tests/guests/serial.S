/*
 * serial: prints a line on COM1 the way a polling driver does: program the
 * line (8N1, divisor 1, FIFOs on), then for each byte wait for the
 * transmitter holding register to be empty (LSR bit 5) and write it to THR.
 */
#include "arch/x86/layout.h"
#include "guest.h"

#define UART_THR 0 /* transmit holding register (DLAB=0) */
#define UART_DLL 0 /* divisor latch, low byte (DLAB=1) */
#define UART_IER 1
#define UART_DLM 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_THRE 0x20
#define LCR_DLAB 0x80
#define LCR_8N1  0x03

.macro uart_out reg, value
	mov $(PORT_COM1 + \reg), %dx
	mov $\value, %al
	out %al, %dx
.endm

	.text
	.globl user_main
user_main:
	uart_out UART_IER, 0x00 /* no interrupts: we poll */
	uart_out UART_LCR, LCR_DLAB
	uart_out UART_DLL, 0x01 /* 115200 baud */
	uart_out UART_DLM, 0x00
	uart_out UART_LCR, LCR_8N1
	uart_out UART_FCR, 0xc7 /* FIFOs on and cleared */
	uart_out UART_MCR, 0x03 /* DTR, RTS */
	lea message(%rip), %rsi
next:
	movzbl (%rsi), %ecx
	test %ecx, %ecx
	jz done
	mov $(PORT_COM1 + UART_LSR), %dx
wait:
	in %dx, %al
	test $LSR_THRE, %al
	jz wait
	mov $(PORT_COM1 + UART_THR), %dx
	mov %cl, %al
	out %al, %dx
	inc %rsi
	jmp next
done:
	xor %eax, %eax
	jmp guest_done

	.section .rodata
message:
	.asciz "hello from CPL3\n"
