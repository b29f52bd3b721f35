/* One virtual CPU: its KVM fd, its shared kvm_run page and its thread. */
#ifndef TABIQUE_VMM_VCPU_H
#define TABIQUE_VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
};

/*
 * Creates vCPU index of vm->ncpus with CPUID and MSRs set up for the guest.
 * Returns 0 or -errno; vcpu_destroy() cleans up a half-created vCPU.
 */
int vcpu_create(struct vcpu *vcpu, struct vm *vm, unsigned index);
void vcpu_destroy(struct vcpu *vcpu);

/* Starts the vCPU thread (KVM_RUN loop). Returns 0 or -errno. */
int vcpu_start(struct vcpu *vcpu);
/* Kicks the vCPU out of KVM_RUN and joins its thread. */
void vcpu_stop(struct vcpu *vcpu);
/*
 * Makes the vCPU thread leave KVM_RUN (or not enter it) once, so that it
 * looks at the VM's stop and pause flags: set them before the kick.
 */
void vcpu_kick(struct vcpu *vcpu);

/* Where a vCPU is and what it waits for: "info registers" for a guest that hangs. */
struct vcpu_status {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_mp_state mp;
	struct kvm_vcpu_events events;
};

/*
 * Reads the status of a vCPU that is out of KVM_RUN (parked, or not started:
 * KVM would otherwise wait for the guest to exit). Returns 0 or -errno.
 */
int vcpu_read_status(struct vcpu *vcpu, struct vcpu_status *out);

/* What a person needs of a vcpu_status; the API sends it, the consoles print it. */
struct vcpu_summary {
	unsigned index;
	const char *state; /* KVM's mp_state: "runnable", "halted", "uninitialized" (an AP not started) ... */
	const char *mode;  /* "real", "protected" or "long" */
	unsigned cpl;
	uint64_t rip, rsp, rflags, cr0, cr2, cr3, cr4, efer;
	uint16_t cs;
	int pending_vector; /* an interrupt being delivered, -1 for none */
	bool nmi_pending;
};

void vcpu_summarize(const struct vcpu_status *st, unsigned index, struct vcpu_summary *out);

/*
 * One line for a person: "vCPU 0: halted, long mode, CPL 0, rip 0x...". No
 * newline. Returns what snprintf returns.
 */
int vcpu_summary_line(const struct vcpu_summary *v, char *buf, size_t len);

#endif
