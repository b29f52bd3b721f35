#include "arch/x86/msr.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

static const struct msr_value msr_boot_table[] = {
	{MSR_IA32_SYSENTER_CS, 0},
	{MSR_IA32_SYSENTER_ESP, 0},
	{MSR_IA32_SYSENTER_EIP, 0},
	{MSR_STAR, 0},
	{MSR_CSTAR, 0},
	{MSR_KERNEL_GS_BASE, 0},
	{MSR_SYSCALL_MASK, 0},
	{MSR_LSTAR, 0},
	{MSR_IA32_TSC, 0},
	{MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
	{MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRBACK},
};

#define MSR_BOOT_COUNT (sizeof(msr_boot_table) / sizeof(msr_boot_table[0]))

unsigned msr_boot_values(struct msr_value *out, unsigned max)
{
	unsigned n = MSR_BOOT_COUNT < max ? MSR_BOOT_COUNT : max;

	memcpy(out, msr_boot_table, n * sizeof(*out));
	return n;
}

int msr_setup(int vcpu_fd)
{
	/* struct kvm_msrs's layout, with room for the entries. */
	struct {
		uint32_t nmsrs;
		uint32_t pad;
		struct kvm_msr_entry entries[MSR_BOOT_COUNT];
	} msrs;
	int ret;

	memset(&msrs, 0, sizeof(msrs));
	msrs.nmsrs = MSR_BOOT_COUNT;
	for (unsigned i = 0; i < MSR_BOOT_COUNT; i++) {
		msrs.entries[i].index = msr_boot_table[i].index;
		msrs.entries[i].data = msr_boot_table[i].value;
	}
	/* KVM_SET_MSRS returns how many it set; fewer means one was refused. */
	ret = ioctl(vcpu_fd, KVM_SET_MSRS, (struct kvm_msrs *)(void *)&msrs);
	if (ret < 0)
		return -errno;
	return ret == (int)MSR_BOOT_COUNT ? 0 : -EINVAL;
}
