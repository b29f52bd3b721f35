/*
 * A VM's runtime state: what its monitor (supervise.h) records in
 * state.json, checked against the processes that are really there, so that
 * a VM whose VMM died is never shown as running.
 */
#ifndef TABIQUE_MANAGE_STATE_H
#define TABIQUE_MANAGE_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define VM_STATE_FILE "state.json"

enum vm_state {
	VM_STATE_STOPPED, /* never started, or ended cleanly */
	VM_STATE_RUNNING,
	VM_STATE_PAUSED, /* running, with its vCPUs parked (known from the API only) */
	VM_STATE_CRASHED, /* the guest or the VMM died: see reason */
};

struct vm_runtime {
	enum vm_state state;
	pid_t monitor_pid, vmm_pid;
	uint64_t monitor_ticks, vmm_ticks; /* process start times: pids get reused */
	int64_t started, ended;		   /* seconds since the epoch; 0 = not yet */
	int exit_status;		   /* the VMM's, -1 when it did not exit */
	int exit_signal;		   /* the signal that killed the VMM, 0 for none */
	char reason[256];		   /* why it stopped or crashed; "" while running */
};

const char *vm_state_name(enum vm_state state);

/* Start time of a process in clock ticks since boot (/proc/PID/stat), 0 if it is gone. */
uint64_t process_start_ticks(pid_t pid);

/* True if pid is the very process that started at ticks (not a reused pid, not a zombie). */
bool process_alive(pid_t pid, uint64_t ticks);

/* An empty runtime: stopped, never started. */
void vm_runtime_init(struct vm_runtime *rt);

/* Reads dir/state.json (missing: stopped). Returns 0 or -errno after one line. */
int vm_runtime_load(const char *dir, struct vm_runtime *rt);

/* Writes dir/state.json atomically. Returns 0 or -errno. */
int vm_runtime_save(const char *dir, const struct vm_runtime *rt);

/*
 * Loads the runtime state and checks it against the processes: a VM recorded
 * as running whose monitor and VMM are both gone becomes crashed (saved, and
 * its stale sockets removed). Returns 0 or -errno.
 */
int vm_runtime_probe(const char *dir, struct vm_runtime *rt);

/* Removes the VM's sockets if nothing serves them any more. */
void vm_runtime_clean_sockets(const char *dir);

#endif
