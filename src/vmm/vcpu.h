/* One virtual CPU: its KVM fd, its shared kvm_run page and its thread. */
#ifndef TABIQUE_VMM_VCPU_H
#define TABIQUE_VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>

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

/* KVM's mp_state by name: "runnable", "halted", "uninitialized" (an AP not started) ... */
const char *vcpu_status_state(const struct vcpu_status *st);
/* "real", "protected" or "long". */
const char *vcpu_status_mode(const struct vcpu_status *st);
unsigned vcpu_status_cpl(const struct vcpu_status *st);
/* The vector of an interrupt being delivered, or -1. */
int vcpu_status_pending_vector(const struct vcpu_status *st);

/*
 * One line for a human: "vCPU 0: halted, long mode, CPL 0, rip 0x...". No
 * newline. Returns what snprintf returns.
 */
int vcpu_status_line(const struct vcpu_status *st, unsigned index, char *buf, size_t len);

#endif
