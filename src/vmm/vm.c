#include "vmm/vm.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "vmm/kvm.h"
#include "vmm/vcpu.h"

/* Intel needs these two pages for real-mode emulation; they sit just below the BIOS. */
#define VM_TSS_ADDR         0xfffbd000ULL
#define VM_IDENTITY_MAP     0xfffbc000ULL

static int vm_setup_irqchip(struct vm *vm)
{
	struct kvm_pit_config pit = {.flags = 0};
	uint64_t identity = VM_IDENTITY_MAP;

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)VM_TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0) {
		log_error("KVM refused the TSS/identity-map pages: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		log_error("KVM cannot create the in-kernel interrupt controller: %s",
			  strerror(errno));
		return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		log_error("KVM cannot create the in-kernel PIT: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int vm_setup_memory(struct vm *vm, uint64_t size)
{
	int ret = memory_init(&vm->mem, size);

	if (ret != 0) {
		log_error("cannot allocate %llu MiB of guest memory: %s",
			  (unsigned long long)(size >> 20), strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < vm->mem.count; i++) {
		const struct mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)r->hva,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
			log_error("KVM refused guest memory slot %u: %s", i, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int vm_setup_vcpus(struct vm *vm, unsigned count)
{
	vm->vcpus = calloc(count, sizeof(*vm->vcpus));
	if (vm->vcpus == NULL)
		return -ENOMEM;
	/* Set first: every vCPU's CPUID describes the whole topology. */
	vm->ncpus = count;
	for (unsigned i = 0; i < count; i++) {
		int ret = vcpu_create(&vm->vcpus[i], vm, i);

		if (ret != 0) {
			log_error("cannot create vCPU %u: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* On the monotonic clock: a pause's deadline must not move with the wall clock. */
static void vm_init_pause_cond(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->vm_fd = -1;
	vm->mem.memfd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->stopped, NULL);
	vm_init_pause_cond(&vm->pause_cond);
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	vm->kvm_fd = kvm_open();
	if (vm->kvm_fd < 0)
		return vm->kvm_fd;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		log_error("KVM cannot create a VM: %s", strerror(errno));
		return ret;
	}
	if ((ret = vm_setup_irqchip(vm)) != 0 || (ret = vm_setup_memory(vm, cfg->memory)) != 0 ||
	    (ret = vm_setup_vcpus(vm, cfg->cpus)) != 0)
		return ret;
	return 0;
}

void vm_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->ncpus = 0;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	memory_destroy(&vm->mem);
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
	pthread_cond_destroy(&vm->stopped);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->lock);
	vm->vm_fd = vm->kvm_fd = -1;
}

void vm_request_stop(struct vm *vm, enum vm_action action, const char *reason)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->stop_requested) {
		vm->stop_requested = true;
		vm->stop_action = action;
		snprintf(vm->stop_reason, sizeof(vm->stop_reason), "%s", reason ? reason : "");
		pthread_cond_broadcast(&vm->stopped);
		pthread_cond_broadcast(&vm->pause_cond); /* parked vCPUs leave, pause() returns */
	}
	pthread_mutex_unlock(&vm->lock);
}

bool vm_stop_requested(struct vm *vm)
{
	bool stop;

	pthread_mutex_lock(&vm->lock);
	stop = vm->stop_requested;
	pthread_mutex_unlock(&vm->lock);
	return stop;
}

/* Counted as alive before it runs, so that a pause never misses it. */
static int vm_start_vcpu(struct vm *vm, struct vcpu *vcpu)
{
	int ret;

	pthread_mutex_lock(&vm->lock);
	vm->vcpus_alive++;
	ret = vcpu_start(vcpu);
	if (ret != 0)
		vm->vcpus_alive--;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

enum vm_action vm_run(struct vm *vm)
{
	enum vm_action action;
	unsigned started = 0;

	for (; started < vm->ncpus; started++) {
		if (vm_start_vcpu(vm, &vm->vcpus[started]) != 0) {
			vm_request_stop(vm, VM_FATAL, "cannot start a vCPU thread");
			break;
		}
	}
	pthread_mutex_lock(&vm->lock);
	while (!vm->stop_requested)
		pthread_cond_wait(&vm->stopped, &vm->lock);
	action = vm->stop_action;
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < started; i++)
		vcpu_stop(&vm->vcpus[i]);
	return action;
}

static void vm_kick_all(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].started)
			vcpu_kick(&vm->vcpus[i]);
}

static struct timespec vm_deadline_after(unsigned ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static bool vm_all_parked(const struct vm *vm)
{
	return vm->vcpus_parked >= vm->vcpus_alive || vm->stop_requested;
}

int vm_pause(struct vm *vm, unsigned timeout_ms)
{
	struct timespec deadline = vm_deadline_after(timeout_ms);
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->stop_requested)
		ret = -ESHUTDOWN;
	else if (vm->pause_requested)
		ret = -EALREADY;
	if (ret != 0) {
		pthread_mutex_unlock(&vm->lock);
		return ret;
	}
	/*
	 * The flag before the kicks: a kicked vCPU sees it on its way back. One
	 * kick is enough: immediate_exit stays set until KVM_RUN sees it, so a
	 * vCPU busy in a device parks as soon as it is done.
	 */
	__atomic_store_n(&vm->pause_requested, true, __ATOMIC_RELEASE);
	vm_kick_all(vm);
	while (!vm_all_parked(vm) && ret == 0)
		ret = pthread_cond_timedwait(&vm->pause_cond, &vm->lock, &deadline);
	if (ret == ETIMEDOUT && vm_all_parked(vm))
		ret = 0; /* the last one parked just in time */
	if (ret == ETIMEDOUT) {
		/* Some vCPU never came out: let the parked ones run again, the VM goes on. */
		__atomic_store_n(&vm->pause_requested, false, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&vm->pause_cond);
	}
	pthread_mutex_unlock(&vm->lock);
	return -ret;
}

int vm_resume(struct vm *vm)
{
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	if (!vm->pause_requested)
		ret = -EALREADY;
	__atomic_store_n(&vm->pause_requested, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

bool vm_paused(struct vm *vm)
{
	bool paused;

	pthread_mutex_lock(&vm->lock);
	paused = vm->pause_requested;
	pthread_mutex_unlock(&vm->lock);
	return paused;
}

int vm_read_vcpus(struct vm *vm, struct vcpu_status *out, unsigned timeout_ms)
{
	bool was_paused = vm_paused(vm);
	int ret = 0;

	if (!was_paused && (ret = vm_pause(vm, timeout_ms)) != 0)
		return ret;
	for (unsigned i = 0; i < vm->ncpus && ret == 0; i++)
		ret = vcpu_read_status(&vm->vcpus[i], &out[i]);
	if (!was_paused)
		vm_resume(vm);
	return ret;
}

bool vm_vcpu_park(struct vm *vm)
{
	bool parked = false;

	/* Checked without the lock on every exit: pauses are rare. */
	if (!__atomic_load_n(&vm->pause_requested, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&vm->lock);
	if (vm->pause_requested && !vm->stop_requested) {
		parked = true;
		vm->vcpus_parked++;
		pthread_cond_broadcast(&vm->pause_cond);
		while (vm->pause_requested && !vm->stop_requested)
			pthread_cond_wait(&vm->pause_cond, &vm->lock);
		vm->vcpus_parked--;
	}
	pthread_mutex_unlock(&vm->lock);
	return parked;
}

void vm_vcpu_exited(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_alive--;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->lock);
}

void vm_set_irq(void *opaque, uint32_t gsi, bool level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = {.irq = gsi, .level = level ? 1 : 0};

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_debug("KVM_IRQ_LINE %u failed: %s", gsi, strerror(errno));
}

unsigned vm_max_cpus(int kvm_fd)
{
	int max = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (max <= 0)
		max = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	return max > 0 ? (unsigned)max : 1;
}
