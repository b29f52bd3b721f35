#include "console/console.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "devices/serial.h"
#include "util/log.h"
#include "vmm/vcpu.h"
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
	con->listen_fd = con->client_fd = con->log_fd = -1;
	pthread_mutex_init(&con->out_lock, NULL);
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

static int console_open_log(struct console *con)
{
	struct stat st;

	con->log_fd = open(con->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (con->log_fd < 0)
		return -errno;
	con->log_bytes = fstat(con->log_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

int console_open_detached(struct console *con, int listen_fd, const char *log_path)
{
	int ret = console_open(con, -1, -1);

	con->listen_fd = listen_fd;
	if (ret != 0)
		return ret;
	con->log_path = strdup(log_path);
	if (con->log_path == NULL)
		return -ENOMEM;
	if ((ret = console_open_log(con)) != 0)
		log_error("cannot open the console log %s: %s", log_path, strerror(-ret));
	return ret;
}

/* True if something accepts connections on the socket at path. */
static bool console_socket_live(const struct sockaddr_un *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0;
	close(fd);
	return live;
}

int console_listen(const char *path, const char *what)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd, err;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		log_error("%s %s: path too long for a Unix socket (%zu bytes, at most %zu)", what,
			  path, strlen(path), sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	if (console_socket_live(&addr)) {
		log_error("%s %s is in use by another VMM", what, path);
		return -EADDRINUSE;
	}
	unlink(path); /* a leftover of a VMM that died */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0177);
	err = bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 4) != 0 ? errno : 0;
	umask(old);
	if (err != 0) {
		log_error("cannot listen on %s %s: %s", what, path, strerror(err));
		close(fd);
		return -err;
	}
	return fd;
}

void console_close(struct console *con)
{
	console_detach(con);
	if (con->client_fd >= 0)
		close(con->client_fd);
	if (con->listen_fd >= 0)
		close(con->listen_fd);
	if (con->log_fd >= 0)
		close(con->log_fd);
	con->client_fd = con->listen_fd = con->log_fd = -1;
	free(con->log_path);
	con->log_path = NULL;
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

/* Past CONSOLE_LOG_MAX the log becomes log.1 and a new one starts. */
static void console_log(struct console *con, const uint8_t *buf, size_t len)
{
	if (con->log_bytes + len > CONSOLE_LOG_MAX) {
		char old[PATH_MAX];

		snprintf(old, sizeof(old), "%s.1", con->log_path);
		close(con->log_fd);
		if (rename(con->log_path, old) != 0 || console_open_log(con) != 0) {
			con->log_fd = -1; /* the guest keeps running without a log */
			return;
		}
	}
	if (write(con->log_fd, buf, len) > 0)
		con->log_bytes += len;
}

/* A client that does not keep up loses output rather than stall a vCPU. */
static void console_write_detached(struct console *con, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&con->out_lock);
	if (con->log_fd >= 0)
		console_log(con, buf, len);
	if (con->client_fd >= 0 && send(con->client_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("console client missed %zu bytes: %s", len, strerror(errno));
	pthread_mutex_unlock(&con->out_lock);
}

void console_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct console *con = opaque;

	if (con->listen_fd >= 0) {
		console_write_detached(con, buf, len);
		return;
	}
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
		    size_t *out_len, struct console_keys *keys)
{
	size_t n = 0;

	*keys = (struct console_keys){0};
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
			keys->quit = true;
			break;
		}
		if (c == 'r' || c == 'R') {
			keys->show_vcpus = true;
			continue;
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

#define CONSOLE_VCPUS_TIMEOUT_MS 5000

/* Room for one more read: the escape filter may double what it reads. */
static bool console_has_room(const struct console *con)
{
	return con->in_fd >= 0 && sizeof(con->pending) - con->pending_len >= 2 * CONSOLE_READ;
}

static void console_drop_client(struct console *con)
{
	pthread_mutex_lock(&con->out_lock);
	close(con->client_fd);
	con->client_fd = con->in_fd = -1;
	pthread_mutex_unlock(&con->out_lock);
}

/* One client at a time: a second one is told so and turned away. */
static void console_accept(struct console *con)
{
	static const char busy[] = "tabique: this console is in use by another client\r\n";
	int fd = accept4(con->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (con->client_fd >= 0) {
		if (send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			log_debug("cannot tell a second console client it is busy");
		close(fd);
		return;
	}
	pthread_mutex_lock(&con->out_lock);
	con->client_fd = con->in_fd = fd;
	pthread_mutex_unlock(&con->out_lock);
}

/* Ctrl-A r: one line per vCPU on the terminal, for a guest that seems to hang. */
static void console_show_vcpus(struct console *con)
{
	unsigned ncpus = con->vm->ncpus;
	struct vcpu_status *st = calloc(ncpus, sizeof(*st));
	struct vcpu_summary v;
	char text[448], line[512];
	int ret = st == NULL ? -ENOMEM : vm_read_vcpus(con->vm, st, CONSOLE_VCPUS_TIMEOUT_MS);

	if (ret != 0)
		snprintf(text, sizeof(text), "tabique: cannot read the vCPUs: %s",
			 ret == -ETIMEDOUT ? "a vCPU did not stop within 5 s" : strerror(-ret));
	for (unsigned i = 0; i < (ret == 0 ? ncpus : 1); i++) {
		if (ret == 0) {
			vcpu_summarize(&st[i], i, &v);
			vcpu_summary_line(&v, text, sizeof(text));
		}
		/* The guest may be in the middle of a line: start a new one. */
		snprintf(line, sizeof(line), "%s%s\r\n", i == 0 ? "\r\n" : "", text);
		console_write(con, (const uint8_t *)line, strlen(line));
	}
	free(st);
}

static bool console_handle_input(struct console *con)
{
	uint8_t in[CONSOLE_READ];
	size_t out_len;
	struct console_keys keys;
	ssize_t n = read(con->in_fd, in, sizeof(in));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0 && con->listen_fd >= 0) {
		console_drop_client(con);
		return true;
	}
	if (n <= 0) {
		con->in_fd = -1; /* end of input: the guest keeps running, as with QEMU */
		return true;
	}
	if (con->listen_fd >= 0) {
		/* A client (tabique console) handles Ctrl-A x itself: it detaches. */
		memcpy(con->pending + con->pending_len, in, (size_t)n);
		con->pending_len += (size_t)n;
		console_flush(con);
		return true;
	}
	console_filter(con, in, (size_t)n, con->pending + con->pending_len, &out_len, &keys);
	con->pending_len += out_len;
	if (keys.show_vcpus)
		console_show_vcpus(con);
	if (keys.quit) {
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
		struct pollfd fds[5] = {
			{.fd = con->wake_fd, .events = POLLIN},
			{.fd = con->signal_fd, .events = POLLIN},
			{.fd = con->ready_fd, .events = POLLIN},
			{.fd = console_has_room(con) ? con->in_fd : -1, .events = POLLIN},
			{.fd = con->listen_fd, .events = POLLIN},
		};
		uint64_t count;

		if (poll(fds, 5, -1) < 0 && errno != EINTR)
			break;
		if (fds[0].revents)
			break;
		if (fds[1].revents)
			console_handle_signal(con);
		if (fds[2].revents && read(con->ready_fd, &count, sizeof(count)) > 0)
			console_flush(con);
		if (fds[3].revents && !console_handle_input(con))
			break;
		if (fds[4].revents)
			console_accept(con);
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
