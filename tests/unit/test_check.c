/* The parts of `tabique check` that need no KVM: the verdict and /proc/cpuinfo parsing. */
#include <criterion/criterion.h>

#include "vmm/probe.h"

Test(check, equal_rates_are_hardware_speed)
{
	cr_assert_eq(probe_verdict(1e9, 1e9), PROBE_HARDWARE_SPEED);
}

Test(check, kernel_faster_than_user_is_hardware_speed)
{
	cr_assert_eq(probe_verdict(2e9, 1e9), PROBE_HARDWARE_SPEED);
}

Test(check, ratio_at_the_limit_is_hardware_speed)
{
	cr_assert_eq(probe_verdict(1e9, 1e9 * PROBE_SLOW_RATIO), PROBE_HARDWARE_SPEED);
}

Test(check, ratio_past_the_limit_is_emulated)
{
	cr_assert_eq(probe_verdict(1e9, 1e9 * PROBE_SLOW_RATIO * 1.01), PROBE_KERNEL_EMULATED);
}

Test(check, kvm_pvm_figures_are_emulated)
{
	/* Measured on the build machines: 1.7 M vs 3.0 G iterations/s. */
	cr_assert_eq(probe_verdict(1.7e6, 3.0e9), PROBE_KERNEL_EMULATED);
}

Test(check, no_kernel_progress_is_emulated)
{
	cr_assert_eq(probe_verdict(0, 3.0e9), PROBE_KERNEL_EMULATED);
	cr_assert_eq(probe_verdict(0, 0), PROBE_KERNEL_EMULATED);
}

static const char cpuinfo_amd[] = "processor\t: 0\n"
				  "vendor_id\t: AuthenticAMD\n"
				  "model name\t: AMD EPYC 7B13\n"
				  "flags\t\t: fpu vme sse sse2 svm hypervisor lahf_lm\n"
				  "bugs\t\t: sysret_ss_attrs vmx_like\n"
				  "\n"
				  "processor\t: 1\n"
				  "flags\t\t: fpu vme sse sse2 svm hypervisor lahf_lm\n";

Test(check, finds_whole_flags)
{
	cr_assert(probe_cpuinfo_has_flag(cpuinfo_amd, "svm"));
	cr_assert(probe_cpuinfo_has_flag(cpuinfo_amd, "hypervisor"));
	cr_assert(probe_cpuinfo_has_flag(cpuinfo_amd, "fpu"), "first flag");
	cr_assert(probe_cpuinfo_has_flag(cpuinfo_amd, "lahf_lm"), "last flag");
}

Test(check, flags_match_whole_words_only)
{
	cr_assert_not(probe_cpuinfo_has_flag(cpuinfo_amd, "vmx"));
	cr_assert_not(probe_cpuinfo_has_flag(cpuinfo_amd, "ss"), "prefix of sse");
	cr_assert_not(probe_cpuinfo_has_flag(cpuinfo_amd, "sse3"));
	cr_assert_not(probe_cpuinfo_has_flag(cpuinfo_amd, "vmx_like"), "bugs is not flags");
	cr_assert_not(probe_cpuinfo_has_flag(cpuinfo_amd, ""));
}

Test(check, vmx_flags_line_is_not_the_flags_line)
{
	/* Intel hosts have a "vmx flags" line listing VMX features, not CPU flags. */
	static const char text[] = "vmx flags\t: vnmi ept\n"
				   "flags\t\t: fpu vmx\n";

	cr_assert(probe_cpuinfo_has_flag(text, "vmx"));
	cr_assert_not(probe_cpuinfo_has_flag(text, "ept"));
}

Test(check, no_flags_line)
{
	cr_assert_not(probe_cpuinfo_has_flag("", "vmx"));
	cr_assert_not(probe_cpuinfo_has_flag("processor\t: 0\nflagsy\t: vmx\n", "vmx"));
	cr_assert_not(probe_cpuinfo_has_flag("flags without colon vmx\n", "vmx"));
}

Test(check, last_line_without_newline)
{
	cr_assert(probe_cpuinfo_has_flag("flags\t: fpu vmx", "vmx"));
}
