/* What the VM does after a vCPU exit has been handled. */
#ifndef TABIQUE_VMM_ACTION_H
#define TABIQUE_VMM_ACTION_H

enum vm_action {
	VM_CONTINUE = 0, /* resume the vCPU */
	VM_POWEROFF,     /* the guest powered itself off */
	VM_REBOOT,       /* the guest asked for a reset */
	VM_CRASH,        /* the guest died: panic, triple fault */
	VM_FATAL,        /* the VMM cannot go on (KVM error) */
	VM_QUIT,         /* the user left with the console escape */
};

#endif
