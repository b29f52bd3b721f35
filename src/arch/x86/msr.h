/* Model-specific registers a vCPU starts with. */
#ifndef TABIQUE_ARCH_X86_MSR_H
#define TABIQUE_ARCH_X86_MSR_H

#include <stdint.h>

#define MSR_IA32_TSC            0x00000010
#define MSR_IA32_APICBASE       0x0000001b
#define MSR_IA32_SYSENTER_CS    0x00000174
#define MSR_IA32_SYSENTER_ESP   0x00000175
#define MSR_IA32_SYSENTER_EIP   0x00000176
#define MSR_IA32_MISC_ENABLE    0x000001a0
#define MSR_MTRR_DEF_TYPE       0x000002ff
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102

#define MISC_ENABLE_FAST_STRING 0x1
#define MTRR_ENABLE             0x800
#define MTRR_TYPE_WRBACK        0x6

struct msr_value {
	uint32_t index;
	uint64_t value;
};

/*
 * The boot values: syscall MSRs cleared, fast strings on, MTRRs enabled with
 * write-back as the default type (otherwise the guest maps all RAM uncached).
 * Returns the number of entries written to out (at most max).
 */
unsigned msr_boot_values(struct msr_value *out, unsigned max);

/* Sets the boot MSRs on a vCPU fd. Returns 0 or -errno. */
int msr_setup(int vcpu_fd);

#endif
