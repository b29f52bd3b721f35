/*
 * tabique start NAME: boots a stored VM in the background, one VMM process
 * under its own monitor (manage/supervise.h), and returns once its control
 * API answers, or with the VMM's own error when it could not start.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "api/client.h"
#include "cli/vm_cli.h"
#include "guest/default_guest.h"
#include "manage/supervise.h"
#include "manage/vm.h"
#include "util/log.h"

#define START_TIMEOUT_MS 60000
#define START_ARGS_MAX	 (24 + 2 * DISK_MAX + 2 * NET_MAX_NICS)

static const char start_usage[] =
	"usage: tabique start NAME\n"
	"\n"
	"Starts a stored VM in the background: its serial console is kept in\n"
	"console.log in the VM's folder and reached with `tabique console NAME`.\n";

/* The argument vector of the VMM; the strings live in buf. */
struct vmm_argv {
	char *argv[START_ARGS_MAX + 1];
	unsigned argc;
	char buf[16 * PATH_MAX + DISK_MAX * (2 * PATH_MAX + 64) + NET_MAX_NICS * VM_NET_SPEC_MAX];
	size_t used;
};

static int argv_add(struct vmm_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int argv_add(struct vmm_argv *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (a->argc == START_ARGS_MAX)
		return -E2BIG;
	va_start(ap, fmt);
	n = vsnprintf(a->buf + a->used, sizeof(a->buf) - a->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(a->buf) - a->used)
		return -E2BIG;
	a->argv[a->argc++] = a->buf + a->used;
	a->argv[a->argc] = NULL;
	a->used += (size_t)n + 1;
	return 0;
}

/* A path in a --disk value: commas are written twice. */
static void escape_commas(const char *path, char *out, size_t len)
{
	size_t j = 0;

	for (size_t i = 0; path[i] && j + 2 < len; i++) {
		out[j++] = path[i];
		if (path[i] == ',')
			out[j++] = ',';
	}
	out[j] = '\0';
}

static int argv_add_disk(struct vmm_argv *a, const struct vm_def_disk *d)
{
	char path[2 * PATH_MAX];

	escape_commas(d->path, path, sizeof(path));
	if (argv_add(a, "--disk") != 0)
		return -E2BIG;
	return argv_add(a, "%s,format=%s%s%s%s", path, d->format, d->readonly ? ",readonly" : "",
			d->serial[0] ? ",serial=" : "", d->serial);
}

static int argv_add_guest(struct vmm_argv *a, const struct vm_def *def,
			  const struct default_guest *guest)
{
	const char *kernel = def->kernel[0] ? def->kernel : guest->kernel;
	const char *initrd = def->kernel[0] ? def->initrd : guest->initrd;
	const char *cmdline = def->cmdline[0] ? def->cmdline : def->kernel[0] ? NULL : guest->cmdline;
	int ret = argv_add(a, "--kernel") | argv_add(a, "%s", kernel);

	if (initrd && initrd[0])
		ret |= argv_add(a, "--initrd") | argv_add(a, "%s", initrd);
	if (cmdline)
		ret |= argv_add(a, "--cmdline") | argv_add(a, "%s", cmdline);
	return ret ? -E2BIG : 0;
}

static int build_argv(const struct managed_vm *vm, const struct default_guest *guest,
		      struct vmm_argv *a)
{
	const struct vm_def *def = &vm->def;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int ret;

	if (n <= 0)
		return -errno;
	self[n] = '\0';
	ret = argv_add(a, "%s", self) | argv_add(a, "run") | argv_add(a, "--name") |
	      argv_add(a, "%s", def->name) | argv_add(a, "--api-socket") |
	      argv_add(a, "%s/%s", vm->dir, VM_API_SOCKET) | argv_add(a, "--console-socket") |
	      argv_add(a, "%s/%s", vm->dir, VM_CONSOLE_SOCKET) | argv_add(a, "--console-log") |
	      argv_add(a, "%s/%s", vm->dir, VM_CONSOLE_LOG) | argv_add(a, "--cpus") |
	      argv_add(a, "%u", def->cpus) | argv_add(a, "--memory") |
	      argv_add(a, "%llu", (unsigned long long)def->memory) | argv_add(a, "--on-reboot") |
	      argv_add(a, "%s", def->restart_on_reboot ? "restart" : "exit") |
	      argv_add_guest(a, def, guest);
	for (unsigned i = 0; i < def->ndisks; i++)
		ret |= argv_add_disk(a, &def->disks[i]);
	for (unsigned i = 0; i < def->nnets; i++)
		ret |= argv_add(a, "--net") | argv_add(a, "%s", def->nets[i]);
	if (def->vsock_cid)
		ret |= argv_add(a, "--vsock") |
		       argv_add(a, "cid=%u,socket=%s/%s", def->vsock_cid, vm->dir, VM_VSOCK_SOCKET);
	return ret ? -E2BIG : 0;
}

/* What the VMM would say last, said first: a disk that is not there. */
static int check_disks(const struct vm_def *def)
{
	for (unsigned i = 0; i < def->ndisks; i++) {
		struct stat st;

		if (stat(def->disks[i].path, &st) != 0) {
			log_error("cannot start '%s': disk %s: %s", def->name, def->disks[i].path,
				  strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* Up: the API answers and the machine is built (its first boot has begun). */
static bool vm_is_up(const char *sock)
{
	char err[256];
	json_t *reply = NULL;
	long status = 0;
	bool up = api_request_timeout(sock, "GET", "/v1/vm", NULL, 1000, &status, &reply, err,
				      sizeof(err)) == 0 &&
		  status == 200 && json_integer_value(json_object_get(reply, "boots")) >= 1;

	json_decref(reply);
	return up;
}

/* Waits for the API socket; the monitor's pipe ends if the VMM ended first. */
static int wait_until_up(struct managed_vm *vm, int done_fd)
{
	char sock[PATH_MAX];

	managed_vm_file(vm, VM_API_SOCKET, sock);
	for (int waited = 0; waited < START_TIMEOUT_MS; waited += 20) {
		struct pollfd p = {.fd = done_fd, .events = POLLIN};

		if (vm_is_up(sock))
			return 0;
		if (poll(&p, 1, 20) > 0) {
			vm_runtime_load(vm->dir, &vm->rt);
			log_error("'%s' did not start: %s", vm->def.name,
				  vm->rt.reason[0] ? vm->rt.reason : "its VMM ended");
			return -EIO;
		}
	}
	log_error("'%s' did not answer within %d s: see %s/%s", vm->def.name,
		  START_TIMEOUT_MS / 1000, vm->dir, VM_LOG_FILE);
	return -ETIMEDOUT;
}

static int start_vm(struct managed_vm *vm)
{
	struct default_guest guest = {0};
	struct vmm_argv *a = calloc(1, sizeof(*a));
	int done_fd = -1, ret;

	if (a == NULL)
		return -ENOMEM;
	ret = check_disks(&vm->def);
	if (ret == 0 && !vm->def.kernel[0])
		ret = default_guest_prepare(&guest);
	if (ret == 0 && (ret = build_argv(vm, &guest, a)) != 0)
		log_error("'%s': its definition makes too long a command line", vm->def.name);
	if (ret == 0 && (ret = vm_supervise(vm->dir, a->argv, &done_fd)) != 0)
		log_error("cannot start the VMM of '%s': %s", vm->def.name, strerror(-ret));
	if (ret == 0)
		ret = wait_until_up(vm, done_fd);
	if (done_fd >= 0)
		close(done_fd);
	free(a);
	return ret;
}

int cmd_start(int argc, char **argv)
{
	struct managed_vm vm;
	const char *name;
	int ret = vm_cli_parse_name_only(argc, argv, &name, start_usage);

	if (ret != 0)
		return ret > 0 ? 0 : EXIT_USAGE;
	if (managed_vm_open(name, true, &vm) != 0) {
		managed_vm_close(&vm);
		return EXIT_ERROR;
	}
	if (managed_vm_active(&vm)) {
		log_error("'%s' is already running (pid %d)", name, (int)vm.rt.vmm_pid);
		managed_vm_close(&vm);
		return EXIT_ERROR;
	}
	ret = start_vm(&vm);
	if (ret == 0) {
		vm_runtime_load(vm.dir, &vm.rt);
		printf("started %s (pid %d)\n", name, (int)vm.rt.vmm_pid);
	}
	managed_vm_close(&vm);
	return ret == 0 ? 0 : EXIT_ERROR;
}
