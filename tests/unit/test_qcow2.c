/*
 * qcow2 images through the disk API (what virtio-blk uses): round trips,
 * allocation across L2 tables and refcount blocks, the refcount table's
 * growth, backing files and copy-on-write, zero clusters, discard, flush and
 * what a crash leaves. qemu-img check judges every image written.
 */
#include "disk_helpers.h"

#include <sys/stat.h>

#include "disk/image.h"
#include "disk/qcow2.h"

#define MIB (1ull << 20)
#define KIB (1ull << 10)

TestSuite(qcow2, .init = dir_make, .fini = dir_remove);

static struct disk *open_rw(const char *path)
{
	struct disk *d;

	cr_assert_eq(disk_open(&d, path, DISK_FORMAT_QCOW2, false, 128), 0, "open %s", path);
	return d;
}

static struct disk *open_ro(const char *path)
{
	struct disk *d;

	cr_assert_eq(disk_open(&d, path, DISK_FORMAT_QCOW2, true, 128), 0, "open %s", path);
	return d;
}

static void check_clean(const char *path)
{
	cr_assert_eq(
	    sh("qemu-img check -q '%s' >check.out 2>&1 || { cat check.out >&2; exit 1; }", path), 0,
	    "qemu-img check %s found errors or leaks", path);
}

static void create(const char *name, uint64_t size, unsigned cb)
{
	cr_assert_eq(qcow2_create(in_dir(name), size, NULL, NULL, cb), 0);
}

Test(qcow2, create_write_reopen_read)
{
	const char *path = in_dir("a.qcow2");
	struct disk *d;

	need_qemu_tools();
	create("a.qcow2", 16 * MIB, 0);
	d = open_rw(path);
	cr_assert_str_eq(d->ops->format, "qcow2");
	cr_assert_eq(d->size, 16 * MIB);
	write_pattern(d, 0, 4 * KIB, 1);
	write_pattern(d, 60 * KIB, 100 * KIB, 2); /* across cluster boundaries */
	write_pattern(d, 16 * MIB - 512, 512, 3); /* the last sector */
	read_pattern(d, 0, 4 * KIB, 1);
	read_pattern(d, 60 * KIB, 100 * KIB, 2);
	read_expect(d, 4 * KIB, 56 * KIB, NULL);
	read_expect(d, 8 * MIB, 64 * KIB, NULL);
	disk_close(d);
	check_clean(path);
	d = open_ro(path);
	read_pattern(d, 0, 4 * KIB, 1);
	read_pattern(d, 60 * KIB, 100 * KIB, 2);
	read_pattern(d, 16 * MIB - 512, 512, 3);
	cr_assert_eq(io_run(d, DISK_WRITE, captured, 512, 0, 0), -EROFS);
	disk_close(d);
}

Test(qcow2, the_format_is_probed_when_not_given)
{
	struct disk *d;

	create("a.qcow2", MIB, 0);
	cr_assert_eq(disk_open(&d, in_dir("a.qcow2"), DISK_FORMAT_AUTO, true, 8), 0);
	cr_assert_str_eq(d->ops->format, "qcow2");
	cr_assert_eq(d->size, MIB);
	disk_close(d);
	/* Given as raw, it is raw: the file's own bytes. */
	cr_assert_eq(disk_open(&d, in_dir("a.qcow2"), DISK_FORMAT_RAW, true, 8), 0);
	cr_assert_str_eq(d->ops->format, "raw");
	disk_close(d);
}

Test(qcow2, a_probed_raw_image_refuses_a_qcow2_header)
{
	uint8_t sector[512] = {'Q', 'F', 'I', 0xfb};
	struct disk *d;

	cr_assert_eq(disk_create_raw(in_dir("r.img"), MIB), 0);
	cr_assert_eq(disk_open(&d, in_dir("r.img"), DISK_FORMAT_AUTO, false, 8), 0);
	capture_start();
	cr_assert_eq(io_run(d, DISK_WRITE, sector, 512, 0, 0), -EPERM);
	one_line_with(capture_end(), "qcow2 header", "guard");
	cr_assert_eq(io_run(d, DISK_WRITE, sector, 512, 512, 0), 0, "elsewhere is fine");
	disk_close(d);
	cr_assert_eq(disk_open(&d, in_dir("r.img"), DISK_FORMAT_RAW, false, 8), 0);
	cr_assert_eq(io_run(d, DISK_WRITE, sector, 512, 0, 0), 0, "format=raw allows it");
	disk_close(d);
}

/* Many writes in flight at once, several in one cluster: claims make them wait. */
static void concurrent_writes(unsigned cb, uint64_t size, unsigned n, uint64_t len)
{
	const char *path = in_dir("c.qcow2");
	uint8_t *expect = calloc(1, size), *bufs = malloc(n * len);
	struct io *ios = calloc(n, sizeof(*ios));
	struct disk *d;

	create("c.qcow2", size, cb);
	d = open_rw(path);
	for (unsigned i = 0; i < n; i++) {
		/* A stride of len * 3 / 2 mixes shared and separate clusters. */
		uint64_t off = (uint64_t)((i * 37u) % n) * (len * 3 / 2) % (size - len) / 512 * 512;

		fill(bufs + i * len, off, len, i + 1);
		io_init(&ios[i], DISK_WRITE, bufs + i * len, len, off, 0);
	}
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(disk_submit(d, &ios[i].req), 0);
		if (i % 16 == 15)
			disk_commit(d);
	}
	io_wait_all(d, ios, n);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(ios[i].ret, 0, "write %u", i);
		/* Overlapping writes: the one submitted last is not guaranteed; skip those. */
	}
	for (unsigned i = 0; i < n; i++)
		memcpy(expect + ios[i].req.offset, bufs + i * len, len);
	disk_close(d);
	check_clean(path);
	d = open_ro(path);
	/* Writes that overlapped another may land in either order: check the others. */
	for (unsigned i = 0; i < n; i++) {
		bool alone = true;

		for (unsigned j = 0; j < n && alone; j++)
			alone = j == i || ios[j].req.offset >= ios[i].req.offset + len ||
				ios[j].req.offset + len <= ios[i].req.offset;
		if (alone)
			read_pattern(d, ios[i].req.offset, len, i + 1);
	}
	disk_close(d);
	free(expect);
	free(bufs);
	free(ios);
}

Test(qcow2, concurrent_writes_64k_clusters)
{
	need_qemu_tools();
	concurrent_writes(16, 32 * MIB, 96, 24 * KIB);
}

Test(qcow2, concurrent_writes_512_byte_clusters_cross_l2_tables_and_refblocks)
{
	/* 512-byte clusters: an L2 table maps 32 KiB, a refcount block 128 KiB. */
	need_qemu_tools();
	concurrent_writes(9, 8 * MIB, 96, 12 * KIB);
}

Test(qcow2, the_refcount_table_grows)
{
	const char *path = in_dir("g.qcow2");
	uint64_t len = 256 * KIB;
	struct disk *d;

	need_qemu_tools();
	create("g.qcow2", 64 * MIB, 9);
	cr_assert_eq(get_be(path, 56, 4), 1, "one cluster of refcount table to start with");
	d = open_rw(path);
	/* One 512-byte table cluster covers 64 blocks x 128 KiB = 8 MiB of file. */
	for (uint64_t off = 0; off < 12 * MIB; off += len)
		write_pattern(d, off, len, (unsigned)(off / len));
	for (uint64_t off = 0; off < 12 * MIB; off += len)
		read_pattern(d, off, len, (unsigned)(off / len));
	disk_close(d);
	cr_assert_gt(get_be(path, 56, 4), 1, "the refcount table grew");
	check_clean(path);
	d = open_ro(path);
	for (uint64_t off = 0; off < 12 * MIB; off += 3 * len)
		read_pattern(d, off, len, (unsigned)(off / len));
	disk_close(d);
}

/* A file's bytes, to see that a backing file is never written. */
static uint64_t file_hash(const char *path)
{
	uint64_t h = 1469598103934665603ull;
	FILE *f = fopen(path, "rb");
	int c;

	cr_assert_not_null(f);
	while ((c = fgetc(f)) != EOF)
		h = (h ^ (uint64_t)c) * 1099511628211ull;
	fclose(f);
	return h;
}

Test(qcow2, backing_file_reads_and_copy_on_write)
{
	const char *base = in_dir("base.qcow2"), *top = in_dir("top.qcow2");
	uint8_t *expect = malloc(256 * KIB);
	uint64_t before;
	struct disk *d;

	need_qemu_tools();
	create("base.qcow2", 4 * MIB, 16);
	d = open_rw(base);
	write_pattern(d, 0, 256 * KIB, 7);
	disk_close(d);
	before = file_hash(base);
	cr_assert_eq(qcow2_create(top, 0, "base.qcow2", "qcow2", 16), 0);
	d = open_rw(top);
	cr_assert_eq(d->size, 4 * MIB, "the size of its backing file");
	read_pattern(d, 0, 256 * KIB, 7);
	write_pattern(d, 70 * KIB, 4 * KIB, 8); /* inside cluster 1 */
	fill(expect, 0, 256 * KIB, 7);
	fill(expect + 70 * KIB, 70 * KIB, 4 * KIB, 8);
	read_expect(d, 0, 256 * KIB, expect);
	disk_close(d);
	cr_assert_eq(file_hash(base), before, "the backing file was written");
	check_clean(top);
	d = open_ro(top);
	read_expect(d, 0, 256 * KIB, expect);
	disk_close(d);
	free(expect);
}

Test(qcow2, a_raw_backing_file_smaller_than_the_disk)
{
	const char *top = in_dir("top.qcow2");
	struct disk *d;

	cr_assert_eq(disk_create_raw(in_dir("base.img"), 64 * KIB), 0);
	d = NULL;
	cr_assert_eq(disk_open(&d, in_dir("base.img"), DISK_FORMAT_RAW, false, 8), 0);
	write_pattern(d, 0, 64 * KIB, 3);
	disk_close(d);
	cr_assert_eq(qcow2_create(top, MIB, "base.img", "raw", 12), 0);
	d = open_rw(top);
	read_pattern(d, 0, 64 * KIB, 3);
	read_expect(d, 64 * KIB, 64 * KIB, NULL); /* past the backing file: zeroes */
	write_pattern(d, 62 * KIB, 4 * KIB, 4);	  /* half over the backing file's end */
	read_pattern(d, 62 * KIB, 4 * KIB, 4);
	read_pattern(d, 60 * KIB, 2 * KIB, 3);
	disk_close(d);
}

Test(qcow2, a_chain_of_three)
{
	struct disk *d;

	create("a.qcow2", MIB, 16);
	d = open_rw(in_dir("a.qcow2"));
	write_pattern(d, 0, 192 * KIB, 1);
	disk_close(d);
	cr_assert_eq(qcow2_create(in_dir("b.qcow2"), 0, "a.qcow2", NULL, 16), 0);
	d = open_rw(in_dir("b.qcow2"));
	write_pattern(d, 64 * KIB, 64 * KIB, 2);
	disk_close(d);
	cr_assert_eq(qcow2_create(in_dir("c.qcow2"), 0, "b.qcow2", NULL, 0), 0);
	d = open_rw(in_dir("c.qcow2"));
	write_pattern(d, 128 * KIB, 4 * KIB, 3);
	read_pattern(d, 0, 64 * KIB, 1);
	read_pattern(d, 64 * KIB, 64 * KIB, 2);
	read_pattern(d, 128 * KIB, 4 * KIB, 3);
	read_pattern(d, 132 * KIB, 60 * KIB, 1);
	disk_close(d);
}

Test(qcow2, zeroes_and_discard)
{
	const char *path = in_dir("z.qcow2");
	uint8_t *expect = malloc(512 * KIB);
	struct stat st;
	struct disk *d;

	need_qemu_tools();
	create("z.qcow2", 4 * MIB, 16);
	d = open_rw(path);
	write_pattern(d, 0, 512 * KIB, 5);
	fill(expect, 0, 512 * KIB, 5);
	/* Whole clusters, deallocated; then part of one, kept. */
	cr_assert_eq(io_run(d, DISK_WRITE_ZEROES, NULL, 128 * KIB, 64 * KIB, DISK_F_UNMAP), 0);
	memset(expect + 64 * KIB, 0, 128 * KIB);
	cr_assert_eq(io_run(d, DISK_WRITE_ZEROES, NULL, 4 * KIB, 260 * KIB, 0), 0);
	memset(expect + 260 * KIB, 0, 4 * KIB);
	/* Whole clusters kept allocated, reading as zeroes (the v3 zero flag). */
	cr_assert_eq(io_run(d, DISK_WRITE_ZEROES, NULL, 64 * KIB, 320 * KIB, 0), 0);
	memset(expect + 320 * KIB, 0, 64 * KIB);
	/* Discard: whole clusters go, a part is a hint. */
	cr_assert_eq(io_run(d, DISK_DISCARD, NULL, 96 * KIB, 416 * KIB, 0), 0);
	memset(expect + 448 * KIB, 0, 64 * KIB);
	read_expect(d, 0, 512 * KIB, expect);
	/* Writing into a kept zero cluster reuses it. */
	write_pattern(d, 330 * KIB, 2 * KIB, 6);
	fill(expect + 330 * KIB, 330 * KIB, 2 * KIB, 6);
	read_expect(d, 0, 512 * KIB, expect);
	/* Zeroes over what is unallocated cost nothing. */
	cr_assert_eq(io_run(d, DISK_WRITE_ZEROES, NULL, MIB + 4 * KIB, 2 * MIB + 2 * KIB, 0), 0);
	cr_assert_eq(io_run(d, DISK_FLUSH, NULL, 0, 0, 0), 0);
	cr_assert_eq(fstat(d->fd, &st), 0);
	cr_assert_lt((uint64_t)st.st_size, MIB, "zeroes allocated data: %lld",
		     (long long)st.st_size);
	disk_close(d);
	check_clean(path);
	d = open_ro(path);
	read_expect(d, 0, 512 * KIB, expect);
	disk_close(d);
	free(expect);
}

/* Discarded data reads as zeroes; untouched clusters still show the backing file. */
Test(qcow2, discard_and_zeroes_over_a_backing_file)
{
	struct disk *d;

	create("base.qcow2", MIB, 16);
	d = open_rw(in_dir("base.qcow2"));
	write_pattern(d, 0, 256 * KIB, 1);
	disk_close(d);
	cr_assert_eq(qcow2_create(in_dir("top.qcow2"), 0, "base.qcow2", "qcow2", 16), 0);
	d = open_rw(in_dir("top.qcow2"));
	write_pattern(d, 0, 64 * KIB, 2);
	cr_assert_eq(io_run(d, DISK_DISCARD, NULL, 128 * KIB, 0, 0), 0);
	cr_assert_eq(io_run(d, DISK_WRITE_ZEROES, NULL, 64 * KIB, 128 * KIB, DISK_F_UNMAP), 0);
	read_expect(d, 0, 64 * KIB, NULL);
	read_pattern(d, 64 * KIB, 64 * KIB, 1); /* a discard is a hint */
	read_expect(d, 128 * KIB, 64 * KIB, NULL);
	read_pattern(d, 192 * KIB, 64 * KIB, 1);
	disk_close(d);
}

Test(qcow2, discarded_clusters_are_reused_after_a_flush)
{
	const char *path = in_dir("r.qcow2");
	struct stat st1, st2;
	struct disk *d;

	need_qemu_tools();
	create("r.qcow2", 8 * MIB, 16);
	d = open_rw(path);
	write_pattern(d, 0, MIB, 1);
	cr_assert_eq(io_run(d, DISK_DISCARD, NULL, MIB, 0, 0), 0);
	cr_assert_eq(io_run(d, DISK_FLUSH, NULL, 0, 0, 0), 0);
	cr_assert_eq(fstat(d->fd, &st1), 0);
	write_pattern(d, 4 * MIB, MIB, 2);
	cr_assert_eq(fstat(d->fd, &st2), 0);
	cr_assert_eq(st2.st_size, st1.st_size, "the freed clusters were not reused");
	read_pattern(d, 4 * MIB, MIB, 2);
	read_expect(d, 0, MIB, NULL);
	disk_close(d);
	check_clean(path);
}

Test(qcow2, a_flush_puts_everything_on_disk)
{
	const char *path = in_dir("f.qcow2");
	struct disk *d;

	need_qemu_tools();
	create("f.qcow2", 4 * MIB, 16);
	d = open_rw(path);
	{
		uint8_t b[64 * KIB];

		memset(b, 0x5a, sizeof(b));
		cr_assert_eq(io_run(d, DISK_WRITE, b, sizeof(b), MIB, 0), 0);
	}
	cr_assert_eq(io_run(d, DISK_FLUSH, NULL, 0, 0, 0), 0);
	/* Another reader, while the disk is open (-U: ignore our lock). */
	cr_assert_eq(sh("qemu-io -r --image-opts -c 'read -P 0x5a 1M 64k' "
			"driver=qcow2,file.filename='%s',file.locking=off >/dev/null",
			path),
		     0);
	cr_assert_eq(sh("qemu-img check -q --image-opts "
			"driver=qcow2,file.filename='%s',file.locking=off",
			path),
		     0);
	disk_close(d);
}

Test(qcow2, write_through_makes_allocations_stable)
{
	const char *path = in_dir("w.qcow2");
	uint8_t b[4096];
	struct disk *d;

	need_qemu_tools();
	create("w.qcow2", 4 * MIB, 16);
	d = open_rw(path);
	memset(b, 0x77, sizeof(b));
	cr_assert_eq(io_run(d, DISK_WRITE, b, sizeof(b), 3 * MIB, DISK_F_FUA), 0);
	cr_assert_eq(sh("qemu-io -r --image-opts -c 'read -P 0x77 3M 4k' "
			"driver=qcow2,file.filename='%s',file.locking=off >/dev/null",
			path),
		     0);
	disk_close(d);
}

/* A crash at any point leaks clusters at worst: the child dies without closing. */
Test(qcow2, a_crash_leaks_at_worst)
{
	const char *path = in_dir("k.qcow2");
	pid_t pid;
	int st, ret;

	need_qemu_tools();
	create("k.qcow2", 16 * MIB, 12);
	pid = fork();
	if (pid == 0) {
		struct disk *d = open_rw(path);

		write_pattern(d, 0, MIB, 1);
		io_run(d, DISK_FLUSH, NULL, 0, 0, 0);
		io_run(d, DISK_DISCARD, NULL, 512 * KIB, 0, 0);
		write_pattern(d, 4 * MIB, 2 * MIB, 2);
		io_run(d, DISK_FLUSH, NULL, 0, 0, 0);
		write_pattern(d, 8 * MIB, MIB, 3); /* never flushed */
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ret = sh("qemu-img check -q '%s' >/dev/null 2>&1", path);
	cr_assert(ret == 0 || ret == 3, "qemu-img check: %d (3 would be leaks only)", ret);
	if (ret == 3)
		cr_assert_eq(sh("qemu-img check -q -r leaks '%s' >/dev/null 2>&1", path), 0);
	{
		struct disk *d = open_ro(path);

		read_expect(d, 0, 512 * KIB, NULL);
		read_pattern(d, 512 * KIB, 512 * KIB, 1);
		read_pattern(d, 4 * MIB, 2 * MIB, 2);
		disk_close(d);
	}
}

Test(qcow2, locks_the_top_image_and_read_locks_the_backing_files)
{
	struct disk *a, *b, *c;

	create("base.qcow2", MIB, 16);
	cr_assert_eq(qcow2_create(in_dir("top.qcow2"), 0, "base.qcow2", "qcow2", 16), 0);
	cr_assert_eq(qcow2_create(in_dir("top2.qcow2"), 0, "base.qcow2", "qcow2", 16), 0);
	a = open_rw(in_dir("top.qcow2"));
	capture_start();
	cr_assert_eq(disk_open(&b, in_dir("top.qcow2"), DISK_FORMAT_QCOW2, true, 8), -EBUSY);
	one_line_with(capture_end(), "in use by another VM", "second user");
	b = open_rw(in_dir("top2.qcow2")); /* backing files are shared */
	capture_start();
	cr_assert_eq(disk_open(&c, in_dir("base.qcow2"), DISK_FORMAT_QCOW2, false, 8), -EBUSY);
	one_line_with(capture_end(), "in use by another VM", "writer of a backing file");
	{
		struct disk_image_info info;

		/* Looking at an image in use is fine: no lock. */
		cr_assert_eq(disk_image_info(in_dir("top.qcow2"), DISK_FORMAT_AUTO, &info), 0);
		cr_assert_str_eq(info.backing, "base.qcow2");
	}
	disk_close(b);
	disk_close(a);
}

Test(qcow2, compressed_clusters_are_read)
{
	uint8_t b[64 * KIB];
	struct disk *d;

	need_qemu_tools();
	create("p.qcow2", 2 * MIB, 16);
	d = open_rw(in_dir("p.qcow2"));
	write_pattern(d, 0, 192 * KIB, 1);
	memset(b, 0x42, sizeof(b));
	cr_assert_eq(io_run(d, DISK_WRITE, b, sizeof(b), MIB, 0), 0);
	disk_close(d);
	cr_assert_eq(sh("qemu-img convert -c -O qcow2 p.qcow2 c.qcow2"), 0);
	d = open_rw(in_dir("c.qcow2"));
	read_pattern(d, 0, 192 * KIB, 1);
	read_expect(d, MIB, sizeof(b), b);
	/* A write over a compressed cluster moves it to a cluster of its own. */
	write_pattern(d, 64 * KIB + 512, 512, 9);
	read_pattern(d, 64 * KIB, 512, 1);
	read_pattern(d, 64 * KIB + 512, 512, 9);
	read_pattern(d, 65 * KIB, 63 * KIB, 1);
	disk_close(d);
	check_clean(in_dir("c.qcow2"));
}

/* ---- a random workload against a model ---- */

struct model {
	uint8_t *bytes; /* what the disk must read */
	uint8_t *bufs;
	struct io *ios;
	uint64_t size;
	uint64_t cs; /* discards zero whole clusters; 0: no discards (a backing file) */
};

/* A discard: whole clusters read as zeroes after it, parts stay. */
static void model_discard(struct model *m, uint64_t off, uint64_t len)
{
	uint64_t start = (off + m->cs - 1) / m->cs * m->cs, end = (off + len) / m->cs * m->cs;

	if (start < end)
		memset(m->bytes + start, 0, end - start);
}

/* A request that overlaps none of the batch's earlier ones (their order is free). */
static bool overlaps(const struct io *ios, unsigned n, uint64_t off, uint64_t len)
{
	for (unsigned i = 0; i < n; i++)
		if (off < ios[i].req.offset + ios[i].req.len && ios[i].req.offset < off + len)
			return true;
	return false;
}

static void model_request(struct model *m, unsigned i, unsigned *rng)
{
	static const unsigned max_sectors = 160;
	uint64_t sectors = m->size / 512, off, len;
	unsigned kind;

	do {
		*rng = *rng * 1103515245u + 12345u;
		off = (*rng >> 4) % sectors * 512;
		len = (1 + (*rng >> 20) % max_sectors) * 512;
		len = len < m->size - off ? len : m->size - off;
	} while (overlaps(m->ios, i, off, len));
	kind = (*rng >> 8) % 10;
	if (kind < 6) {
		fill(m->bufs + i * max_sectors * 512, off, len, *rng);
		io_init(&m->ios[i], DISK_WRITE, m->bufs + i * max_sectors * 512, len, off,
			kind == 5 ? DISK_F_FUA : 0);
		memcpy(m->bytes + off, m->bufs + i * max_sectors * 512, len);
	} else if (kind < 8) {
		io_init(&m->ios[i], DISK_WRITE_ZEROES, NULL, len, off,
			kind == 7 ? DISK_F_UNMAP : 0);
		memset(m->bytes + off, 0, len);
	} else if (kind == 8) {
		io_init(&m->ios[i], DISK_READ, m->bufs + i * max_sectors * 512, len, off, 0);
	} else if (m->cs != 0 && (*rng & 1)) {
		io_init(&m->ios[i], DISK_DISCARD, NULL, len, off, 0);
		model_discard(m, off, len);
	} else {
		io_init(&m->ios[i], DISK_FLUSH, NULL, 0, 0, 0);
	}
}

/* Reads of a batch: nothing else in it touched their range. */
static void model_check_reads(const struct model *m)
{
	for (unsigned i = 0; i < 32; i++) {
		const struct disk_req *r = &m->ios[i].req;

		if (r->op == DISK_READ)
			cr_assert_eq(memcmp(m->bufs + i * 160 * 512, m->bytes + r->offset, r->len),
				     0, "read %llu+%llu", (unsigned long long)r->offset,
				     (unsigned long long)r->len);
	}
}

/* Batches of 32 requests in flight, then a read of everything against the model. */
static void random_workload(const char *path, uint64_t size, const uint8_t *initial, uint64_t cs)
{
	struct model m = {.size = size, .cs = cs};
	unsigned rng = 42;
	struct disk *d = open_rw(path);

	m.bytes = malloc(size);
	m.bufs = malloc(32 * 160 * 512);
	m.ios = calloc(32, sizeof(*m.ios));
	if (initial != NULL)
		memcpy(m.bytes, initial, size);
	else
		memset(m.bytes, 0, size);
	for (int batch = 0; batch < 40; batch++) {
		for (unsigned i = 0; i < 32; i++) {
			m.ios[i].req.len = 0; /* not yet part of the batch */
			m.ios[i].req.offset = UINT64_MAX / 2;
		}
		for (unsigned i = 0; i < 32; i++)
			model_request(&m, i, &rng);
		for (unsigned i = 0; i < 32; i++)
			cr_assert_eq(disk_submit(d, &m.ios[i].req), 0);
		io_wait_all(d, m.ios, 32);
		for (unsigned i = 0; i < 32; i++)
			cr_assert_eq(m.ios[i].ret, 0, "batch %d request %u", batch, i);
		model_check_reads(&m);
	}
	for (uint64_t off = 0; off < size; off += 256 * KIB)
		read_expect(d, off, 256 * KIB, m.bytes + off);
	disk_close(d);
	check_clean(path);
	d = open_ro(path);
	for (uint64_t off = 0; off < size; off += 256 * KIB)
		read_expect(d, off, 256 * KIB, m.bytes + off);
	disk_close(d);
	free(m.bytes);
	free(m.bufs);
	free(m.ios);
}

Test(qcow2, a_random_workload_matches_a_model)
{
	need_qemu_tools();
	create("m512.qcow2", 4 * MIB, 9);
	random_workload(in_dir("m512.qcow2"), 4 * MIB, NULL, 512);
	create("m64k.qcow2", 8 * MIB, 16);
	random_workload(in_dir("m64k.qcow2"), 8 * MIB, NULL, 64 * KIB);
}

Test(qcow2, a_random_workload_over_a_backing_file_matches_a_model)
{
	uint8_t *base = malloc(4 * MIB);
	struct disk *d;

	need_qemu_tools();
	create("base.qcow2", 4 * MIB, 12);
	d = open_rw(in_dir("base.qcow2"));
	fill(base, 0, 4 * MIB, 99);
	memset(base + MIB, 0, MIB); /* a hole in the middle */
	cr_assert_eq(io_run(d, DISK_WRITE, base, MIB, 0, 0), 0);
	cr_assert_eq(io_run(d, DISK_WRITE, base + 2 * MIB, 2 * MIB, 2 * MIB, 0), 0);
	disk_close(d);
	cr_assert_eq(qcow2_create(in_dir("top.qcow2"), 0, "base.qcow2", "qcow2", 16), 0);
	random_workload(in_dir("top.qcow2"), 4 * MIB, base, 0);
	free(base);
}
