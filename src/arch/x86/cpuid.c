#include "arch/x86/cpuid.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_1_ECX_HYPERVISOR (1U << 31)
#define CPUID_1_EDX_HTT        (1U << 28)
#define KVM_CPUID_SIGNATURE    0x40000000U

int cpuid_get_supported(int kvm_fd, struct cpuid_table *table)
{
	memset(table, 0, sizeof(*table));
	table->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid_kvm(table)) < 0)
		return -errno;
	return 0;
}

struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *table, unsigned function, unsigned index)
{
	for (unsigned i = 0; i < table->nent && i < CPUID_MAX_ENTRIES; i++) {
		struct kvm_cpuid_entry2 *e = &table->entries[i];

		if (e->function != function)
			continue;
		if (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index)
			return e;
	}
	return NULL;
}

/* Leaf 1: hypervisor present, logical processor count and initial APIC id. */
static void cpuid_shape_leaf1(struct kvm_cpuid_entry2 *e, unsigned index, unsigned ncpus)
{
	unsigned count = ncpus > 255 ? 255 : ncpus;

	e->ecx |= CPUID_1_ECX_HYPERVISOR;
	e->ebx = (e->ebx & 0x0000ffffU) | (count << 16) | (index << 24);
	if (ncpus > 1)
		e->edx |= CPUID_1_EDX_HTT;
}

/* Leaves 0xb and 0x1f: x2APIC topology, every vCPU a core of one package. */
static void cpuid_shape_topology(struct kvm_cpuid_entry2 *e, unsigned index, unsigned ncpus)
{
	unsigned shift = 0;

	while ((1U << shift) < ncpus)
		shift++;
	e->edx = index;
	switch (e->index) {
	case 0: /* SMT level: one thread per core */
		e->eax = 0;
		e->ebx = 1;
		e->ecx = (1U << 8) | e->index;
		break;
	case 1: /* core level */
		e->eax = shift;
		e->ebx = ncpus;
		e->ecx = (2U << 8) | e->index;
		break;
	default:
		e->eax = e->ebx = 0;
		e->ecx = e->index;
		break;
	}
}

/* Leaf 4: deterministic cache parameters, cores per package. */
static void cpuid_shape_cache(struct kvm_cpuid_entry2 *e, unsigned ncpus)
{
	unsigned cores = ncpus > 64 ? 64 : ncpus;

	e->eax = (e->eax & 0x03ffffffU) | ((cores - 1) << 26);
	/* Each cache is private to a core: one thread shares it. */
	e->eax &= ~(0xfffU << 14);
}

static void cpuid_shape_kvm(struct kvm_cpuid_entry2 *e)
{
	/* "KVMKVMKVM\0\0\0": Linux then looks for kvmclock and the PV features. */
	e->ebx = 0x4b4d564b;
	e->ecx = 0x564b4d56;
	e->edx = 0x0000004d;
	if (e->eax < KVM_CPUID_SIGNATURE + 1)
		e->eax = KVM_CPUID_SIGNATURE + 1;
}

void cpuid_shape(struct cpuid_table *table, unsigned index, unsigned ncpus)
{
	for (unsigned i = 0; i < table->nent && i < CPUID_MAX_ENTRIES; i++) {
		struct kvm_cpuid_entry2 *e = &table->entries[i];

		switch (e->function) {
		case 1:
			cpuid_shape_leaf1(e, index, ncpus);
			break;
		case 4:
			if ((e->eax & 0x1f) != 0)
				cpuid_shape_cache(e, ncpus);
			break;
		case 0xb:
		case 0x1f:
			cpuid_shape_topology(e, index, ncpus);
			break;
		case KVM_CPUID_SIGNATURE:
			cpuid_shape_kvm(e);
			break;
		default:
			break;
		}
	}
}
