/*
 * smp: every vCPU reports its index (RSI) on GUEST_PORT_CPU, then takes a
 * ticket from a shared counter with lock xadd. Each vCPU reports before it
 * takes its ticket, so the one that draws the last ticket knows that all
 * have reported, and tells the runner; the others spin at CPL3 until the VM
 * stops.
 */
#include "guest.h"

	.text
	.globl user_main
user_main:
	mov $GUEST_PORT_CPU, %dx
	mov %esi, %eax
	out %eax, %dx
	mov $1, %eax
	lock xadd %eax, GUEST_SHARED
	inc %eax
	cmp GUEST_PARAMS + PARAM_NCPUS, %eax
	jne spin
	xor %eax, %eax
	jmp guest_done
spin:
	pause
	jmp spin
