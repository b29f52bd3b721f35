#include "console/console.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "devices/serial.h"
#include "util/log.h"
#include "vmm/vm.h"

/* The terminal state to restore, reachable from a crash handler. */
static struct termios console_saved;
static volatile sig_atomic_t console_saved_fd = -1;

static void console_restore_terminal(void)
{
	if (console_saved_fd >= 0)
		tcsetattr(console_saved_fd, TCSAFLUSH, &console_saved);
	console_saved_fd = -1;
}

/* On a crash, give the user their terminal back before dying. */
static void console_crash_handler(int sig)
{
	console_restore_terminal();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void console_install_crash_handlers(void)
{
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = console_crash_handler;
	sa.sa_flags = SA_RESETHAND;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

static int console_make_raw(struct console *con)
{
	struct termios raw;

	if (tcgetattr(con->in_fd, &console_saved) != 0)
		return -errno;
	console_saved_fd = con->in_fd;
	atexit(console_restore_terminal);
	console_install_crash_handlers();
	raw = console_saved;
	cfmakeraw(&raw);
	if (tcsetattr(con->in_fd, TCSAFLUSH, &raw) != 0)
		return -errno;
	con->raw = true;
	return 0;
}

static int console_block_signals(struct console *con)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -EINVAL;
	con->signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
	return con->signal_fd < 0 ? -errno : 0;
}

int console_open(struct console *con, int in_fd, int out_fd)
{
	int ret;

	memset(con, 0, sizeof(*con));
	con->in_fd = in_fd;
	con->out_fd = out_fd;
	con->signal_fd = -1;
	con->wake_fd = eventfd(0, EFD_CLOEXEC);
	con->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (con->wake_fd < 0 || con->ready_fd < 0)
		return -errno;
	if ((ret = console_block_signals(con)) != 0)
		return ret;
	if (isatty(in_fd) && (ret = console_make_raw(con)) != 0)
		return ret;
	return 0;
}

void console_close(struct console *con)
{
	console_detach(con);
	if (con->raw)
		console_restore_terminal();
	con->raw = false;
	if (con->signal_fd >= 0)
		close(con->signal_fd);
	if (con->wake_fd >= 0)
		close(con->wake_fd);
	if (con->ready_fd >= 0)
		close(con->ready_fd);
	con->signal_fd = con->wake_fd = con->ready_fd = -1;
}

void console_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct console *con = opaque;

	while (len > 0) {
		ssize_t n = write(con->out_fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* stdout gone: the guest keeps running, output is dropped */
		buf += n;
		len -= (size_t)n;
	}
}

void console_filter(struct console *con, const uint8_t *in, size_t len, uint8_t *out,
		    size_t *out_len, bool *quit)
{
	size_t n = 0;

	*quit = false;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];

		if (!con->escape_pending) {
			if (c == CONSOLE_ESCAPE)
				con->escape_pending = true;
			else
				out[n++] = c;
			continue;
		}
		con->escape_pending = false;
		if (c == 'x' || c == 'X') {
			*quit = true;
			break;
		}
		/* Ctrl-A a or Ctrl-A Ctrl-A sends one Ctrl-A; anything else passes both. */
		out[n++] = CONSOLE_ESCAPE;
		if (c != 'a' && c != CONSOLE_ESCAPE)
			out[n++] = c;
	}
	*out_len = n;
}

/* Hands what is pending to the UART; the rest waits for its rx-ready wake-up. */
static void console_flush(struct console *con)
{
	size_t n;

	if (con->pending_len == 0)
		return;
	n = serial_receive(con->serial, con->pending, con->pending_len);
	memmove(con->pending, con->pending + n, con->pending_len - n);
	con->pending_len -= n;
}

/* Room for one more read: the escape filter may double what it reads. */
static bool console_has_room(const struct console *con)
{
	return con->in_fd >= 0 && sizeof(con->pending) - con->pending_len >= 2 * CONSOLE_READ;
}

static bool console_handle_input(struct console *con)
{
	uint8_t in[CONSOLE_READ];
	size_t out_len;
	bool quit;
	ssize_t n = read(con->in_fd, in, sizeof(in));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0) {
		con->in_fd = -1; /* end of input: the guest keeps running, as with QEMU */
		return true;
	}
	console_filter(con, in, (size_t)n, con->pending + con->pending_len, &out_len, &quit);
	con->pending_len += out_len;
	if (quit) {
		vm_request_stop(con->vm, VM_QUIT, "stopped with Ctrl-A x");
		return false;
	}
	console_flush(con);
	return true;
}

/* Called by the UART on a vCPU thread when it has room again: must not block. */
static void console_rx_ready(void *opaque)
{
	struct console *con = opaque;
	uint64_t one = 1;

	if (write(con->ready_fd, &one, sizeof(one)) != sizeof(one))
		log_debug("console rx-ready wake-up lost");
}

static void console_handle_signal(struct console *con)
{
	struct signalfd_siginfo info;
	char reason[64];

	if (read(con->signal_fd, &info, sizeof(info)) != sizeof(info))
		return;
	snprintf(reason, sizeof(reason), "stopped by %s", strsignal((int)info.ssi_signo));
	vm_request_stop(con->vm, VM_QUIT, reason);
}

static void *console_thread(void *arg)
{
	struct console *con = arg;

	for (;;) {
		struct pollfd fds[4] = {
			{.fd = con->wake_fd, .events = POLLIN},
			{.fd = con->signal_fd, .events = POLLIN},
			{.fd = con->ready_fd, .events = POLLIN},
			{.fd = console_has_room(con) ? con->in_fd : -1, .events = POLLIN},
		};
		uint64_t count;

		if (poll(fds, 4, -1) < 0 && errno != EINTR)
			break;
		if (fds[0].revents)
			break;
		if (fds[1].revents)
			console_handle_signal(con);
		if (fds[2].revents && read(con->ready_fd, &count, sizeof(count)) > 0)
			console_flush(con);
		if (fds[3].revents && !console_handle_input(con))
			break;
	}
	return NULL;
}

int console_attach(struct console *con, struct vm *vm, struct serial *serial)
{
	int ret;

	con->vm = vm;
	con->serial = serial;
	con->pending_len = 0;
	serial_set_rx_ready(serial, console_rx_ready, con);
	ret = pthread_create(&con->thread, NULL, console_thread, con);
	if (ret != 0)
		return -ret;
	con->running = true;
	return 0;
}

void console_detach(struct console *con)
{
	uint64_t one = 1;

	if (!con->running)
		return;
	if (write(con->wake_fd, &one, sizeof(one)) != sizeof(one))
		log_debug("cannot wake the console thread");
	pthread_join(con->thread, NULL);
	con->running = false;
	/* Consume the wake-up so a reattach (guest reboot) starts clean. */
	if (read(con->wake_fd, &one, sizeof(one)) != sizeof(one))
		log_debug("console wake-up already consumed");
}
