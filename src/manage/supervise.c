#include "manage/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "manage/store.h"

/* The monitor keeps the write end of the caller's pipe here, and nothing else. */
#define MONITOR_DONE_FD 3

void vm_log_last_line(const char *dir, char *out, size_t len)
{
	char path[PATH_MAX], buf[4096];
	ssize_t n = 0;
	int fd;

	out[0] = '\0';
	if (store_vm_file(dir, VM_LOG_FILE, path, sizeof(path)) != 0)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	if (size > 0)
		n = pread(fd, buf, sizeof(buf) - 1, size > (off_t)sizeof(buf) - 1
							  ? size - (off_t)sizeof(buf) + 1
							  : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	char *line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	if (strncmp(line, "tabique: ", 9) == 0)
		line += 9;
	snprintf(out, len, "%s", line);
}

void vm_runtime_ended(struct vm_runtime *rt, int wait_status, bool stop_requested,
		      const char *last_log_line)
{
	rt->ended = (int64_t)time(NULL);
	rt->state = VM_STATE_CRASHED;
	if (WIFSIGNALED(wait_status)) {
		int sig = WTERMSIG(wait_status);

		rt->exit_signal = sig;
		if (stop_requested) {
			rt->state = VM_STATE_STOPPED;
			snprintf(rt->reason, sizeof(rt->reason), "killed from the host (%s)",
				 sigabbrev_np(sig) ? sigabbrev_np(sig) : "signal");
		} else {
			snprintf(rt->reason, sizeof(rt->reason),
				 "the VMM was killed by signal %d (SIG%s)", sig,
				 sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
		}
		return;
	}
	rt->exit_status = WEXITSTATUS(wait_status);
	switch (rt->exit_status) {
	case EXIT_GUEST_POWEROFF:
		rt->state = VM_STATE_STOPPED;
		snprintf(rt->reason, sizeof(rt->reason), "the guest powered off");
		return;
	case EXIT_GUEST_REBOOT:
		rt->state = VM_STATE_STOPPED;
		snprintf(rt->reason, sizeof(rt->reason), "the guest rebooted (on_reboot is exit)");
		return;
	case EXIT_STOPPED:
		rt->state = VM_STATE_STOPPED;
		snprintf(rt->reason, sizeof(rt->reason), "stopped from the host");
		return;
	default:
		snprintf(rt->reason, sizeof(rt->reason), "%s",
			 last_log_line[0] ? last_log_line : "the VMM failed without a word");
	}
}

static int open_log(const char *dir)
{
	char path[PATH_MAX];

	if (store_vm_file(dir, VM_LOG_FILE, path, sizeof(path)) != 0)
		return -1;
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* In the VMM child: stdin from /dev/null, stdout and stderr to the log, default signals. */
static void exec_vmm(int log_fd, char *const argv[])
{
	int null_fd = open("/dev/null", O_RDONLY);

	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
	    dup2(log_fd, STDERR_FILENO) < 0)
		_exit(127);
	if (null_fd > STDERR_FILENO)
		close(null_fd);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	execv(argv[0], argv);
	dprintf(STDERR_FILENO, "tabique: cannot start the VMM %s: %s\n", argv[0],
		strerror(errno));
	_exit(127);
}

static bool take_stop_marker(const char *dir)
{
	char path[PATH_MAX];

	if (store_vm_file(dir, VM_STOP_MARKER, path, sizeof(path)) != 0)
		return false;
	return unlink(path) == 0;
}

static int wait_child(pid_t pid)
{
	int status = 0;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 0;
	return status;
}

/* The monitor: starts the VMM, records it, waits, records its end. Never returns. */
static void monitor_main(const char *dir, char *const argv[])
{
	struct vm_runtime rt;
	char last[256];
	int log_fd = open_log(dir);
	pid_t vmm;

	prctl(PR_SET_NAME, "tabique-mon");
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (log_fd < 0)
		_exit(1);
	take_stop_marker(dir);
	vm_runtime_init(&rt);
	rt.state = VM_STATE_RUNNING;
	rt.monitor_pid = getpid();
	rt.monitor_ticks = process_start_ticks(rt.monitor_pid);
	rt.started = (int64_t)time(NULL);
	vmm = fork();
	if (vmm == 0)
		exec_vmm(log_fd, argv);
	rt.vmm_pid = vmm;
	rt.vmm_ticks = vmm > 0 ? process_start_ticks(vmm) : 0;
	if (vmm < 0 || vm_runtime_save(dir, &rt) != 0) {
		if (vmm > 0)
			kill(vmm, SIGKILL);
		_exit(1);
	}
	int status = wait_child(vmm);
	vm_log_last_line(dir, last, sizeof(last));
	vm_runtime_ended(&rt, status, take_stop_marker(dir), last);
	vm_runtime_clean_sockets(dir);
	vm_runtime_save(dir, &rt);
	_exit(0);
}

/* Leaves the monitor with stdio on /dev/null, the pipe on fd 3, nothing else open. */
static void monitor_detach(int done_fd)
{
	int null_fd;

	if (setsid() < 0 || dup2(done_fd, MONITOR_DONE_FD) < 0)
		_exit(1);
	close_range(MONITOR_DONE_FD + 1, ~0u, 0);
	null_fd = open("/dev/null", O_RDWR);
	if (null_fd < 0)
		_exit(1);
	dup2(null_fd, STDIN_FILENO);
	dup2(null_fd, STDOUT_FILENO);
	dup2(null_fd, STDERR_FILENO);
	if (null_fd > MONITOR_DONE_FD)
		close(null_fd);
	fcntl(MONITOR_DONE_FD, F_SETFD, FD_CLOEXEC); /* the VMM does not keep it */
}

int vm_supervise(const char *dir, char *const argv[], int *done_fd)
{
	int pipe_fds[2];
	pid_t pid;

	if (pipe2(pipe_fds, O_CLOEXEC) != 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int err = errno;

		close(pipe_fds[0]);
		close(pipe_fds[1]);
		return -err;
	}
	if (pid == 0) {
		/* A grandchild: the monitor must not be the caller's child, or it would be a zombie
		 * of a shell's `tabique start` until that exits. */
		if (fork() != 0)
			_exit(0);
		monitor_detach(pipe_fds[1]);
		monitor_main(dir, argv);
	}
	close(pipe_fds[1]);
	wait_child(pid);
	*done_fd = pipe_fds[0];
	return 0;
}
