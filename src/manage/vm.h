/*
 * A stored VM as the manager's commands see it: its folder, definition and
 * runtime state, and a lock that keeps two tabique commands from changing
 * the same VM at once (the VM itself runs on without it).
 */
#ifndef TABIQUE_MANAGE_VM_H
#define TABIQUE_MANAGE_VM_H

#include <limits.h>
#include <stdbool.h>

#include <jansson.h>

#include "manage/state.h"
#include "manage/store.h"

#define VM_API_SOCKET	  "api.sock"
#define VM_CONSOLE_SOCKET "console.sock"
#define VM_CONSOLE_LOG	  "console.log"
#define VM_VSOCK_SOCKET	  "vsock.sock"

struct managed_vm {
	char home[PATH_MAX];
	char dir[PATH_MAX];
	struct vm_def def;
	struct vm_runtime rt;
	int lock_fd; /* -1 when not locked */
};

/* The state directory, or -errno after one line. */
int managed_home(char *home, size_t len);

/*
 * Finds VM name in the store, loads its definition and probes its state.
 * lock: also takes the VM's lock (without waiting: another command at work is
 * an error). Returns 0, or -errno after one line (unknown VM, bad definition,
 * busy).
 */
int managed_vm_open(const char *name, bool lock, struct managed_vm *vm);
void managed_vm_close(struct managed_vm *vm);

/* A file of the VM's folder: dir/leaf into out (PATH_MAX). */
void managed_vm_file(const struct managed_vm *vm, const char *leaf, char *out);

/* True while the VM's VMM runs (running or paused). */
bool managed_vm_active(const struct managed_vm *vm);

/*
 * One request to the VM's control API. Returns the HTTP status (2xx..5xx)
 * with *reply the JSON body if wanted and any, or -errno after one line.
 */
int managed_vm_api(const struct managed_vm *vm, const char *method, const char *path,
		   json_t **reply);

/* Running or paused, as the VMM says; the recorded state when it cannot tell. */
enum vm_state managed_vm_live_state(const struct managed_vm *vm);

/* Locks a VM folder: flock on dir/lock. Returns the fd or -errno. */
int managed_lock_dir(const char *dir);

#endif
