/*
 * The interactive serial console: host stdin feeds the guest's UART, the
 * UART's output goes to host stdout. On a terminal, the terminal is put in raw
 * mode (restored on every way out, crashes included) and Ctrl-A x quits.
 * Host signals (SIGINT, SIGTERM, SIGHUP) stop the VM cleanly.
 */
#ifndef TABIQUE_CONSOLE_CONSOLE_H
#define TABIQUE_CONSOLE_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct serial;

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */
#define CONSOLE_READ   256  /* bytes read from the host at a time */

#define CONSOLE_LOG_MAX (2u << 20) /* bytes of console log before it is rotated to .1 */

struct console {
	int in_fd;
	int out_fd;
	/* Detached (console_open_detached): a socket for one client at a time, and a log. */
	int listen_fd;
	int client_fd;
	int log_fd;
	uint64_t log_bytes;
	char *log_path;
	pthread_mutex_t out_lock; /* client_fd and the log, between vCPU and console threads */
	int signal_fd;
	int wake_fd;  /* eventfd: console_detach() wakes the thread with it */
	int ready_fd; /* eventfd: the UART has room for pending input again */
	bool raw;
	bool escape_pending;
	uint8_t pending[4096]; /* typed but not yet taken by the UART */
	size_t pending_len;
	struct vm *vm;
	struct serial *serial;
	pthread_t thread;
	bool running;
};

/*
 * Takes over in_fd/out_fd: raw mode when in_fd is a terminal. Blocks the
 * stop signals in the calling thread (call before starting any thread so all
 * inherit the mask). Returns 0 or -errno.
 */
int console_open(struct console *con, int in_fd, int out_fd);
/*
 * A VM without a terminal: its console is a Unix socket (listen_fd, from
 * console_listen()) that one client at a time attaches to, and everything
 * the guest prints is appended to log_path as well (rotated to log_path.1
 * past CONSOLE_LOG_MAX). The client does its own escape handling. Returns 0 or
 * -errno after one line.
 */
int console_open_detached(struct console *con, int listen_fd, const char *log_path);

/*
 * Binds and listens on a Unix socket at path (mode 0600). A leftover socket
 * that nobody serves is replaced; a live one is an error (-EADDRINUSE).
 * Returns the socket or -errno after one line.
 */
int console_listen(const char *path, const char *what);

/* Restores the terminal. Safe to call more than once. */
void console_close(struct console *con);

/* Starts forwarding input to serial and signals/escapes to vm. Returns 0 or -errno. */
int console_attach(struct console *con, struct vm *vm, struct serial *serial);
/* Stops forwarding (joins the thread). */
void console_detach(struct console *con);

/* Output callback for the UART (fits struct serial_output). Writes everything or drops on EOF. */
void console_write(void *con, const uint8_t *buf, size_t len);

/* The Ctrl-A commands seen by console_filter(). */
struct console_keys {
	bool quit;	 /* Ctrl-A x */
	bool show_vcpus; /* Ctrl-A r: print where each vCPU is */
};

/*
 * Feeds host input through the escape filter: returns the bytes of in (len)
 * meant for the guest in out (capacity >= 2 * len) as *out_len, and the
 * commands typed in *keys (after Ctrl-A x the rest of in is ignored). Pure.
 */
void console_filter(struct console *con, const uint8_t *in, size_t len, uint8_t *out,
		    size_t *out_len, struct console_keys *keys);

#endif
