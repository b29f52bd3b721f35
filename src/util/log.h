/* One-line diagnostics for users and developers. */
#ifndef TABIQUE_UTIL_LOG_H
#define TABIQUE_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

/* Prints "tabique: <message>\n" on stderr. Never exits. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed only when TABIQUE_DEBUG is set in the environment. */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * For periodic debug counters on hot paths: true at most once per period_ms
 * (*last_ns is the caller's, zeroed at first), and never without
 * TABIQUE_DEBUG, when it costs one load.
 */
bool log_debug_due(uint64_t *last_ns, unsigned period_ms);

/*
 * A budget for messages a guest can cause at will (one per driver error):
 * at most LOG_LIMIT_BURST in a window of LOG_LIMIT_WINDOW_S seconds, then
 * silence until the window ends, when one line says how many were left out.
 * Otherwise a guest that breaks and resets a device in a loop writes the
 * host's logs full. Not thread-safe: the caller's lock guards it. A zeroed
 * one is ready to use.
 */
#define LOG_LIMIT_BURST	   64
#define LOG_LIMIT_WINDOW_S 60

struct log_limit {
	uint64_t window_start; /* CLOCK_MONOTONIC, ns */
	unsigned logged;       /* in this window; 0: no window open */
	unsigned suppressed;   /* in this window, beyond the burst */
};

/*
 * Spends one message: true if it may be printed. When a new window opens
 * after suppressed ones, says first, as who, how many were left out.
 */
bool log_limit_allow(struct log_limit *l, const char *who);
/* Whether a message printed now would fit, without spending it (a detail of the next one). */
bool log_limit_open(const struct log_limit *l);

#endif
