/*
 * tabique console NAME: attaches this terminal to a running VM's serial
 * console (its console.sock); Ctrl-A x detaches and leaves the VM running.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/vm_cli.h"
#include "api/client.h"
#include "console/console.h"
#include "manage/vm.h"
#include "util/log.h"
#include "vmm/vcpu.h"

/* After the end of a non-terminal input: how long output may still arrive. */
#define CONSOLE_LINGER_MS 500

static const char console_usage[] =
	"usage: tabique console NAME\n"
	"\n"
	"Attaches this terminal to a running VM's serial console; Ctrl-A x detaches\n"
	"(the VM keeps running), Ctrl-A a sends a Ctrl-A, Ctrl-A r shows where each\n"
	"vCPU is. One client at a time.\n"
	"Everything the guest printed is also in console.log in the VM's folder.\n";

static struct termios saved_tty;
static bool tty_raw;

static void restore_tty(void)
{
	if (tty_raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	tty_raw = false;
}

static void restore_and_die(int sig)
{
	restore_tty();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void make_raw(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty) != 0)
		return;
	raw = saved_tty;
	cfmakeraw(&raw);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0)
		return;
	tty_raw = true;
	atexit(restore_tty);
	signal(SIGTERM, restore_and_die);
	signal(SIGHUP, restore_and_die);
}

static int connect_console(const struct managed_vm *vm)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char path[PATH_MAX];
	int fd;

	managed_vm_file(vm, VM_CONSOLE_SOCKET, path);
	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static bool write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static const char *api_error_text(const json_t *reply)
{
	const char *e = json_string_value(json_object_get(reply, "error"));

	return e != NULL ? e : "an unexpected answer from the VMM";
}

static void print_line(const char *text)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "%s\r\n", text);

	write_all(STDOUT_FILENO, (const uint8_t *)line, n > 0 ? strlen(line) : 0);
}

/* Ctrl-A r: where each vCPU is, from the VMM's API (GET /v1/vm/vcpus), a line each. */
static void show_vcpus(const struct managed_vm *vm)
{
	json_t *reply = NULL, *list, *entry;
	int status = managed_vm_api(vm, "GET", "/v1/vm/vcpus", &reply);
	char text[448];
	size_t i;

	print_line(""); /* the guest may be in the middle of a line */
	list = json_object_get(reply, "vcpus");
	if (status != 200 || !json_is_array(list)) {
		snprintf(text, sizeof(text), "tabique: cannot read the vCPUs: %s",
			 status < 0 ? "no answer from the VMM"
				    : api_error_text(reply));
		print_line(text);
	}
	json_array_foreach(list, i, entry)
	{
		struct vcpu_summary v;

		if (api_vcpu_parse(entry, &v) == 0)
			vcpu_summary_line(&v, text, sizeof(text));
		else
			snprintf(text, sizeof(text), "vCPU entry %zu: not understood", i);
		print_line(text);
	}
	json_decref(reply);
}

/* Typed input through the escape filter to the VM; false once Ctrl-A x is typed. */
static bool forward_input(const struct managed_vm *vm, struct console *filter, int sock,
			  bool *input_open)
{
	uint8_t in[CONSOLE_READ], out[2 * CONSOLE_READ];
	size_t out_len;
	struct console_keys keys;
	ssize_t n = read(STDIN_FILENO, in, sizeof(in));

	if (n <= 0) {
		*input_open = false;
		return true;
	}
	console_filter(filter, in, (size_t)n, out, &out_len, &keys);
	write_all(sock, out, out_len);
	if (keys.show_vcpus)
		show_vcpus(vm);
	return !keys.quit;
}

/* Returns 0 when detached, 1 when the VM went away. */
static int relay(const struct managed_vm *vm, int sock)
{
	struct console filter = {0};
	bool input_open = true;

	for (;;) {
		struct pollfd fds[2] = {{.fd = input_open ? STDIN_FILENO : -1, .events = POLLIN},
					{.fd = sock, .events = POLLIN}};
		uint8_t buf[4096];
		int ready = poll(fds, 2, input_open ? -1 : CONSOLE_LINGER_MS);

		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0)
			return 0; /* input ended and the guest went quiet */
		if (fds[1].revents) {
			ssize_t n = read(sock, buf, sizeof(buf));

			if (n <= 0)
				return 1;
			write_all(STDOUT_FILENO, buf, (size_t)n);
		}
		if (fds[0].revents && !forward_input(vm, &filter, sock, &input_open))
			return 0;
	}
}

int cmd_console(int argc, char **argv)
{
	struct managed_vm vm;
	const char *name;
	int ret = vm_cli_parse_name_only(argc, argv, &name, console_usage), fd;

	if (ret != 0)
		return ret > 0 ? 0 : EXIT_USAGE;
	ret = managed_vm_open(name, false, &vm);
	managed_vm_close(&vm);
	if (ret != 0)
		return EXIT_ERROR;
	if (!managed_vm_active(&vm)) {
		log_error("'%s' is not running (%s)", name, vm_state_name(vm.rt.state));
		return EXIT_ERROR;
	}
	fd = connect_console(&vm);
	if (fd < 0) {
		log_error("cannot reach the console of '%s': %s", name, strerror(-fd));
		return EXIT_ERROR;
	}
	/* Raw first: what is typed from now on goes to the guest, never echoed by the tty. */
	make_raw();
	fprintf(stderr, "tabique: attached to %s's console; Ctrl-A x detaches\r\n", name);
	ret = relay(&vm, fd);
	restore_tty();
	close(fd);
	fprintf(stderr, ret == 0 ? "\ntabique: detached from %s\n" : "\ntabique: %s stopped\n",
		name);
	return 0;
}
