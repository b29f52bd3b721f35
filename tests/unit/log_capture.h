/*
 * Counts log lines: stderr goes into a temporary file between
 * log_capture_begin() and log_capture_end(), which returns how many lines
 * contain a needle. For tests of what a guest can make the VMM print.
 */
#ifndef TABIQUE_TESTS_LOG_CAPTURE_H
#define TABIQUE_TESTS_LOG_CAPTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct log_capture {
	FILE *file;
	int saved;
};

static inline void log_capture_begin(struct log_capture *c)
{
	c->file = tmpfile();
	cr_assert_not_null(c->file);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	cr_assert_geq(c->saved, 0);
	cr_assert_eq(dup2(fileno(c->file), STDERR_FILENO), STDERR_FILENO);
}

static inline unsigned log_capture_end(struct log_capture *c, const char *needle)
{
	char line[512];
	unsigned n = 0;

	fflush(stderr);
	cr_assert_eq(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
	close(c->saved);
	rewind(c->file);
	while (fgets(line, sizeof(line), c->file) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(c->file);
	return n;
}

#endif
