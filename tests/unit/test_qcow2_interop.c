/*
 * qcow2 with QEMU as the other side: images qemu-img makes and qemu-io
 * writes (cluster sizes from 512 B to 2 MiB, backing files, compressed,
 * preallocated, 64-bit refcounts) read back right through tabique; images
 * tabique writes pass `qemu-img check` without errors or leaks and qemu-io
 * reads what tabique wrote; converted pairs compare equal.
 */
#include "disk_helpers.h"

#include "disk/image.h"
#include "disk/qcow2.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)

TestSuite(qcow2_interop, .init = dir_make, .fini = dir_remove);

/* What qemu-io writes below, as the test expects it back (size 16 MiB). */
static uint8_t *qemu_pattern_expected(void)
{
	uint8_t *e = calloc(1, 16 * MIB);

	memset(e, 0xab, MIB);
	memset(e + 64 * KIB, 0, 64 * KIB);
	memset(e + 5 * MIB + 512, 0xcd, 3 * KIB);
	memset(e + 16 * MIB - 4 * KIB, 0xef, 4 * KIB);
	return e;
}

static void qemu_write_pattern(const char *file)
{
	cr_assert_eq(sh("qemu-io -c 'write -q -P 0xab 0 1M' -c 'write -q -z 64k 64k' "
			"-c 'write -q -P 0xcd 5243392 3k' -c 'write -q -P 0xef 16380k 4k' %s",
			file),
		     0);
}

static void read_all(const char *name, const uint8_t *expected, uint64_t size)
{
	struct disk *d;

	cr_assert_eq(disk_open(&d, in_dir(name), DISK_FORMAT_AUTO, true, 64), 0, "%s", name);
	cr_assert_eq(d->size, size);
	for (uint64_t off = 0; off < size; off += MIB)
		read_expect(d, off, MIB, expected + off);
	disk_close(d);
}

Test(qcow2_interop, qemu_images_of_every_cluster_size)
{
	static const char *const sizes[] = {"512", "4k", "64k", "2M"};
	uint8_t *expected = qemu_pattern_expected();

	need_qemu_tools();
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		cr_assert_eq(sh("rm -f q.qcow2 && qemu-img create -q -f qcow2 -o cluster_size=%s "
				"q.qcow2 16M",
				sizes[i]),
			     0);
		qemu_write_pattern("q.qcow2");
		read_all("q.qcow2", expected, 16 * MIB);
	}
	free(expected);
}

Test(qcow2_interop, qemu_images_preallocated_and_with_wide_refcounts)
{
	uint8_t *expected = qemu_pattern_expected();

	need_qemu_tools();
	cr_assert_eq(sh("qemu-img create -q -f qcow2 -o preallocation=metadata q.qcow2 16M"), 0);
	qemu_write_pattern("q.qcow2");
	read_all("q.qcow2", expected, 16 * MIB);
	cr_assert_eq(sh("qemu-img create -q -f qcow2 -o refcount_bits=64 w.qcow2 16M"), 0);
	qemu_write_pattern("w.qcow2");
	read_all("w.qcow2", expected, 16 * MIB);
	free(expected);
}

Test(qcow2_interop, qemu_backing_chains)
{
	uint8_t *expected = qemu_pattern_expected();

	need_qemu_tools();
	cr_assert_eq(sh("qemu-img create -q -f qcow2 base.qcow2 16M"), 0);
	qemu_write_pattern("base.qcow2");
	cr_assert_eq(sh("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 && "
			"qemu-io -c 'write -q -P 0x12 32k 8k' -c 'write -q -z 6M 1M' top.qcow2"),
		     0);
	memset(expected + 32 * KIB, 0x12, 8 * KIB);
	memset(expected + 6 * MIB, 0, MIB);
	read_all("top.qcow2", expected, 16 * MIB);
	/* A raw base under a qcow2 overlay made by qemu-img. */
	cr_assert_eq(sh("qemu-img convert -O raw base.qcow2 base.raw && "
			"qemu-img create -q -f qcow2 -b base.raw -F raw rtop.qcow2"),
		     0);
	free(expected);
	expected = qemu_pattern_expected();
	read_all("rtop.qcow2", expected, 16 * MIB);
	free(expected);
}

Test(qcow2_interop, qemu_compressed_images)
{
	static const char *const sizes[] = {"4k", "64k", "2M"};
	uint8_t *expected = qemu_pattern_expected();

	need_qemu_tools();
	cr_assert_eq(sh("qemu-img create -q -f qcow2 src.qcow2 16M"), 0);
	qemu_write_pattern("src.qcow2");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		cr_assert_eq(sh("rm -f c.qcow2 && qemu-img convert -c -O qcow2 -o cluster_size=%s "
				"src.qcow2 c.qcow2",
				sizes[i]),
			     0);
		cr_assert_eq(sh("qemu-img check c.qcow2 | grep 'compressed clusters' | "
				"grep -qv ' 0.00%% compressed'"),
			     0, "qemu-img made no compressed clusters (%s)", sizes[i]);
		read_all("c.qcow2", expected, 16 * MIB);
	}
	free(expected);
}

/* Writes tabique makes: constant bytes per region, so qemu-io -P can read them. */
static void tabique_writes(const char *name, unsigned cb)
{
	static const struct {
		uint64_t off, len;
		uint8_t byte;
	} w[] = {
	    {0, 4 * KIB, 0x11},	      {6 * KIB, 130 * KIB, 0x22},  {3 * MIB + 512, 1536, 0x33},
	    {8 * MIB, 2 * MIB, 0x44}, {16 * MIB - 512, 512, 0x55},
	};
	uint8_t *b = malloc(2 * MIB);
	struct disk *d;

	cr_assert_eq(qcow2_create(in_dir(name), 16 * MIB, NULL, NULL, cb), 0);
	cr_assert_eq(disk_open(&d, in_dir(name), DISK_FORMAT_QCOW2, false, 64), 0);
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		memset(b, w[i].byte, w[i].len);
		cr_assert_eq(io_run(d, DISK_WRITE, b, w[i].len, w[i].off, 0), 0);
	}
	/* Zeroes and discards in the middle of the data (a discard of part of a cluster
	 * is a hint: 2 MiB clusters keep the data). */
	cr_assert_eq(io_run(d, DISK_WRITE_ZEROES, NULL, 64 * KIB, 9 * MIB, DISK_F_UNMAP), 0);
	cr_assert_eq(io_run(d, DISK_DISCARD, NULL, 512 * KIB, 9 * MIB + 512 * KIB, 0), 0);
	disk_close(d);
	free(b);
	cr_assert_eq(sh("qemu-img check -q %s", name), 0, "qemu-img check %s (2^%u)", name, cb);
	cr_assert_eq(sh("qemu-io -r -c 'read -q -P 0x11 0 4k' -c 'read -q -P 0 4k 2k' "
			"-c 'read -q -P 0x22 6k 130k' -c 'read -q -P 0x33 3146240 1536' "
			"-c 'read -q -P 0x44 8M 1M' -c 'read -q -P 0 9M 64k' "
			"-c 'read -q -P 0x44 9280k 448k' -c 'read -q -P %#x 9728k 512k' "
			"-c 'read -q -P 0x55 16776704 512' %s "
			"| grep -q 'Pattern verification failed' && exit 1; exit 0",
			cb > 19 ? 0x44 : 0, name),
		     0, "qemu-io sees other bytes in %s", name);
}

Test(qcow2_interop, tabique_images_pass_qemu_img_check)
{
	need_qemu_tools();
	tabique_writes("t512.qcow2", 9);
	tabique_writes("t4k.qcow2", 12);
	tabique_writes("t64k.qcow2", 16);
	tabique_writes("t2m.qcow2", 21);
}

Test(qcow2_interop, tabique_overlays_over_qemu_images)
{
	uint8_t b[8 * KIB];
	struct disk *d;

	need_qemu_tools();
	cr_assert_eq(sh("qemu-img create -q -f qcow2 base.qcow2 16M"), 0);
	qemu_write_pattern("base.qcow2");
	cr_assert_eq(qcow2_create(in_dir("top.qcow2"), 0, "base.qcow2", "qcow2", 0), 0);
	cr_assert_eq(disk_open(&d, in_dir("top.qcow2"), DISK_FORMAT_QCOW2, false, 8), 0);
	memset(b, 0x66, sizeof(b));
	cr_assert_eq(io_run(d, DISK_WRITE, b, sizeof(b), 100 * KIB, 0), 0);
	disk_close(d);
	cr_assert_eq(sh("qemu-img check -q top.qcow2 && qemu-img info top.qcow2 | "
			"grep -q 'backing file format: qcow2'"),
		     0);
	cr_assert_eq(sh("qemu-io -r -c 'read -q -P 0xab 0 64k' -c 'read -q -P 0 64k 36k' "
			"-c 'read -q -P 0x66 100k 8k' -c 'read -q -P 0 108k 20k' "
			"-c 'read -q -P 0xab 128k 896k' top.qcow2 "
			"| grep -q 'Pattern verification failed' && exit 1; exit 0"),
		     0);
}

Test(qcow2_interop, converted_pairs_compare_equal)
{
	struct disk_convert_options o = {.dst_format = DISK_FORMAT_RAW};

	need_qemu_tools();
	cr_assert_eq(sh("qemu-img create -q -f qcow2 -o cluster_size=4k base.qcow2 16M"), 0);
	qemu_write_pattern("base.qcow2");
	cr_assert_eq(sh("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 && "
			"qemu-io -c 'write -q -P 0x12 32k 8k' top.qcow2"),
		     0);
	cr_assert_eq(disk_convert(in_dir("top.qcow2"), in_dir("flat.raw"), &o), 0);
	cr_assert_eq(sh("qemu-img compare -q top.qcow2 flat.raw"), 0);
	o.dst_format = DISK_FORMAT_QCOW2;
	o.cluster_bits = 9;
	cr_assert_eq(disk_convert(in_dir("flat.raw"), in_dir("back.qcow2"), &o), 0);
	cr_assert_eq(sh("qemu-img check -q back.qcow2 && qemu-img compare -q back.qcow2 top.qcow2"),
		     0);
	cr_assert_lt(o.written, 2 * MIB, "zeroes were written: %llu bytes",
		     (unsigned long long)o.written);
}
