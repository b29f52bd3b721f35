#include <criterion/criterion.h>
#include <errno.h>

#include "util/size.h"

Test(size, binary_suffixes)
{
	uint64_t b;

	cr_assert_eq(size_parse("512M", &b), 0);
	cr_assert_eq(b, 512ULL << 20);
	cr_assert_eq(size_parse("2G", &b), 0);
	cr_assert_eq(b, 2ULL << 30);
	cr_assert_eq(size_parse("4096k", &b), 0);
	cr_assert_eq(b, 4096ULL << 10);
	cr_assert_eq(size_parse("1GiB", &b), 0);
	cr_assert_eq(b, 1ULL << 30);
	cr_assert_eq(size_parse("65536", &b), 0);
	cr_assert_eq(b, 65536);
}

Test(size, rejects_junk)
{
	uint64_t b = 7;
	const char *bad[] = {"", "M", "-1G", "1.5G", "12Q", "1GG", " 1G", "1G ", "99999999999999999999",
			     "17179869184T", "0x10", NULL};

	for (int i = 0; bad[i] != NULL; i++)
		cr_assert_eq(size_parse(bad[i], &b), -EINVAL, "accepted '%s'", bad[i]);
	cr_assert_eq(size_parse(NULL, &b), -EINVAL);
	cr_assert_eq(b, 7, "a rejected size must leave the output alone");
}

Test(size, uint_range)
{
	unsigned long v;

	cr_assert_eq(uint_parse("4", 1, 8, &v), 0);
	cr_assert_eq(v, 4);
	cr_assert_eq(uint_parse("0", 1, 8, &v), -ERANGE);
	cr_assert_eq(uint_parse("9", 1, 8, &v), -ERANGE);
	cr_assert_eq(uint_parse("2x", 1, 8, &v), -EINVAL);
	cr_assert_eq(uint_parse("-1", 1, 8, &v), -EINVAL);
}
