/*
 * tabique rm NAME [--force]: removes a VM from the store with its folder and
 * the disks made for it. Images the user gave with --disk stay. A VM whose
 * disks are the base of another VM's linked clone stays until that one goes.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/vm_cli.h"
#include "manage/vm.h"
#include "util/log.h"

static const char rm_usage[] =
	"usage: tabique rm NAME [--force]\n"
	"\n"
	"Removes a stopped VM: its definition, console log and the disks made for it\n"
	"(--new-disk, clones); images given with --disk are left alone. --force stops\n"
	"a running VM first (as tabique kill).\n";

static int rm_take(int opt, const char *arg, void *force)
{
	(void)arg;
	*(bool *)force = opt == 'f';
	return 0;
}

static int rm_parse(int argc, char **argv, const char **name, bool *force)
{
	static const struct option longopts[] = {{"force", no_argument, NULL, 'f'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};

	*force = false;
	return vm_cli_parse(argc, argv, ":fh", longopts, rm_usage, rm_take, force, name);
}

/* Another VM whose disk has one of this VM's disks as its backing file (a linked clone). */
static int find_dependent(const struct managed_vm *vm, char *dependent, size_t len)
{
	char **names;
	int n = store_list(vm->home, &names), found = 0;

	for (int i = 0; i < n && !found; i++) {
		struct managed_vm other;

		if (strcmp(names[i], vm->def.name) == 0)
			continue;
		if (managed_vm_open(names[i], false, &other) == 0 &&
		    vm_cli_disks_use_folder(&other.def, vm->dir)) {
			snprintf(dependent, len, "%s", names[i]);
			found = 1;
		}
		managed_vm_close(&other);
	}
	if (n > 0)
		store_free_list(names, n);
	return found;
}

static int kill_for_rm(struct managed_vm *vm)
{
	char marker[PATH_MAX];
	FILE *f;

	managed_vm_file(vm, "stop-requested", marker);
	if ((f = fopen(marker, "we")) != NULL)
		fclose(f);
	if (process_alive(vm->rt.vmm_pid, vm->rt.vmm_ticks))
		kill(vm->rt.vmm_pid, SIGKILL);
	for (int i = 0; i < 500; i++) {
		if (!process_alive(vm->rt.vmm_pid, vm->rt.vmm_ticks) &&
		    !process_alive(vm->rt.monitor_pid, vm->rt.monitor_ticks))
			return 0;
		usleep(20000);
	}
	log_error("the VMM of '%s' (pid %d) did not go away", vm->def.name, (int)vm->rt.vmm_pid);
	return -ETIMEDOUT;
}

int cmd_rm(int argc, char **argv)
{
	struct managed_vm vm;
	char dependent[VM_NAME_MAX + 1];
	const char *name;
	bool force;
	int ret = rm_parse(argc, argv, &name, &force), status = EXIT_ERROR;

	if (ret != 0)
		return ret > 0 ? 0 : EXIT_USAGE;
	if (managed_vm_open(name, true, &vm) != 0 && vm.lock_fd < 0)
		goto out; /* a damaged definition can still be removed: only the lock matters */
	if (managed_vm_active(&vm) && !force) {
		log_error("'%s' is running: stop it first, or use rm --force", name);
		goto out;
	}
	if (find_dependent(&vm, dependent, sizeof(dependent))) {
		log_error("'%s' is a linked clone of '%s': remove it first", dependent, name);
		goto out;
	}
	if (managed_vm_active(&vm) && kill_for_rm(&vm) != 0)
		goto out;
	if (vm_cli_remove_dir(vm.dir) != 0) {
		log_error("cannot remove %s: %s", vm.dir, strerror(errno));
		goto out;
	}
	printf("removed %s\n", name);
	status = 0;
out:
	managed_vm_close(&vm);
	return status;
}
