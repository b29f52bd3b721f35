/* Runs helper programs (apt-get, dpkg-deb, gzip) without a shell. */
#ifndef TABIQUE_GUEST_SPAWN_H
#define TABIQUE_GUEST_SPAWN_H

#include <stddef.h>

/* Runs argv[0] (looked up in PATH) with argv (NULL-terminated) in directory cwd
 * (NULL: the current one), stdin from /dev/null. Its stdout and stderr together
 * go into out as a NUL-terminated string that keeps the last outlen-1 bytes
 * (errors come last), or to /dev/null when out is NULL. Returns the exit status
 * (0-255), -ENOENT if the program is not installed, -EINTR if a signal killed
 * it, or another negative errno if it could not be started. */
int spawn_run(const char *const argv[], const char *cwd, char *out, size_t outlen);

#endif
