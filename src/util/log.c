#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
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

void log_debug(const char *fmt, ...)
{
	static int enabled = -1;
	va_list ap;

	if (enabled < 0)
		enabled = getenv("TABIQUE_DEBUG") != NULL;
	if (!enabled)
		return;
	va_start(ap, fmt);
	log_line("debug: ", fmt, ap);
	va_end(ap);
}
