#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

__attribute__((format(printf, 2, 0))) static void log_line(const char *prefix, const char *fmt,
							   va_list ap)
{
	/* One fprintf per line so that lines from several threads do not interleave. */
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* A terminal may be in raw mode (the console): end the line with CR too. */
	fprintf(stderr, "tabique: %s%s%s", prefix, buf, isatty(STDERR_FILENO) ? "\r\n" : "\n");
}

void log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("warning: ", fmt, ap);
	va_end(ap);
}

static bool log_debug_enabled(void)
{
	static int enabled = -1;

	if (enabled < 0)
		enabled = getenv("TABIQUE_DEBUG") != NULL;
	return enabled;
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_debug_enabled())
		return;
	va_start(ap, fmt);
	log_line("debug: ", fmt, ap);
	va_end(ap);
}

static uint64_t log_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool log_debug_due(uint64_t *last_ns, unsigned period_ms)
{
	uint64_t now;

	if (!log_debug_enabled())
		return false;
	now = log_now_ns();
	if (now - *last_ns < (uint64_t)period_ms * 1000000u)
		return false;
	*last_ns = now;
	return true;
}

static bool log_limit_expired(const struct log_limit *l, uint64_t now)
{
	return l->logged == 0 || now - l->window_start >= LOG_LIMIT_WINDOW_S * 1000000000ULL;
}

bool log_limit_allow(struct log_limit *l, const char *who)
{
	uint64_t now = log_now_ns();

	if (log_limit_expired(l, now)) {
		if (l->suppressed > 0)
			log_warn("%s: %u more messages like these were not shown", who,
				 l->suppressed);
		l->window_start = now;
		l->logged = l->suppressed = 0;
	}
	if (l->logged == LOG_LIMIT_BURST) {
		l->suppressed++;
		return false;
	}
	l->logged++;
	return true;
}

bool log_limit_open(const struct log_limit *l)
{
	return l->logged < LOG_LIMIT_BURST || log_limit_expired(l, log_now_ns());
}
