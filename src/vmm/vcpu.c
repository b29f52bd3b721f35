#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/msr.h"
#include "util/log.h"
#include "vmm/exit.h"
#include "vmm/vm.h"

/* The signal that kicks a vCPU thread out of KVM_RUN; its handler does nothing. */
#define VCPU_KICK_SIGNAL SIGUSR1

static void vcpu_kick_handler(int sig)
{
	(void)sig;
}

static pthread_once_t vcpu_signal_once = PTHREAD_ONCE_INIT;

static void vcpu_install_kick_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = vcpu_kick_handler; /* no SA_RESTART: KVM_RUN must return EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

static int vcpu_setup_cpuid(struct vcpu *vcpu, unsigned ncpus)
{
	static struct cpuid_table supported;
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct cpuid_table table;
	int ret = 0;

	pthread_mutex_lock(&lock);
	if (supported.nent == 0)
		ret = cpuid_get_supported(vcpu->vm->kvm_fd, &supported);
	table = supported;
	pthread_mutex_unlock(&lock);
	if (ret != 0)
		return ret;
	cpuid_shape(&table, vcpu->index, ncpus);
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid_kvm(&table)) < 0)
		return -errno;
	return 0;
}

/* x87 and SSE control words as after a reset; KVM leaves them zero. */
static int vcpu_setup_fpu(struct vcpu *vcpu)
{
	struct kvm_fpu fpu;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return 0;
}

int vcpu_create(struct vcpu *vcpu, struct vm *vm, unsigned index)
{
	int size, ret;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->index = index;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vcpu->fd < 0)
		return -errno;
	size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run))
		return -EINVAL;
	vcpu->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		return -errno;
	}
	vcpu->run_size = (size_t)size;
	if ((ret = vcpu_setup_cpuid(vcpu, vm->ncpus)) != 0 ||
	    (ret = msr_setup(vcpu->fd)) != 0 || (ret = vcpu_setup_fpu(vcpu)) != 0)
		return ret;
	return 0;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run != NULL)
		munmap(vcpu->run, vcpu->run_size);
	if (vcpu->fd > 0 && vcpu->vm != NULL)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

/*
 * After a pause: tell a guest that uses kvmclock it was stopped by the host,
 * so its watchdogs do not report the lost time as soft lockups. Fails (and
 * does not matter) when the guest has not enabled kvmclock.
 */
static void vcpu_resumed(struct vcpu *vcpu)
{
	if (ioctl(vcpu->fd, KVM_KVMCLOCK_CTRL, 0) < 0)
		log_debug("vCPU %u: KVM_KVMCLOCK_CTRL: %s", vcpu->index, strerror(errno));
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	char reason[160];
	sigset_t kick;

	sigemptyset(&kick);
	sigaddset(&kick, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	while (!vm_stop_requested(vcpu->vm)) {
		enum vm_action action;

		if (vm_vcpu_park(vcpu->vm)) {
			vcpu_resumed(vcpu);
			continue; /* a stop may have ended the pause */
		}
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* Kicked: cleared before the loop looks at the flags again. */
				__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_RELAXED);
				continue;
			}
			snprintf(reason, sizeof(reason), "KVM_RUN failed on vCPU %u: %s",
				 vcpu->index, strerror(errno));
			vm_request_stop(vcpu->vm, VM_FATAL, reason);
			break;
		}
		reason[0] = '\0';
		action = exit_dispatch(vcpu, reason, sizeof(reason));
		if (action != VM_CONTINUE) {
			vm_request_stop(vcpu->vm, action, reason);
			break;
		}
	}
	vm_vcpu_exited(vcpu->vm);
	return NULL;
}

int vcpu_start(struct vcpu *vcpu)
{
	int ret;

	pthread_once(&vcpu_signal_once, vcpu_install_kick_handler);
	ret = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	if (ret != 0)
		return -ret;
	vcpu->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *vcpu)
{
	/* immediate_exit covers a kick that lands just before KVM_RUN is entered. */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_RELAXED);
	pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu_stop(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	vcpu_kick(vcpu);
	pthread_join(vcpu->thread, NULL);
	vcpu->started = false;
	vcpu->run->immediate_exit = 0;
}

int vcpu_read_status(struct vcpu *vcpu, struct vcpu_status *out)
{
	memset(out, 0, sizeof(*out));
	if (ioctl(vcpu->fd, KVM_GET_REGS, &out->regs) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_SREGS, &out->sregs) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_MP_STATE, &out->mp) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &out->events) < 0)
		return -errno;
	return 0;
}

static const char *vcpu_state_name(uint32_t mp_state)
{
	switch (mp_state) {
	case KVM_MP_STATE_RUNNABLE:
		return "runnable";
	case KVM_MP_STATE_UNINITIALIZED:
		return "uninitialized";
	case KVM_MP_STATE_INIT_RECEIVED:
		return "init-received";
	case KVM_MP_STATE_HALTED:
		return "halted";
	case KVM_MP_STATE_SIPI_RECEIVED:
		return "sipi-received";
	default:
		return "other";
	}
}

#define VCPU_CR0_PE    0x1ull
#define VCPU_EFER_LMA  0x400ull
#define VCPU_RFLAGS_IF 0x200ull

void vcpu_summarize(const struct vcpu_status *st, unsigned index, struct vcpu_summary *out)
{
	const struct kvm_sregs *sr = &st->sregs;
	bool protected = sr->cr0 & VCPU_CR0_PE;

	*out = (struct vcpu_summary){
	    .index = index,
	    .state = vcpu_state_name(st->mp.mp_state),
	    .mode = !protected ? "real" : (sr->efer & VCPU_EFER_LMA) ? "long" : "protected",
	    .cpl = protected ? sr->cs.selector & 3u : 0, /* CS.RPL is the CPL */
	    .rip = st->regs.rip,
	    .rsp = st->regs.rsp,
	    .rflags = st->regs.rflags,
	    .cr0 = sr->cr0,
	    .cr2 = sr->cr2,
	    .cr3 = sr->cr3,
	    .cr4 = sr->cr4,
	    .efer = sr->efer,
	    .cs = sr->cs.selector,
	    .pending_vector = st->events.interrupt.injected ? st->events.interrupt.nr : -1,
	    .nmi_pending = st->events.nmi.pending || st->events.nmi.injected,
	};
}

int vcpu_summary_line(const struct vcpu_summary *v, char *buf, size_t len)
{
	char pending[32] = "none";

	if (v->pending_vector >= 0)
		snprintf(pending, sizeof(pending), "vector %d", v->pending_vector);
	return snprintf(buf, len,
			"vCPU %u: %s, %s mode, CPL %u, rip 0x%llx rsp 0x%llx rflags 0x%llx (%s), "
			"cr0 0x%llx cr2 0x%llx cr3 0x%llx, pending interrupt %s%s",
			v->index, v->state, v->mode, v->cpl, (unsigned long long)v->rip,
			(unsigned long long)v->rsp, (unsigned long long)v->rflags,
			(v->rflags & VCPU_RFLAGS_IF) ? "interrupts on" : "interrupts off",
			(unsigned long long)v->cr0, (unsigned long long)v->cr2,
			(unsigned long long)v->cr3, pending, v->nmi_pending ? ", NMI pending" : "");
}
