#include "util/size.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int size_shift(const char *suffix, unsigned *shift)
{
	static const char units[] = "BKMGTP";
	const char *unit;

	if (*suffix == '\0') {
		*shift = 0;
		return 0;
	}
	unit = strchr(units, toupper((unsigned char)*suffix));
	if (unit == NULL)
		return -EINVAL;
	*shift = (unsigned)(unit - units) * 10;
	suffix++;
	if (*shift != 0 && (strcasecmp(suffix, "iB") == 0 || strcasecmp(suffix, "B") == 0))
		return 0;
	return *suffix == '\0' ? 0 : -EINVAL;
}

int size_parse(const char *text, uint64_t *bytes)
{
	unsigned long long value;
	unsigned shift;
	char *end;

	if (text == NULL || !isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno != 0 || size_shift(end, &shift) != 0)
		return -EINVAL;
	if (shift != 0 && value > (UINT64_MAX >> shift))
		return -EINVAL;
	*bytes = (uint64_t)value << shift;
	return 0;
}

int uint_parse(const char *text, unsigned long min, unsigned long max, unsigned long *value)
{
	unsigned long v;
	char *end;

	if (text == NULL || !isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*value = v;
	return 0;
}
