/* Dispatch of KVM exits to the buses, through a bounds-checked table. */
#ifndef TABIQUE_VMM_EXIT_H
#define TABIQUE_VMM_EXIT_H

#include <stddef.h>

#include "vmm/action.h"

struct vcpu;

/*
 * Handles the exit the vCPU's kvm_run page describes. Returns what the VM
 * does next; for anything but VM_CONTINUE, reason (of size len) says why in
 * one line.
 */
enum vm_action exit_dispatch(struct vcpu *vcpu, char *reason, size_t len);

#endif
