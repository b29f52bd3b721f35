/* The VM store: names, vm.json round trips and refusals, how a VMM's end is recorded. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/commands.h"
#include "manage/state.h"
#include "manage/store.h"
#include "manage/supervise.h"

static char dir[] = "/tmp/tabique-store-XXXXXX";

static void make_dir(void)
{
	cr_redirect_stderr();
	strcpy(dir, "/tmp/tabique-store-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static void write_def(const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/vm.json", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(store, names)
{
	char why[160];

	cr_assert_eq(store_check_name("web-1.prod_2", why, sizeof(why)), 0);
	cr_assert_eq(store_check_name("9lives", why, sizeof(why)), 0);
	cr_assert_eq(store_check_name("", why, sizeof(why)), -EINVAL);
	cr_assert_eq(store_check_name("..", why, sizeof(why)), -EINVAL);
	cr_assert_eq(store_check_name("-x", why, sizeof(why)), -EINVAL);
	cr_assert_eq(store_check_name("a/b", why, sizeof(why)), -EINVAL);
	cr_assert_eq(store_check_name("caf\xc3\xa9", why, sizeof(why)), -EINVAL);
	cr_assert_eq(store_check_name("0123456789012345678901234567890123456789012345678", why,
				      sizeof(why)),
		     -EINVAL);
}

Test(store, home_follows_the_environment)
{
	char home[PATH_MAX];

	setenv("TABIQUE_HOME", "/srv/tq", 1);
	cr_assert_eq(store_home(home, sizeof(home)), 0);
	cr_assert_str_eq(home, "/srv/tq");
	unsetenv("TABIQUE_HOME");
	if (geteuid() == 0) {
		cr_assert_eq(store_home(home, sizeof(home)), 0);
		cr_assert_str_eq(home, "/var/lib/tabique");
	}
}

Test(store, definition_round_trip, .init = make_dir, .fini = remove_dir)
{
	struct vm_def def, back;

	vm_def_init(&def, "web");
	def.cpus = 4;
	def.memory = 3ull << 30;
	snprintf(def.kernel, sizeof(def.kernel), "/boot/vmlinuz");
	snprintf(def.cmdline, sizeof(def.cmdline), "console=ttyS0 root=/dev/vda");
	def.ndisks = 1;
	snprintf(def.disks[0].path, PATH_MAX, "/srv/a,b.qcow2");
	snprintf(def.disks[0].format, 8, "qcow2");
	snprintf(def.disks[0].serial, sizeof(def.disks[0].serial), "DATA1");
	snprintf(def.disks[0].base, PATH_MAX, "/srv/base.img");
	def.disks[0].owned = true;
	def.nnets = 1;
	snprintf(def.nets[0], VM_NET_SPEC_MAX, "user,hostfwd=tcp::8080-:80,mac=52:54:00:01:02:03");
	def.vsock_cid = 7;
	def.restart_on_reboot = false;
	cr_assert_eq(vm_def_save(dir, &def), 0);
	cr_assert_eq(vm_def_load(dir, &back), 0);
	cr_assert_eq(memcmp(&def, &back, sizeof(def)), 0);
}

static void expect_refused(const char *json)
{
	struct vm_def def;

	write_def(json);
	cr_assert_lt(vm_def_load(dir, &def), 0, "accepted %s", json);
}

Test(store, damaged_definitions_are_refused, .init = make_dir, .fini = remove_dir)
{
	static const char *const bad[] = {
		"",
		"{",
		"[]",
		"{\"version\": 1, \"name\": \"web\", \"cpus\": 1, \"memory\": 536870912,,}",
		"{\"version\": 2, \"name\": \"web\", \"cpus\": 1, \"memory\": 536870912}",
		"{\"version\": 1, \"name\": \"../x\", \"cpus\": 1, \"memory\": 536870912}",
		"{\"version\": 1, \"name\": \"web\", \"cpus\": 0, \"memory\": 536870912}",
		"{\"version\": 1, \"name\": \"web\", \"cpus\": \"2\", \"memory\": 536870912}",
		"{\"version\": 1, \"name\": \"web\", \"cpus\": 1, \"memory\": 1000}",
		"{\"version\": 1, \"name\": \"web\", \"cpus\": 1, \"memory\": 536870912, \"cpu\": 2}",
		"{\"version\": 1, \"name\": \"web\", \"cpus\": 1, \"memory\": 536870912, "
		"\"disks\": [{\"path\": \"relative.img\"}]}",
		"{\"version\": 1, \"name\": \"web\", \"cpus\": 1, \"memory\": 536870912, "
		"\"disks\": [{\"path\": \"/a.img\", \"format\": \"vmdk\"}]}",
		"{\"version\": 1, \"name\": \"web\", \"cpus\": 1, \"memory\": 536870912, "
		"\"nets\": [\"bogus\"]}",
		"{\"version\": 1, \"name\": \"web\", \"cpus\": 1, \"memory\": 536870912, "
		"\"on_reboot\": \"maybe\"}",
		"{\"version\": 1, \"name\": \"web\", \"cpus\": 1, \"memory\": 536870912, "
		"\"name\": \"twice\"}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_refused(bad[i]);
}

Test(store, list_is_sorted_and_skips_strangers, .init = make_dir, .fini = remove_dir)
{
	char path[PATH_MAX], **names;
	int n;

	snprintf(path, sizeof(path), "%s/vms", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	for (const char *const *v = (const char *const[]){"zeta", "alpha", ".tmp", NULL}; *v; v++) {
		snprintf(path, sizeof(path), "%s/vms/%s", dir, *v);
		cr_assert_eq(mkdir(path, 0700), 0);
	}
	n = store_list(dir, &names);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(names[0], "alpha");
	cr_assert_str_eq(names[1], "zeta");
	store_free_list(names, n);
}

Test(store, how_a_vmm_ended)
{
	struct vm_runtime rt;

	vm_runtime_init(&rt);
	vm_runtime_ended(&rt, W_EXITCODE(EXIT_GUEST_POWEROFF, 0), false, "");
	cr_assert_eq(rt.state, VM_STATE_STOPPED);
	cr_assert_str_eq(rt.reason, "the guest powered off");
	vm_runtime_ended(&rt, W_EXITCODE(EXIT_GUEST_CRASH, 0), false, "kernel panic: oops");
	cr_assert_eq(rt.state, VM_STATE_CRASHED);
	cr_assert_str_eq(rt.reason, "kernel panic: oops");
	vm_runtime_ended(&rt, W_EXITCODE(0, SIGKILL), false, "");
	cr_assert_eq(rt.state, VM_STATE_CRASHED);
	cr_assert_str_eq(rt.reason, "the VMM was killed by signal 9 (SIGKILL)");
	vm_runtime_ended(&rt, W_EXITCODE(0, SIGKILL), true, "");
	cr_assert_eq(rt.state, VM_STATE_STOPPED);
	vm_runtime_ended(&rt, W_EXITCODE(EXIT_STOPPED, 0), false, "");
	cr_assert_eq(rt.state, VM_STATE_STOPPED);
}

Test(store, a_recorded_vm_whose_processes_are_gone_is_crashed, .init = make_dir,
     .fini = remove_dir)
{
	struct vm_runtime rt;
	pid_t child = fork();

	if (child == 0)
		_exit(0);
	cr_assert_gt(child, 0);
	vm_runtime_init(&rt);
	rt.state = VM_STATE_RUNNING;
	rt.vmm_pid = rt.monitor_pid = child;
	rt.vmm_ticks = rt.monitor_ticks = process_start_ticks(child);
	waitpid(child, NULL, 0);
	cr_assert_eq(vm_runtime_save(dir, &rt), 0);
	cr_assert_eq(vm_runtime_probe(dir, &rt), 0);
	cr_assert_eq(rt.state, VM_STATE_CRASHED);
	cr_assert_eq(vm_runtime_load(dir, &rt), 0);
	cr_assert_eq(rt.state, VM_STATE_CRASHED, "the crash was recorded");
	cr_assert(!process_alive(getpid(), 1), "a pid with another start time is not alive");
	cr_assert(process_alive(getpid(), process_start_ticks(getpid())));
}
