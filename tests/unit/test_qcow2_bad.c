/*
 * Damaged and unsupported qcow2 images: each one refused with one line that
 * names the file and says what is wrong, never a crash, never a read
 * outside the file. The images are built here: a good one, then patched.
 */
#include "disk_helpers.h"

#include "disk/image.h"
#include "disk/qcow2.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)

/*
 * The good image (64 KiB clusters, 16 MiB): header at 0, refcount table at
 * 64K, its block at 128K, L1 at 192K; after 128 KiB of data, the L2 table
 * at 256K and the data clusters at 320K and 384K.
 */
#define RT	 (64 * KIB)
#define RB	 (128 * KIB)
#define L1	 (192 * KIB)
#define L2	 (256 * KIB)
#define DATA	 (320 * KIB)
#define COPIED	 (1ull << 63)
#define HDR_SIZE 24

static const char *img;

static void make_image(void)
{
	struct disk *d;

	dir_make();
	img = in_dir("x.qcow2");
	cr_assert_eq(qcow2_create(img, 16 * MIB, NULL, NULL, 16), 0);
	cr_assert_eq(disk_open(&d, img, DISK_FORMAT_QCOW2, false, 8), 0);
	write_pattern(d, 0, 128 * KIB, 1);
	disk_close(d);
	cr_assert_eq(get_be(img, L1, 8), L2 | COPIED, "the layout the tests assume");
	cr_assert_eq(get_be(img, L2, 8), DATA | COPIED);
}

TestSuite(qcow2_bad, .init = make_image, .fini = dir_remove);

/* Opening fails with one line containing want. */
static void refused(bool readonly, const char *want)
{
	struct disk *d = (struct disk *)1;
	const char *out;
	int ret;

	capture_start();
	ret = disk_open(&d, img, DISK_FORMAT_QCOW2, readonly, 8);
	out = capture_end();
	cr_expect_lt(ret, 0, "opened (%s) although it should say '%s'",
		     readonly ? "readonly" : "read-write", want);
	cr_expect_null(d);
	one_line_with(out, want, want);
	cr_expect(strstr(out, img) != NULL || strstr(out, dir) != NULL, "no file named: %s", out);
	if (ret == 0)
		disk_close(d);
}

static void opens(bool readonly)
{
	struct disk *d;

	cr_assert_eq(disk_open(&d, img, DISK_FORMAT_QCOW2, readonly, 8), 0);
	read_pattern(d, 0, 128 * KIB, 1);
	disk_close(d);
}

Test(qcow2_bad, magic)
{
	put_be(img, 0, 0x12345678, 4);
	refused(true, "not a qcow2 image");
}

Test(qcow2_bad, versions)
{
	put_be(img, 4, 4, 4);
	refused(true, "version 4");
	put_be(img, 4, 1, 4);
	refused(true, "version 1");
}

Test(qcow2_bad, cluster_sizes)
{
	put_be(img, 20, 8, 4);
	refused(true, "out of range");
	put_be(img, 20, 22, 4);
	refused(true, "out of range");
	put_be(img, 20, 0xffffffff, 4);
	refused(true, "out of range");
}

Test(qcow2_bad, virtual_sizes)
{
	put_be(img, HDR_SIZE, 16 * MIB + 100, 8);
	refused(true, "not a multiple of 512");
	put_be(img, HDR_SIZE, 1ull << 62, 8);
	refused(true, "too large");
	put_be(img, HDR_SIZE, 1ull << 40, 8);
	refused(true, "too small for its virtual size");
	put_be(img, HDR_SIZE, 0, 8);
	refused(true, "virtual size of 0");
}

Test(qcow2_bad, l1_table)
{
	put_be(img, 36, 8u << 20, 4);
	refused(true, "too large");
	put_be(img, 36, 0, 4);
	refused(true, "too small");
	put_be(img, 36, 1, 4);
	put_be(img, 40, L1 + 512, 8);
	refused(true, "not cluster-aligned");
	put_be(img, 40, 1ull << 40, 8);
	refused(true, "L1 table past the end of the file");
	put_be(img, 40, 0, 8);
	refused(true, "not cluster-aligned");
}

Test(qcow2_bad, refcount_table)
{
	put_be(img, 48, RT + 4096, 8);
	refused(true, "not cluster-aligned");
	put_be(img, 48, 64 * MIB, 8);
	refused(true, "refcount table past the end of the file");
	put_be(img, 48, RT, 8);
	put_be(img, 56, 0, 4);
	refused(true, "out of range");
	put_be(img, 56, 1000, 4);
	refused(true, "out of range");
}

Test(qcow2_bad, table_entries)
{
	put_be(img, L1, (1ull << 40) | COPIED, 8);
	refused(true, "past the end of the file");
	put_be(img, L1, (L2 + 512) | COPIED, 8);
	refused(true, "invalid entry 0");
	put_be(img, L1, L2 | 1, 8);
	refused(true, "invalid entry 0");
	put_be(img, L1, L2 | COPIED, 8);
	put_be(img, RT, RB | (1ull << 60), 8);
	refused(true, "invalid entry 0");
}

Test(qcow2_bad, overlapping_metadata)
{
	put_be(img, L1, RT | COPIED, 8);
	refused(true, "overlapping metadata: the refcount table at 0x10000 and an L2 table");
	put_be(img, L1, L2 | COPIED, 8);
	put_be(img, RT, L1, 8);
	refused(true, "overlapping metadata");
	put_be(img, RT, RB, 8);
	put_be(img, 40, RT, 8); /* the L1 table on the refcount table */
	refused(true, "overlapping metadata");
}

Test(qcow2_bad, features)
{
	put_be(img, 72, 1u << 5, 8);
	refused(true, "incompatible feature 5");
	put_be(img, 72, 1u << 2, 8);
	refused(true, "external data file");
	put_be(img, 72, 1u << 4, 8);
	refused(true, "extended L2 entries");
	put_be(img, 72, 1u << 3, 8);
	put_be(img, 100, 112, 4);
	put_be(img, 104, 1, 1);
	refused(true, "zstd");
	put_be(img, 72, 0, 8);
	put_be(img, 100, 104, 4);
	put_be(img, 32, 1, 4);
	refused(true, "encrypted (AES)");
	put_be(img, 32, 2, 4);
	refused(true, "encrypted (LUKS");
}

Test(qcow2_bad, dirty_and_corrupt_bits_refuse_writing_only)
{
	put_be(img, 72, 1, 8);
	refused(false, "qemu-img check -r all");
	opens(true);
	put_be(img, 72, 2, 8);
	refused(false, "marked corrupt");
	opens(true);
}

Test(qcow2_bad, refcount_widths)
{
	put_be(img, 96, 5, 4);
	refused(false, "32-bit refcounts");
	opens(true);
	put_be(img, 96, 7, 4);
	refused(true, "invalid refcount order");
}

Test(qcow2_bad, header_lengths)
{
	put_be(img, 100, 100, 4);
	refused(true, "invalid header length");
	put_be(img, 100, 106, 4);
	refused(true, "invalid header length");
	put_be(img, 100, 1u << 20, 4);
	refused(true, "invalid header length");
}

Test(qcow2_bad, header_extensions)
{
	put_be(img, 104, 0x12345678, 4);
	put_be(img, 108, 1u << 20, 4);
	refused(true, "header extension (0x12345678) running past");
	put_be(img, 104, 0xe2792aca, 4); /* the backing format */
	put_be(img, 108, 4, 4);
	put_be(img, 112, 0x766d646b, 4); /* "vmdk" */
	refused(true, "format 'vmdk'");
}

Test(qcow2_bad, backing_file_names)
{
	put_be(img, 8, 1024, 8);
	put_be(img, 16, 2000, 4);
	refused(true, "out of range");
	put_be(img, 16, 100, 4);
	put_be(img, 8, 64 * KIB - 50, 8);
	refused(true, "outside its first cluster");
	put_be(img, 8, 1024, 8);
	put_be(img, 16, 4, 4);
	put_be(img, 1024, 0x61620063, 4); /* "ab\0c" */
	refused(true, "NUL byte");
	put_be(img, 1024, 0x6e6f7065, 4); /* "nope" */
	refused(true, "No such file");
}

Test(qcow2_bad, truncated_files)
{
	cr_assert_eq(truncate(img, 300 * KIB), 0);
	refused(true, "an L2 table at 0x40000 past the end of the file (truncated?)");
	cr_assert_eq(truncate(img, 100 * KIB), 0);
	refused(true, "L1 table past the end of the file (truncated?)");
	cr_assert_eq(truncate(img, 50), 0);
	refused(true, "truncated (50 bytes)");
	cr_assert_eq(truncate(img, 0), 0);
	refused(true, "truncated (0 bytes)");
}

Test(qcow2_bad, cut_data_clusters_fail_reads_not_the_disk)
{
	struct disk *d;
	uint8_t b[512];

	cr_assert_eq(truncate(img, DATA), 0);
	cr_assert_eq(disk_open(&d, img, DISK_FORMAT_QCOW2, true, 8), 0);
	capture_start();
	cr_assert_eq(io_run(d, DISK_READ, b, sizeof(b), 0, 0), -EIO);
	one_line_with(capture_end(), "outside the file", "read");
	read_expect(d, MIB, 64 * KIB, NULL);
	disk_close(d);
}

Test(qcow2_bad, bad_l2_entries_fail_requests)
{
	struct disk *d;
	uint8_t b[512];

	put_be(img, L2, DATA | COPIED | 0x100, 8); /* a reserved bit */
	put_be(img, L2 + 8, L1 | COPIED, 8);	   /* data on the L1 table */
	cr_assert_eq(disk_open(&d, img, DISK_FORMAT_QCOW2, false, 8), 0);
	capture_start();
	cr_assert_eq(io_run(d, DISK_READ, b, sizeof(b), 0, 0), -EIO);
	cr_assert_eq(io_run(d, DISK_WRITE, b, sizeof(b), 0, 0), -EIO);
	one_line_with(capture_end(), "invalid L2 entry", "bad entry");
	disk_close(d);
	cr_assert_eq(disk_open(&d, img, DISK_FORMAT_QCOW2, false, 8), 0);
	capture_start();
	/* Reading the image's own metadata harms nobody; writing it is refused. */
	cr_assert_eq(io_run(d, DISK_READ, b, sizeof(b), 64 * KIB, 0), 0);
	cr_assert_eq(io_run(d, DISK_WRITE, b, sizeof(b), 64 * KIB, 0), -EIO);
	one_line_with(capture_end(), "overlaps the L1 table", "data on metadata");
	disk_close(d);
	cr_assert_eq(get_be(img, L1, 8), L2 | COPIED, "the L1 table was not written");
}

Test(qcow2_bad, garbage_compressed_clusters)
{
	struct disk *d;
	uint8_t b[512];

	/* Compressed, at the start of the data cluster (garbage), one more sector. */
	put_be(img, L2, (1ull << 62) | (1ull << 54) | DATA, 8);
	put_be(img, DATA, 0xffffffffffffffffull, 8);
	cr_assert_eq(disk_open(&d, img, DISK_FORMAT_QCOW2, true, 8), 0);
	capture_start();
	cr_assert_eq(io_run(d, DISK_READ, b, sizeof(b), 0, 0), -EIO);
	one_line_with(capture_end(), "does not decompress", "compressed");
	disk_close(d);
}

/* Images only qemu-img can make: version 2, snapshots. */
Test(qcow2_bad, version_2_and_snapshots_are_read_only)
{
	need_qemu_tools();
	cr_assert_eq(sh("qemu-img create -q -f qcow2 -o compat=0.10 x.qcow2 16M && "
			"qemu-io -c 'write -q -P 0x11 0 64k' x.qcow2"),
		     0);
	refused(false, "version 2");
	{
		struct disk *d;
		uint8_t b[64 * KIB];

		memset(b, 0x11, sizeof(b));
		cr_assert_eq(disk_open(&d, img, DISK_FORMAT_QCOW2, true, 8), 0);
		read_expect(d, 0, sizeof(b), b);
		disk_close(d);
	}
	cr_assert_eq(sh("qemu-img create -q -f qcow2 x.qcow2 16M && "
			"qemu-img snapshot -c s1 x.qcow2"),
		     0);
	refused(false, "internal snapshots");
	{
		struct disk *d;

		cr_assert_eq(disk_open(&d, img, DISK_FORMAT_QCOW2, true, 8), 0);
		read_expect(d, 0, 64 * KIB, NULL);
		disk_close(d);
	}
}

/* ---- backing chains ---- */

/* Rewrites an image's backing file name (it has room: the name ends its header cluster). */
static void set_backing(const char *path, const char *name)
{
	uint64_t off = get_be(path, 8, 8);
	int fd = open(path, O_WRONLY);

	cr_assert(off != 0, "%s has no backing file", path);
	cr_assert_eq(pwrite(fd, name, strlen(name), (off_t)off), (ssize_t)strlen(name));
	close(fd);
	put_be(path, 16, strlen(name), 4);
}

Test(qcow2_bad, a_backing_chain_loop)
{
	char want[512];

	cr_assert_eq(qcow2_create(in_dir("a.qcow2"), 0, "x.qcow2", "qcow2", 16), 0);
	cr_assert_eq(qcow2_create(in_dir("b.qcow2"), 0, "a.qcow2", "qcow2", 16), 0);
	set_backing(in_dir("a.qcow2"), "b.qcow2");
	img = in_dir("b.qcow2");
	snprintf(want, sizeof(want), "backing chain loop: %s -> %s -> %s", in_dir("b.qcow2"),
		 in_dir("a.qcow2"), in_dir("b.qcow2"));
	refused(true, want);
	refused(false, "backing chain loop");
	set_backing(in_dir("a.qcow2"), "a.qcow2"); /* itself */
	img = in_dir("a.qcow2");
	refused(true, "backing chain loop");
}

Test(qcow2_bad, a_backing_chain_too_deep)
{
	char name[32], prev[32] = "x.qcow2";

	for (int i = 0; i < 17; i++) {
		snprintf(name, sizeof(name), "l%02d.qcow2", i);
		cr_assert_eq(qcow2_create(in_dir(name), 0, prev, "qcow2", 16), 0, "%s", name);
		snprintf(prev, sizeof(prev), "%s", name);
	}
	img = in_dir("l15.qcow2"); /* 16 backing files behind it: fine */
	opens(true);
	img = in_dir("l16.qcow2");
	refused(true, "more than 16 files deep");
}

Test(qcow2_bad, a_qcow2_backing_file_without_its_format)
{
	cr_assert_eq(qcow2_create(in_dir("top.qcow2"), 0, "x.qcow2", "qcow2", 16), 0);
	/* Drop the format extension: its type becomes an unknown one. */
	put_be(in_dir("top.qcow2"), 104, 0x0badcafe, 4);
	img = in_dir("top.qcow2");
	refused(true, "qemu-img rebase -u -F qcow2");
}

Test(qcow2_bad, backing_file_damage_names_the_backing_file)
{
	const char *base = img;

	cr_assert_eq(qcow2_create(in_dir("top.qcow2"), 0, "x.qcow2", "qcow2", 16), 0);
	put_be(base, 4, 7, 4);
	img = in_dir("top.qcow2");
	refused(true, "x.qcow2 is qcow2 version 7");
}
