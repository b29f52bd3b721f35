#ifndef TABIQUE_UTIL_SIZE_H
#define TABIQUE_UTIL_SIZE_H

#include <stdint.h>

/*
 * Parses a memory size such as "512M", "2G", "4096K", "1T" or a plain byte
 * count. Suffixes are binary (K = 1024) and case-insensitive; an optional
 * trailing "iB" or "B" is accepted. Returns 0 and stores the byte count, or
 * -EINVAL for anything else (empty, negative, junk, overflow).
 */
int size_parse(const char *text, uint64_t *bytes);

/* Parses a decimal unsigned integer in [min, max]. Returns 0 or -EINVAL/-ERANGE. */
int uint_parse(const char *text, unsigned long min, unsigned long max, unsigned long *value);

#endif
