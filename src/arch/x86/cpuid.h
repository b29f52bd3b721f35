/* The CPUID a guest sees: what KVM supports, shaped for a VM. */
#ifndef TABIQUE_ARCH_X86_CPUID_H
#define TABIQUE_ARCH_X86_CPUID_H

#include <linux/kvm.h>
#include <stdint.h>

#define CPUID_MAX_ENTRIES 256

/* struct kvm_cpuid2's layout, with room for the entries (no variable-size member). */
struct cpuid_table {
	uint32_t nent;
	uint32_t padding;
	struct kvm_cpuid_entry2 entries[CPUID_MAX_ENTRIES];
};

/* The table as the KVM ioctls take it. */
static inline struct kvm_cpuid2 *cpuid_kvm(struct cpuid_table *table)
{
	return (struct kvm_cpuid2 *)(void *)table;
}

/* Reads KVM_GET_SUPPORTED_CPUID into table. Returns 0 or -errno. */
int cpuid_get_supported(int kvm_fd, struct cpuid_table *table);

/*
 * Shapes a copy of the supported table for vCPU index of ncpus: the
 * hypervisor bit, the vCPU's APIC id, a topology of ncpus cores in one
 * package, KVM's paravirtual signature. Pure function of its inputs.
 */
void cpuid_shape(struct cpuid_table *table, unsigned index, unsigned ncpus);

/* The entry for (function, index), or NULL. */
struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *table, unsigned function, unsigned index);

#endif
