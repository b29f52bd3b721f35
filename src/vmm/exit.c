#include "vmm/exit.h"

#include "util/log.h"

#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/vcpu.h"
#include "vmm/vm.h"

typedef enum vm_action (*exit_handler)(struct vcpu *vcpu, char *reason, size_t len);

static enum vm_action exit_io(struct vcpu *vcpu, char *reason, size_t len)
{
	struct kvm_run *run = vcpu->run;
	uint32_t size = run->io.size, count = run->io.count;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	enum vm_action action = VM_CONTINUE;

	/* KVM fills these, but a bad value must not make us read past the page. */
	if (size == 0 || size > 4 || run->io.data_offset >= vcpu->run_size ||
	    (uint64_t)size * count > vcpu->run_size - run->io.data_offset) {
		snprintf(reason, len, "malformed port I/O exit (size %u, count %u)", size, count);
		return VM_FATAL;
	}
	if (run->io.port != 0x3f8 && run->io.port != 0x3fd)
		log_debug("pio %s port 0x%x size %u count %u first 0x%x",
			  run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.port, size, count,
			  data[0]);
	for (uint32_t i = 0; i < count && action == VM_CONTINUE; i++, data += size) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			action = bus_write(&vcpu->vm->pio, run->io.port, data, size);
		else
			action = bus_read(&vcpu->vm->pio, run->io.port, data, size);
	}
	return action;
}

static enum vm_action exit_mmio(struct vcpu *vcpu, char *reason, size_t len)
{
	struct kvm_run *run = vcpu->run;
	uint32_t size = run->mmio.len;

	if (size == 0 || size > sizeof(run->mmio.data)) {
		snprintf(reason, len, "malformed MMIO exit (length %u)", size);
		return VM_FATAL;
	}
	if (run->mmio.is_write)
		return bus_write(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, size);
	return bus_read(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, size);
}

static enum vm_action exit_shutdown(struct vcpu *vcpu, char *reason, size_t len)
{
	snprintf(reason, len, "the guest triple-faulted on vCPU %u", vcpu->index);
	return VM_CRASH;
}

static enum vm_action exit_system_event(struct vcpu *vcpu, char *reason, size_t len)
{
	switch (vcpu->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		return VM_POWEROFF;
	case KVM_SYSTEM_EVENT_RESET:
		return VM_REBOOT;
	case KVM_SYSTEM_EVENT_CRASH:
		snprintf(reason, len, "the guest reported a crash");
		return VM_CRASH;
	default:
		return VM_CONTINUE;
	}
}

static enum vm_action exit_fail_entry(struct vcpu *vcpu, char *reason, size_t len)
{
	snprintf(reason, len, "KVM could not enter vCPU %u (hardware reason 0x%llx)", vcpu->index,
		 (unsigned long long)vcpu->run->fail_entry.hardware_entry_failure_reason);
	return VM_FATAL;
}

static enum vm_action exit_internal_error(struct vcpu *vcpu, char *reason, size_t len)
{
	snprintf(reason, len, "KVM internal error %u on vCPU %u", vcpu->run->internal.suberror,
		 vcpu->index);
	return VM_FATAL;
}

static enum vm_action exit_ignore(struct vcpu *vcpu, char *reason, size_t len)
{
	(void)vcpu;
	(void)reason;
	(void)len;
	return VM_CONTINUE;
}

static const exit_handler exit_table[] = {
	[KVM_EXIT_IO] = exit_io,
	[KVM_EXIT_MMIO] = exit_mmio,
	[KVM_EXIT_HLT] = exit_ignore,
	[KVM_EXIT_INTR] = exit_ignore,
	[KVM_EXIT_IRQ_WINDOW_OPEN] = exit_ignore,
	[KVM_EXIT_SHUTDOWN] = exit_shutdown,
	[KVM_EXIT_SYSTEM_EVENT] = exit_system_event,
	[KVM_EXIT_FAIL_ENTRY] = exit_fail_entry,
	[KVM_EXIT_INTERNAL_ERROR] = exit_internal_error,
};

enum vm_action exit_dispatch(struct vcpu *vcpu, char *reason, size_t len)
{
	uint32_t why = vcpu->run->exit_reason;
	enum vm_action action;

	if (why >= sizeof(exit_table) / sizeof(exit_table[0]) || exit_table[why] == NULL) {
		snprintf(reason, len, "unexpected KVM exit %u on vCPU %u", why, vcpu->index);
		return VM_FATAL;
	}
	action = exit_table[why](vcpu, reason, len);
	if (action == VM_CRASH && reason[0] == '\0')
		snprintf(reason, len, "the guest kernel panicked");
	return action;
}
