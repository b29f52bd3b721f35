/* The host's /dev/kvm. */
#ifndef TABIQUE_VMM_KVM_H
#define TABIQUE_VMM_KVM_H

/*
 * Opens /dev/kvm and checks the API version. Returns the fd, or a negative
 * errno after printing one line that says what to do (load the module, join
 * the kvm group ...).
 */
int kvm_open(void);

/* Like kvm_open() but silent: for `tabique check`, which explains by itself. */
int kvm_open_quiet(void);

#define KVM_DEVICE_PATH "/dev/kvm"
#define KVM_EXPECTED_API 12

#endif
