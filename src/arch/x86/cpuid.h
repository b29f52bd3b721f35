/* The CPUID a guest sees: what KVM supports, shaped for a VM. */
#ifndef TABIQUE_ARCH_X86_CPUID_H
#define TABIQUE_ARCH_X86_CPUID_H

#include <linux/kvm.h>

#define CPUID_MAX_ENTRIES 256

struct cpuid_table {
	struct kvm_cpuid2 head;
	struct kvm_cpuid_entry2 entries[CPUID_MAX_ENTRIES];
};

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
