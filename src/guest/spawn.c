#include "guest/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The environment with LC_ALL=C first: the output we parse (apt-cache's
 * "Depends:") and quote in errors must not be translated. */
static char **spawn_env(void)
{
	size_t n = 0, j = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	env[j++] = "LC_ALL=C";
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LC_ALL=", 7) != 0)
			env[j++] = environ[i];
	return env;
}

/* Reads the pipe to its end, keeping the tail of the output in out. */
static void spawn_collect(int fd, char *out, size_t outlen)
{
	size_t used = 0, room = outlen - 1;
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && room > 0; i++) {
			if (used == room) { /* drop the older half */
				size_t drop = (room + 1) / 2;

				memmove(out, out + drop, room - drop);
				used = room - drop;
			}
			out[used++] = buf[i];
		}
	}
	out[used] = '\0';
}

static int spawn_actions(posix_spawn_file_actions_t *fa, const char *cwd, int outfd)
{
	int err = posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);

	if (!err && outfd >= 0)
		err = posix_spawn_file_actions_adddup2(fa, outfd, 1);
	else if (!err)
		err = posix_spawn_file_actions_addopen(fa, 1, "/dev/null", O_WRONLY, 0);
	if (!err)
		err = posix_spawn_file_actions_adddup2(fa, 1, 2);
	if (!err && cwd)
		err = posix_spawn_file_actions_addchdir_np(fa, cwd);
	return -err;
}

static int spawn_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return -EINTR;
}

int spawn_run(const char *const argv[], const char *cwd, char *out, size_t outlen)
{
	posix_spawn_file_actions_t fa;
	int pfd[2] = {-1, -1};
	char **env = spawn_env();
	pid_t pid;
	int err;

	if (!env)
		return -ENOMEM;
	if (out && outlen > 0 && pipe2(pfd, O_CLOEXEC) < 0) {
		free(env);
		return -errno;
	}
	posix_spawn_file_actions_init(&fa);
	err = spawn_actions(&fa, cwd, pfd[1]);
	if (!err)
		err = -posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (!err && pfd[0] >= 0)
		spawn_collect(pfd[0], out, outlen);
	else if (out && outlen > 0)
		out[0] = '\0';
	if (pfd[0] >= 0)
		close(pfd[0]);
	return err ? err : spawn_wait(pid);
}
