#include "manage/state.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "manage/store.h"
#include "util/log.h"

static const char *const state_names[] = {
	[VM_STATE_STOPPED] = "stopped",
	[VM_STATE_RUNNING] = "running",
	[VM_STATE_PAUSED] = "paused",
	[VM_STATE_CRASHED] = "crashed",
};

const char *vm_state_name(enum vm_state state)
{
	return (unsigned)state < sizeof(state_names) / sizeof(state_names[0]) ? state_names[state]
									      : "unknown";
}

/* Field 22 of /proc/PID/stat; the command name (field 2) may hold spaces and ')'. */
static uint64_t parse_start_ticks(const char *stat, char *proc_state)
{
	const char *p = strrchr(stat, ')');
	unsigned long long ticks;
	char st;

	if (p == NULL || sscanf(p + 1,
				" %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
				"%*d %*d %*d %llu",
				&st, &ticks) != 2)
		return 0;
	*proc_state = st;
	return ticks;
}

static uint64_t read_start_ticks(pid_t pid, char *proc_state)
{
	char path[64], buf[1024];
	size_t n;
	FILE *f;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return parse_start_ticks(buf, proc_state);
}

uint64_t process_start_ticks(pid_t pid)
{
	char st;

	return read_start_ticks(pid, &st);
}

bool process_alive(pid_t pid, uint64_t ticks)
{
	char st = 0;
	uint64_t now = read_start_ticks(pid, &st);

	return now != 0 && now == ticks && st != 'Z' && st != 'X';
}

void vm_runtime_init(struct vm_runtime *rt)
{
	memset(rt, 0, sizeof(*rt));
	rt->state = VM_STATE_STOPPED;
	rt->exit_status = -1;
}

static enum vm_state state_from_name(const char *name)
{
	for (unsigned i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
		if (strcmp(state_names[i], name) == 0)
			return (enum vm_state)i;
	return VM_STATE_CRASHED;
}

int vm_runtime_load(const char *dir, struct vm_runtime *rt)
{
	char path[PATH_MAX];
	const char *state = "stopped", *reason = "";
	json_int_t mpid = 0, vpid = 0, mt = 0, vt = 0, started = 0, ended = 0, status = -1, sig = 0;
	json_error_t jerr;
	json_t *root;

	vm_runtime_init(rt);
	if (store_vm_file(dir, VM_STATE_FILE, path, sizeof(path)) != 0)
		return -ENAMETOOLONG;
	if (access(path, F_OK) != 0)
		return 0;
	root = json_load_file(path, 0, &jerr);
	if (root == NULL || json_unpack_ex(root, &jerr, 0,
					   "{s:s, s?I, s?I, s?I, s?I, s?I, s?I, s?I, s?I, s?s}",
					   "state", &state, "monitor_pid", &mpid, "monitor_ticks", &mt,
					   "vmm_pid", &vpid, "vmm_ticks", &vt, "started", &started,
					   "ended", &ended, "exit_status", &status, "exit_signal", &sig,
					   "reason", &reason) != 0) {
		json_decref(root);
		/* Only monitors write it: damage means one died while writing. */
		rt->state = VM_STATE_CRASHED;
		snprintf(rt->reason, sizeof(rt->reason), "%.120s is damaged: %.120s", VM_STATE_FILE,
			 jerr.text);
		return 0;
	}
	rt->state = state_from_name(state);
	rt->monitor_pid = (pid_t)mpid;
	rt->vmm_pid = (pid_t)vpid;
	rt->monitor_ticks = (uint64_t)mt;
	rt->vmm_ticks = (uint64_t)vt;
	rt->started = started;
	rt->ended = ended;
	rt->exit_status = (int)status;
	rt->exit_signal = (int)sig;
	snprintf(rt->reason, sizeof(rt->reason), "%s", reason);
	json_decref(root);
	return 0;
}

int vm_runtime_save(const char *dir, const struct vm_runtime *rt)
{
	json_t *root = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:s}", "state",
				 vm_state_name(rt->state), "monitor_pid", (json_int_t)rt->monitor_pid,
				 "monitor_ticks", (json_int_t)rt->monitor_ticks, "vmm_pid",
				 (json_int_t)rt->vmm_pid, "vmm_ticks", (json_int_t)rt->vmm_ticks,
				 "started", (json_int_t)rt->started, "ended", (json_int_t)rt->ended,
				 "exit_status", rt->exit_status, "exit_signal", rt->exit_signal,
				 "reason", rt->reason);
	int ret;

	if (root == NULL)
		return -ENOMEM;
	ret = store_write_json(dir, VM_STATE_FILE, root);
	json_decref(root);
	return ret;
}

void vm_runtime_clean_sockets(const char *dir)
{
	static const char *const sockets[] = {"api.sock", "console.sock", "vsock.sock"};
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(sockets) / sizeof(sockets[0]); i++)
		if (store_vm_file(dir, sockets[i], path, sizeof(path)) == 0)
			unlink(path);
}

int vm_runtime_probe(const char *dir, struct vm_runtime *rt)
{
	int ret = vm_runtime_load(dir, rt);

	if (ret != 0 || rt->state != VM_STATE_RUNNING)
		return ret;
	if (process_alive(rt->monitor_pid, rt->monitor_ticks) ||
	    process_alive(rt->vmm_pid, rt->vmm_ticks))
		return 0;
	/* Both gone without a last word: the monitor was killed too (kill -9 of the group). */
	rt->state = VM_STATE_CRASHED;
	rt->ended = (int64_t)time(NULL);
	snprintf(rt->reason, sizeof(rt->reason), "the VMM and its monitor disappeared");
	vm_runtime_clean_sockets(dir);
	ret = vm_runtime_save(dir, rt);
	if (ret != 0)
		log_warn("cannot record that %s crashed: %s", dir, strerror(-ret));
	return 0;
}
