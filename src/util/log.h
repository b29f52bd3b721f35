/* One-line diagnostics for users and developers. */
#ifndef TABIQUE_UTIL_LOG_H
#define TABIQUE_UTIL_LOG_H

#include <stdarg.h>

/* Prints "tabique: <message>\n" on stderr. Never exits. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed only when TABIQUE_DEBUG is set in the environment. */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
