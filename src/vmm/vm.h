/*
 * A virtual machine: the KVM VM, its RAM, its buses and its vCPU threads.
 * The machine-specific parts (boot loader, tables, devices) are attached by
 * the caller between vm_create() and vm_run().
 */
#ifndef TABIQUE_VMM_VM_H
#define TABIQUE_VMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/bus.h"
#include "vmm/action.h"
#include "vmm/memory.h"

struct vcpu;

struct vm_config {
	uint64_t memory; /* bytes of guest RAM */
	unsigned cpus;
};

struct vm {
	int kvm_fd;
	int vm_fd;
	struct guest_memory mem;
	struct bus pio;
	struct bus mmio;
	struct vcpu *vcpus;
	unsigned ncpus;

	pthread_mutex_t lock; /* guards the fields below */
	pthread_cond_t stopped;
	bool stop_requested;
	enum vm_action stop_action;
	char stop_reason[160];
	/* Pause: vCPU threads park between two KVM_RUNs while pause_requested is set. */
	pthread_cond_t pause_cond; /* parked or alive changed, the pause ended, a stop came */
	bool pause_requested;	   /* also read without the lock, atomically, by vCPU threads */
	unsigned vcpus_alive;	   /* vCPU threads started and not yet out of their loop */
	unsigned vcpus_parked;
};

/*
 * Creates the KVM VM with its in-kernel irqchip and PIT, guest RAM and vCPUs
 * (not yet running). Returns 0 or a negative errno after printing one line
 * that says what failed.
 */
int vm_create(struct vm *vm, const struct vm_config *cfg);
void vm_destroy(struct vm *vm);

/* Starts one thread per vCPU and blocks until the VM stops; returns why. */
enum vm_action vm_run(struct vm *vm);

/*
 * Asks the VM to stop for the given reason (first request wins). Safe from any
 * thread, including vCPU threads and signal-free contexts. reason may be NULL.
 */
void vm_request_stop(struct vm *vm, enum vm_action action, const char *reason);

/* True once a stop was requested. */
bool vm_stop_requested(struct vm *vm);

/*
 * Parks every vCPU out of KVM_RUN and returns once all are parked (device
 * threads go on). Returns 0, -EALREADY when paused already, -ESHUTDOWN when
 * the VM is stopping, or -ETIMEDOUT when some vCPU did not park within
 * timeout_ms (the pause is then undone: the VM runs on). Any thread but a
 * vCPU's.
 */
int vm_pause(struct vm *vm, unsigned timeout_ms);
/* Lets the parked vCPUs run again. Returns 0 or -EALREADY when not paused. */
int vm_resume(struct vm *vm);
bool vm_paused(struct vm *vm);

struct vcpu_status;
/*
 * Reads every vCPU's status into out[0..ncpus-1]: KVM answers only for a vCPU
 * out of KVM_RUN, so a running VM is paused for the read (timeout_ms as for
 * vm_pause) and resumed; a paused one stays paused. Returns 0, a vm_pause()
 * error, or -errno of a failed read.
 */
int vm_read_vcpus(struct vm *vm, struct vcpu_status *out, unsigned timeout_ms);

/*
 * For vCPU threads, between two KVM_RUNs: waits while the VM is paused (a
 * stop ends the wait too). Returns true when it did wait.
 */
bool vm_vcpu_park(struct vm *vm);
/* For vCPU threads: the thread leaves its loop, it no longer counts for a pause. */
void vm_vcpu_exited(struct vm *vm);

/* Drives a GSI of the in-kernel IOAPIC; fits struct irq_line's set(). */
void vm_set_irq(void *vm, uint32_t gsi, bool level);

/* Largest vCPU count this host's KVM allows (KVM_CAP_MAX_VCPUS). */
unsigned vm_max_cpus(int kvm_fd);

#endif
