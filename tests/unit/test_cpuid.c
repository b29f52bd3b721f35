#include <criterion/criterion.h>

#include "arch/x86/cpuid.h"

static void add(struct cpuid_table *t, unsigned fn, unsigned idx, unsigned flags)
{
	struct kvm_cpuid_entry2 *e = &t->entries[t->nent++];

	e->function = fn;
	e->index = idx;
	e->flags = flags;
	e->eax = 0x11111111;
	e->ebx = 0x22222222;
	e->ecx = 0x00000001;
	e->edx = 0x00000000;
}

static void table(struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	add(t, 0, 0, 0);
	add(t, 1, 0, 0);
	add(t, 0xb, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
	add(t, 0xb, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
	add(t, 0x40000000, 0, 0);
}

Test(cpuid, hypervisor_bit_and_apic_id)
{
	struct cpuid_table t;
	struct kvm_cpuid_entry2 *e;

	table(&t);
	cpuid_shape(&t, 3, 4);
	e = cpuid_find(&t, 1, 0);
	cr_assert(e->ecx & (1U << 31), "hypervisor bit");
	cr_assert_eq(e->ebx >> 24, 3, "initial APIC id is the vCPU index");
	cr_assert_eq((e->ebx >> 16) & 0xff, 4, "logical processor count");
	cr_assert_eq(e->ebx & 0xffff, 0x2222, "brand/clflush bits kept");
	cr_assert(e->edx & (1U << 28), "HTT set with several vCPUs");
}

Test(cpuid, kvm_signature)
{
	struct cpuid_table t;
	struct kvm_cpuid_entry2 *e;
	char sig[13] = {0};

	table(&t);
	cpuid_shape(&t, 0, 1);
	e = cpuid_find(&t, 0x40000000, 0);
	memcpy(sig, &e->ebx, 4);
	memcpy(sig + 4, &e->ecx, 4);
	memcpy(sig + 8, &e->edx, 4);
	cr_assert_str_eq(sig, "KVMKVMKVM");
	cr_assert(e->eax >= 0x40000001);
}

Test(cpuid, x2apic_topology)
{
	struct cpuid_table t;
	struct kvm_cpuid_entry2 *smt, *core;

	table(&t);
	cpuid_shape(&t, 5, 6);
	smt = cpuid_find(&t, 0xb, 0);
	core = cpuid_find(&t, 0xb, 1);
	cr_assert_eq(smt->edx, 5);
	cr_assert_eq(smt->ebx, 1);
	cr_assert_eq(core->ebx, 6);
	cr_assert_eq(core->eax, 3, "6 cores need a 3-bit shift");
	cr_assert_eq((core->ecx >> 8) & 0xff, 2, "level type core");
	cr_assert_null(cpuid_find(&t, 0xb, 7));
}

Test(cpuid, one_cpu_has_no_htt)
{
	struct cpuid_table t;

	table(&t);
	cpuid_shape(&t, 0, 1);
	cr_assert_eq(cpuid_find(&t, 1, 0)->edx & (1U << 28), 0);
}
