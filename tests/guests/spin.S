/*
 * spin: every vCPU counts up its own qword at GUEST_SHARED + 8 * index, at
 * CPL3, until the VM stops. It never exits on its own: only a kick takes it
 * out of KVM_RUN, which is what pausing must do. The runner pauses and
 * resumes the VM and checks that every count stands still while paused and
 * moves again after.
 */
#include "guest.h"

	.text
	.globl user_main
user_main:
	lea GUEST_SHARED(, %rsi, 8), %rdi
1:	incq (%rdi)
	jmp 1b
