/*
 * One VMM process per VM, each watched by a small monitor process of its own
 * (as podman's conmon): the monitor runs in a new session, detached from the
 * terminal, starts the VMM, waits for it and records how it ended in
 * state.json, so a VM whose VMM was killed shows as crashed with the signal,
 * and its sockets are cleaned up. No daemon: nothing else runs.
 */
#ifndef TABIQUE_MANAGE_SUPERVISE_H
#define TABIQUE_MANAGE_SUPERVISE_H

#include "manage/state.h"

/* Created by `tabique kill` and `stop` before they signal the VMM: the end was asked for. */
#define VM_STOP_MARKER "stop-requested"
#define VM_LOG_FILE    "vmm.log"

/*
 * Starts argv (argv[0]: the tabique binary, then its `run` arguments) as the
 * VM's VMM under a new monitor, both in the VM's folder dir, the VMM's output
 * appended to dir/vmm.log. Returns 0 with *done_fd the read end of a pipe that
 * ends (EOF) when the monitor has recorded the VMM's end, or -errno.
 */
int vm_supervise(const char *dir, char *const argv[], int *done_fd);

/*
 * The reason in a VMM's log: its last non-empty line without the "tabique: "
 * prefix, into out ("" if none).
 */
void vm_log_last_line(const char *dir, char *out, size_t len);

/* How a VMM's wait status maps to the VM's end (used by the monitor; pure). */
void vm_runtime_ended(struct vm_runtime *rt, int wait_status, bool stop_requested,
		      const char *last_log_line);

#endif
