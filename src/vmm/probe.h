/*
 * What this host's KVM can do, measured rather than assumed. Nested KVM
 * without hardware support (e.g. kvm_pvm) runs guest user code natively but
 * emulates guest kernel code; only running code tells the two apart.
 */
#ifndef TABIQUE_VMM_PROBE_H
#define TABIQUE_VMM_PROBE_H

#include <stdbool.h>
#include <stdint.h>

/* Guest kernel code slower than user code by more than this is emulated. */
#define PROBE_SLOW_RATIO 5.0

/* How long each half of the speed probe runs, in milliseconds. */
#define PROBE_BUDGET_MS 300

struct probe_rate {
	uint64_t iterations; /* loop iterations counted */
	double seconds;	     /* guest time they took */
	double per_second;   /* iterations / seconds; 0 when nothing was counted */
};

struct probe_result {
	struct probe_rate kernel; /* the loop at CPL0, 64-bit mode */
	struct probe_rate user;	  /* the same loop at CPL3 */
	double ratio;		  /* user / kernel; 0 when the kernel rate is 0 */
};

enum probe_verdict {
	PROBE_HARDWARE_SPEED,  /* guest kernel code runs within PROBE_SLOW_RATIO of user code */
	PROBE_KERNEL_EMULATED, /* guest kernel code is emulated: real kernels crawl */
};

/*
 * Runs a tiny guest in a throwaway VM on kvm_fd (an open /dev/kvm): the same
 * counted loop at CPL0 and then at CPL3, each for about PROBE_BUDGET_MS, and
 * fills out. The caller's thread runs the vCPU; a timer signal (SIGALRM, its
 * previous action restored) bounds a guest that stops answering. Returns 0 or
 * a negative errno after printing one line that says what failed.
 */
int probe_guest_speed(int kvm_fd, struct probe_result *out);

/* The verdict for two measured rates (iterations per second). */
enum probe_verdict probe_verdict(double kernel_per_second, double user_per_second);

/*
 * Whether the first "flags" line of a /proc/cpuinfo text lists flag as a
 * whole word. Returns false when there is no flags line.
 */
bool probe_cpuinfo_has_flag(const char *cpuinfo, const char *flag);

#endif
