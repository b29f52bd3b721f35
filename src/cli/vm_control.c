/*
 * tabique stop, kill, pause and resume: a running VM's lifecycle, through
 * its control API (docs/api.md); only `kill` and the last step of a stop
 * that the guest ignores go around it, with a signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/vm_cli.h"
#include "manage/supervise.h"
#include "manage/vm.h"
#include "util/log.h"
#include "util/size.h"

#define STOP_DEFAULT_TIMEOUT 60
#define HARD_STOP_WAIT_MS    10000

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits up to ms for the VMM and then its monitor to be gone; true if they are. */
static bool wait_ended(struct managed_vm *vm, uint64_t ms)
{
	uint64_t deadline = now_ms() + ms;

	while (process_alive(vm->rt.vmm_pid, vm->rt.vmm_ticks) ||
	       process_alive(vm->rt.monitor_pid, vm->rt.monitor_ticks)) {
		if (now_ms() >= deadline)
			return false;
		usleep(20000);
	}
	vm_runtime_probe(vm->dir, &vm->rt);
	return true;
}

/* The end is asked for: the monitor records it as stopped, not crashed. */
static void mark_stop_requested(const struct managed_vm *vm)
{
	char path[PATH_MAX];
	int fd;

	managed_vm_file(vm, VM_STOP_MARKER, path);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

static int kill_vmm(struct managed_vm *vm)
{
	mark_stop_requested(vm);
	if (process_alive(vm->rt.vmm_pid, vm->rt.vmm_ticks) && kill(vm->rt.vmm_pid, SIGKILL) != 0) {
		log_error("cannot kill the VMM of '%s' (pid %d): %s", vm->def.name,
			  (int)vm->rt.vmm_pid, strerror(errno));
		return -errno;
	}
	if (!wait_ended(vm, HARD_STOP_WAIT_MS)) {
		log_error("the VMM of '%s' (pid %d) did not go away", vm->def.name,
			  (int)vm->rt.vmm_pid);
		return -ETIMEDOUT;
	}
	return 0;
}

/* Poweroff through the API (the VMM exits 5), a SIGKILL if that does not work. */
static int hard_stop(struct managed_vm *vm)
{
	if (managed_vm_api(vm, "PUT", "/v1/vm/poweroff", NULL) == 202 &&
	    wait_ended(vm, HARD_STOP_WAIT_MS))
		return 0;
	return kill_vmm(vm);
}

/* Opens a VM that must be running (or paused); prints why not otherwise. */
static int open_active(const char *name, struct managed_vm *vm)
{
	if (managed_vm_open(name, true, vm) != 0)
		return -EINVAL;
	if (!managed_vm_active(vm)) {
		log_error("'%s' is not running (%s)", name, vm_state_name(vm->rt.state));
		return -ESRCH;
	}
	return 0;
}

/* --- stop ------------------------------------------------------------------- */

static const char stop_usage[] =
	"usage: tabique stop NAME [--timeout SECONDS]\n"
	"\n"
	"Presses the VM's ACPI power button and waits for the guest to power off;\n"
	"after --timeout seconds (default 60; 0: at once) it is stopped hard.\n";

static int stop_take(int opt, const char *arg, void *timeout)
{
	(void)opt;
	if (uint_parse(arg, 0, 86400, timeout) != 0) {
		log_error("--timeout '%s': give seconds from 0 to 86400", arg);
		return -EINVAL;
	}
	return 0;
}

static int stop_parse(int argc, char **argv, const char **name, unsigned long *timeout)
{
	static const struct option longopts[] = {{"timeout", required_argument, NULL, 't'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};

	*timeout = STOP_DEFAULT_TIMEOUT;
	return vm_cli_parse(argc, argv, ":h", longopts, stop_usage, stop_take, timeout, name);
}

static int graceful_stop(struct managed_vm *vm, unsigned long timeout)
{
	if (timeout == 0)
		return -ETIMEDOUT;
	/* A paused guest cannot see its power button. */
	if (managed_vm_live_state(vm) == VM_STATE_PAUSED)
		managed_vm_api(vm, "PUT", "/v1/vm/resume", NULL);
	if (managed_vm_api(vm, "PUT", "/v1/vm/shutdown", NULL) != 202)
		return -EIO;
	if (wait_ended(vm, (uint64_t)timeout * 1000))
		return 0;
	log_warn("'%s' did not power off within %lu s: stopping it hard", vm->def.name, timeout);
	return -ETIMEDOUT;
}

int cmd_stop(int argc, char **argv)
{
	struct managed_vm vm;
	unsigned long timeout;
	const char *name;
	int ret = stop_parse(argc, argv, &name, &timeout);

	if (ret != 0)
		return ret > 0 ? 0 : EXIT_USAGE;
	if (open_active(name, &vm) != 0) {
		managed_vm_close(&vm);
		return EXIT_ERROR;
	}
	ret = graceful_stop(&vm, timeout);
	if (ret != 0)
		ret = hard_stop(&vm);
	if (ret == 0)
		printf("stopped %s: %s\n", name, vm.rt.reason);
	managed_vm_close(&vm);
	return ret == 0 ? 0 : EXIT_ERROR;
}

/* --- kill, pause, resume ------------------------------------------------------ */

int cmd_kill(int argc, char **argv)
{
	struct managed_vm vm;
	const char *name;
	int ret = vm_cli_parse_name_only(argc, argv, &name,
					 "usage: tabique kill NAME\n\n"
					 "Stops the VM at once (SIGKILL to its VMM), as pulling the plug.\n");

	if (ret != 0)
		return ret > 0 ? 0 : EXIT_USAGE;
	if (open_active(name, &vm) != 0) {
		managed_vm_close(&vm);
		return EXIT_ERROR;
	}
	ret = kill_vmm(&vm);
	if (ret == 0)
		printf("killed %s\n", name);
	managed_vm_close(&vm);
	return ret == 0 ? 0 : EXIT_ERROR;
}

static int pause_or_resume(int argc, char **argv, const char *verb, const char *done)
{
	char path[32], usage[160];
	struct managed_vm vm;
	json_t *reply = NULL;
	const char *name;
	int ret, status;

	snprintf(usage, sizeof(usage), "usage: tabique %s NAME\n\n%s\n", verb,
		 strcmp(verb, "pause") == 0 ? "Stops the VM's vCPUs; its memory and devices stay."
					    : "Lets a paused VM's vCPUs run again.");
	ret = vm_cli_parse_name_only(argc, argv, &name, usage);
	if (ret != 0)
		return ret > 0 ? 0 : EXIT_USAGE;
	ret = EXIT_ERROR;
	if (open_active(name, &vm) != 0)
		goto out;
	snprintf(path, sizeof(path), "/v1/vm/%s", verb);
	status = managed_vm_api(&vm, "PUT", path, &reply);
	if (status == 204) {
		printf("%s %s\n", done, name);
		ret = 0;
	} else if (status > 0) {
		const char *why = json_string_value(json_object_get(reply, "error"));

		log_error("cannot %s '%s': %s", verb, name, why ? why : "the VMM refused");
	}
out:
	json_decref(reply);
	managed_vm_close(&vm);
	return ret;
}

int cmd_pause(int argc, char **argv)
{
	return pause_or_resume(argc, argv, "pause", "paused");
}

int cmd_resume(int argc, char **argv)
{
	return pause_or_resume(argc, argv, "resume", "resumed");
}
