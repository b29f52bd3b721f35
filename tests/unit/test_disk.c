/*
 * Disk images before any device sees them: the --disk spec parser, and
 * disk_open's checks (missing, directory, empty, odd size, locks), each one
 * line on stderr and a negative errno.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/disk.h"

static void parse_ok(const char *text, const char *path, bool readonly, const char *serial)
{
	struct disk_spec s;
	char why[128];

	cr_assert_eq(disk_parse_spec(text, &s, why, sizeof(why)), 0, "'%s': %s", text, why);
	cr_assert_str_eq(s.path, path, "'%s'", text);
	cr_assert_eq(s.readonly, readonly, "'%s'", text);
	cr_assert_str_eq(s.serial, serial, "'%s'", text);
	disk_spec_free(&s);
}

static void parse_bad(const char *text, const char *word)
{
	struct disk_spec s;
	char why[128];

	cr_assert_eq(disk_parse_spec(text, &s, why, sizeof(why)), -EINVAL, "'%s' accepted", text);
	cr_assert_not_null(strstr(why, word), "'%s': '%s' does not say '%s'", text, why, word);
	cr_assert_null(s.path, "nothing owned after an error");
}

Test(disk_spec, good)
{
	parse_ok("disk.img", "disk.img", false, "");
	parse_ok("/var/lib/a b.img", "/var/lib/a b.img", false, "");
	parse_ok("d.img,readonly", "d.img", true, "");
	parse_ok("d.img,serial=ABC-123", "d.img", false, "ABC-123");
	parse_ok("d.img,serial=x,readonly", "d.img", true, "x");
	parse_ok("d.img,readonly,serial=12345678901234567890", "d.img", true,
		 "12345678901234567890");
	parse_ok("a,,b.img", "a,b.img", false, "");
	parse_ok("a,,b,,,readonly", "a,b,", true, "");
	parse_ok("d.img,,", "d.img,", false, "");    /* an escaped comma, not a stray one */
	parse_ok("serial=x", "serial=x", false, ""); /* the first field is always the path */
	parse_ok("d.img,serial=with space", "d.img", false, "with space");
}

Test(disk_spec, bad)
{
	parse_bad("", "no image path");
	parse_bad(",readonly", "no image path");
	parse_bad("d.img,", "empty option");
	parse_bad("d.img,,,", "empty option");
	parse_bad("d.img,ro", "unknown option 'ro'");
	parse_bad("d.img,readonly=on", "unknown option");
	parse_bad("d.img,READONLY", "unknown option");
	parse_bad("d.img,readonly,readonly", "twice");
	parse_bad("d.img,serial=a,serial=b", "twice");
	parse_bad("d.img,serial=", "serial");
	parse_bad("d.img,serial=123456789012345678901", "serial");
	parse_bad("d.img,serial=tab\there", "serial");
	parse_bad("d.img,serial=\xc3\xa9", "serial");
	parse_bad("d.img,,readonly,", "empty option");
}

Test(disk_spec, formats)
{
	struct disk_spec s;
	char why[128];

	cr_assert_eq(disk_parse_spec("d.img", &s, why, sizeof(why)), 0);
	cr_assert_eq(s.format, DISK_FORMAT_AUTO, "probed when not given");
	disk_spec_free(&s);
	cr_assert_eq(disk_parse_spec("d.img,format=raw,readonly", &s, why, sizeof(why)), 0);
	cr_assert_eq(s.format, DISK_FORMAT_RAW);
	cr_assert(s.readonly);
	disk_spec_free(&s);
	cr_assert_eq(disk_parse_spec("d.qcow2,serial=x,format=qcow2", &s, why, sizeof(why)), 0);
	cr_assert_eq(s.format, DISK_FORMAT_QCOW2);
	cr_assert_str_eq(s.serial, "x");
	disk_spec_free(&s);
	parse_bad("d.img,format=vmdk", "unknown format 'vmdk'");
	parse_bad("d.img,format=", "unknown format");
	parse_bad("d.img,format=qcow2x", "unknown format");
	parse_bad("d.img,format=raw,format=raw", "twice");
	parse_bad("d.img,format", "unknown option");
}

Test(disk_spec, long_unknown_options_are_cut_in_the_message)
{
	char text[600], why[128];
	struct disk_spec s;

	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	memcpy(text, "d.img,", 6);
	cr_assert_eq(disk_parse_spec(text, &s, why, sizeof(why)), -EINVAL);
	cr_assert_lt(strlen(why), sizeof(why) - 1, "the message fits: %s", why);
}

/* ---- disk_open ---- */

static char dir[] = "/tmp/tabique-disk-XXXXXX";
static char path[256];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/d.img", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

static void make_file(off_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, size), 0);
	close(fd);
}

TestSuite(disk_open, .init = setup, .fini = teardown);

Test(disk_open, a_good_image, .init = cr_redirect_stderr)
{
	struct disk *d;

	make_file(1 << 20);
	cr_assert_eq(disk_open(&d, path, DISK_FORMAT_AUTO, false, 128), 0);
	cr_assert_eq(d->size, 1 << 20);
	cr_assert_str_eq(d->ops->format, "raw");
	cr_assert_geq(d->event_fd, 0);
	cr_assert(fcntl(d->fd, F_GETFD) & FD_CLOEXEC, "O_CLOEXEC");
	cr_assert_not(fcntl(d->fd, F_GETFL) & O_NONBLOCK, "io_uring must not see O_NONBLOCK");
	disk_close(d);
	cr_assert_stderr_eq_str("");
}

Test(disk_open, missing, .init = cr_redirect_stderr)
{
	struct disk *d = (struct disk *)1;

	cr_assert_eq(disk_open(&d, "/nonexistent/d.img", DISK_FORMAT_AUTO, false, 128), -ENOENT);
	cr_assert_null(d);
	fflush(stderr);
	cr_assert_stderr_eq_str("tabique: disk /nonexistent/d.img: No such file or directory\n");
}

Test(disk_open, a_directory, .init = cr_redirect_stderr)
{
	struct disk *d;

	cr_assert_eq(disk_open(&d, dir, DISK_FORMAT_AUTO, false, 128), -EISDIR);
	cr_assert_eq(disk_open(&d, dir, DISK_FORMAT_AUTO, true, 128), -EISDIR,
		     "readonly opens it: fstat tells");
	fflush(stderr);
	cr_assert_stderr_neq_str("");
}

Test(disk_open, empty_and_odd_sizes, .init = cr_redirect_stderr)
{
	struct disk *d;

	make_file(0);
	cr_assert_eq(disk_open(&d, path, DISK_FORMAT_AUTO, false, 128), -EINVAL);
	make_file(1000);
	cr_assert_eq(disk_open(&d, path, DISK_FORMAT_AUTO, false, 128), -EINVAL);
	make_file(511);
	cr_assert_eq(disk_open(&d, path, DISK_FORMAT_AUTO, true, 128), -EINVAL);
	make_file(512);
	cr_assert_eq(disk_open(&d, path, DISK_FORMAT_AUTO, true, 128), 0, "one sector is a disk");
	disk_close(d);
}

Test(disk_open, writers_exclude_everyone_readers_share, .init = cr_redirect_stderr)
{
	struct disk *a, *b, *c;

	make_file(4096);
	cr_assert_eq(disk_open(&a, path, DISK_FORMAT_AUTO, false, 128), 0);
	cr_assert_eq(disk_open(&b, path, DISK_FORMAT_AUTO, false, 128), -EBUSY, "a second writer");
	cr_assert_eq(disk_open(&b, path, DISK_FORMAT_AUTO, true, 128), -EBUSY,
		     "a reader while someone writes");
	disk_close(a);
	cr_assert_eq(disk_open(&a, path, DISK_FORMAT_AUTO, true, 128), 0);
	cr_assert_eq(disk_open(&b, path, DISK_FORMAT_AUTO, true, 128), 0, "readers share");
	cr_assert_eq(disk_open(&c, path, DISK_FORMAT_AUTO, false, 128), -EBUSY,
		     "a writer while others read");
	disk_close(a);
	disk_close(b);
	cr_assert_eq(disk_open(&a, path, DISK_FORMAT_AUTO, false, 128), 0,
		     "closing releases the lock");
	disk_close(a);
	fflush(stderr);
	cr_assert_stderr_neq_str("");
}

Test(disk_open, the_lock_message, .init = cr_redirect_stderr)
{
	struct disk *a, *b;
	char want[400];

	make_file(4096);
	cr_assert_eq(disk_open(&a, path, DISK_FORMAT_AUTO, false, 128), 0);
	cr_assert_eq(disk_open(&b, path, DISK_FORMAT_AUTO, false, 128), -EBUSY);
	disk_close(a);
	fflush(stderr);
	snprintf(want, sizeof(want), "tabique: disk %s is in use by another VM (locked)\n", path);
	cr_assert_stderr_eq_str(want);
}

Test(disk_open, bad_queue_depth)
{
	struct disk *d;

	make_file(4096);
	cr_assert_eq(disk_open(&d, path, DISK_FORMAT_AUTO, false, 0), -EINVAL);
	cr_assert_eq(disk_open(&d, path, DISK_FORMAT_AUTO, false, 1 << 20), -EINVAL);
}
