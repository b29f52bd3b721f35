/*
 * virtio-blk without KVM: the device behind a stand-in transport, its queue
 * set up by hand in a real guest_memory, a real image file behind it (io_uring
 * and all). Requests are laid out as the spec says (5.2.6), byte by byte,
 * independently of blk.c; every chain goes through an indirect table, so that
 * any number of buffers fits. The end: one request through the real
 * virtio-pci transport and its device thread.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus/pci.h"
#include "disk/disk.h"
#include "vdriver.h"
#include "virtio/blk.h"
#include "virtio/pci.h"
#include "virtio/queue.h"

#define F_NEXT	   1
#define F_WRITE	   2
#define F_INDIRECT 4

#define MEM	  (64ULL << 20)
#define DESC	  0x10000ULL
#define AVAIL	  0x20000ULL
#define USED	  0x30000ULL
#define HDR(h)	  (0x100000ULL + 64ULL * (h)) /* header at +0, status at +32 */
#define STATUS(h) (HDR(h) + 32)
#define IND(h)	  (0x400000ULL + 0x2000ULL * (h)) /* up to 512 entries per table */
#define DATA	  0x1000000ULL
#define SIZE	  (1u << 20) /* the image: 2048 sectors */
#define SECTORS	  (SIZE / 512)

#define FEATURES_RW                                                                                \
	(1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_BLK_SIZE |                            \
	 1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_DISCARD |                               \
	 1ULL << VIRTIO_BLK_F_WRITE_ZEROES)

struct buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

static struct guest_memory mem;
static struct virtqueue vq = {.name = "test-blk"};
static char dir[64], path[128];
static int file; /* our own fd on the image */
static struct disk *disk;
static struct blk *blk;
static struct virtio_device *dev;
static uint16_t qsize, avail_idx, next_head;

/* ---- the stand-in transport ---- */

static int used_calls, kicks, resets;
static char reset_why[128];
static int watch_fd = -1;
static void (*watch_handler)(struct virtio_device *, int);

static struct virtqueue *t_queue(struct virtio_device *d, unsigned q)
{
	(void)d;
	return q == 0 ? &vq : NULL;
}

static void t_used(struct virtio_device *d, unsigned q)
{
	(void)d;
	(void)q;
	used_calls++;
}

static void t_kick(struct virtio_device *d, unsigned q)
{
	(void)d;
	(void)q;
	kicks++;
}

static void t_needs_reset(struct virtio_device *d, const char *why)
{
	(void)d;
	resets++;
	snprintf(reset_why, sizeof(reset_why), "%s", why);
}

static void t_config_changed(struct virtio_device *d)
{
	(void)d;
}

static int t_watch(struct virtio_device *d, int fd, void (*h)(struct virtio_device *, int))
{
	(void)d;
	watch_fd = fd;
	watch_handler = h;
	return 0;
}

static const struct virtio_transport_ops transport = {
    t_queue, t_used, t_kick, t_needs_reset, t_config_changed, t_watch,
};

/* ---- the image ---- */

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + off / 512 + 1);
}

static void make_image(const char *where)
{
	uint8_t *b = malloc(SIZE);

	snprintf(dir, sizeof(dir), "%s/tabique-blk-XXXXXX", where);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/disk.img", dir);
	for (uint64_t i = 0; i < SIZE; i++)
		b[i] = pattern(i);
	file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(file, 0);
	cr_assert_eq(pwrite(file, b, SIZE, 0), SIZE);
	free(b);
}

static void start_in(const char *where, bool readonly, uint64_t features, uint16_t size)
{
	make_image(where);
	cr_assert_eq(memory_init(&mem, MEM), 0);
	cr_assert_eq(disk_open(&disk, path, DISK_FORMAT_RAW, readonly, BLK_QUEUE_SIZE), 0);
	blk = blk_create(disk, "tabique-serial-1");
	cr_assert_not_null(blk);
	dev = blk_virtio(blk);
	dev->mem = &mem;
	dev->transport = &transport;
	dev->features = features | 1ULL << 32;
	cr_assert_eq(blk_watch_completions(blk), 0);
	cr_assert_eq(watch_fd, disk->event_fd);
	cr_assert_eq(vq_setup(&vq, &mem, size, DESC, AVAIL, USED, false, true), 0);
	qsize = size;
}

static void start(bool readonly, uint64_t features)
{
	start_in("/tmp", readonly, features, 64);
}

static void stop(void)
{
	if (blk == NULL)
		return;
	blk_destroy(blk);
	disk_close(disk);
	memory_destroy(&mem);
	close(file);
	unlink(path);
	rmdir(dir);
	blk = NULL;
	vq_reset(&vq);
	avail_idx = next_head = 0;
	used_calls = kicks = resets = 0;
}

TestSuite(blk, .fini = stop);

/* ---- the driver side ---- */

static void put(uint64_t gpa, uint64_t v, unsigned len)
{
	cr_assert_eq(memory_write(&mem, gpa, &v, len), 0);
}

static uint64_t get(uint64_t gpa, unsigned len)
{
	uint64_t v = 0;

	cr_assert_eq(memory_read(&mem, gpa, &v, len), 0);
	return v;
}

static void header(uint16_t h, uint32_t type, uint64_t sector)
{
	put(HDR(h), type, 4);
	put(HDR(h) + 4, 0, 4);
	put(HDR(h) + 8, sector, 8);
	put(STATUS(h), 0xee, 1); /* never a status value */
}

/* Publishes a chain of n buffers through an indirect table; returns its head. */
static uint16_t submit(const struct buf *b, unsigned n)
{
	uint16_t h = next_head++ % qsize;

	for (unsigned i = 0; i < n; i++) {
		uint64_t d = IND(h) + 16ULL * i;

		put(d, b[i].gpa, 8);
		put(d + 8, b[i].len, 4);
		put(d + 12, (i + 1 < n ? F_NEXT : 0) | (b[i].write ? F_WRITE : 0), 2);
		put(d + 14, i + 1, 2);
	}
	put(DESC + 16ULL * h, IND(h), 8);
	put(DESC + 16ULL * h + 8, 16 * n, 4);
	put(DESC + 16ULL * h + 12, F_INDIRECT, 2);
	put(AVAIL + 4 + 2ULL * (avail_idx % qsize), h, 2);
	avail_idx++;
	put(AVAIL + 2, avail_idx, 2);
	return h;
}

/* The usual layout: header, one data buffer, status. */
static uint16_t request(uint32_t type, uint64_t sector, uint64_t data, uint32_t len, bool write)
{
	uint16_t h = next_head % qsize;
	struct buf b[3] = {{HDR(h), 16, false}, {data, len, write}, {STATUS(h), 1, true}};

	header(h, type, sector);
	if (len == 0) {
		b[1] = b[2];
		return submit(b, 2);
	}
	return submit(b, 3);
}

static uint16_t used_idx(void)
{
	return (uint16_t)get(USED + 2, 2);
}

static void used_elem(uint16_t i, uint32_t *id, uint32_t *len)
{
	*id = (uint32_t)get(USED + 4 + 8ULL * (i % qsize), 4);
	*len = (uint32_t)get(USED + 8 + 8ULL * (i % qsize), 4);
}

/* Runs the device as its thread would until n chains are used (or 10 s pass). */
static void serve(uint16_t n)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	dev->ops->queue_notify(dev, 0);
	while (used_idx() != n) {
		struct pollfd p = {.fd = watch_fd, .events = POLLIN};
		int k = kicks;

		if (poll(&p, 1, 100) == 1)
			watch_handler(dev, watch_fd);
		if (kicks != k)
			dev->ops->queue_notify(dev, 0);
		clock_gettime(CLOCK_MONOTONIC, &t);
		cr_assert_lt(t.tv_sec - t0.tv_sec, 10, "only %u of %u chains used", used_idx(), n);
	}
}

/* Serves one chain and checks what the device answered. */
static void expect(uint16_t head, uint8_t status, uint32_t used_len)
{
	uint16_t n = (uint16_t)(used_idx() + 1);
	uint32_t id, len;

	serve(n);
	used_elem((uint16_t)(n - 1), &id, &len);
	cr_assert_eq(id, head);
	cr_assert_eq(get(STATUS(head), 1), status, "status %lu, want %u",
		     (unsigned long)get(STATUS(head), 1), status);
	cr_assert_eq(len, used_len, "used length %u, want %u", len, used_len);
	cr_assert_eq(blk_inflight(blk), 0);
}

static bool data_is(uint64_t gpa, uint64_t off, uint32_t len)
{
	const uint8_t *p = gpa_to_hva(&mem, gpa, len);

	for (uint32_t i = 0; i < len; i++)
		if (p[i] != pattern(off + i))
			return false;
	return true;
}

static bool file_is(uint64_t off, uint32_t len, int (*want)(uint64_t))
{
	uint8_t *b = malloc(len);
	bool ok = pread(file, b, len, (off_t)off) == (ssize_t)len;

	for (uint32_t i = 0; ok && i < len; i++)
		ok = b[i] == want(off + i);
	free(b);
	return ok;
}

static int zero(uint64_t off)
{
	(void)off;
	return 0;
}

static int orig(uint64_t off)
{
	return pattern(off);
}

static int inverted(uint64_t off)
{
	return (uint8_t)~pattern(off);
}

/* ---- configuration ---- */

Test(blk, configuration_space)
{
	uint8_t cfg[VIRTIO_BLK_CFG_SIZE];
	uint64_t capacity;
	uint32_t v;

	start(false, FEATURES_RW);
	cr_assert_eq(dev->ops->device_id, 2);
	cr_assert_eq(dev->ops->features, FEATURES_RW);
	cr_assert_eq(dev->ops->config_size, 60);
	dev->ops->config_read(dev, 0, cfg, sizeof(cfg));
	memcpy(&capacity, cfg, 8);
	cr_assert_eq(capacity, SECTORS);
	memcpy(&v, cfg + 12, 4);
	cr_assert_eq(v, BLK_QUEUE_SIZE - 2, "seg_max");
	memcpy(&v, cfg + 20, 4);
	cr_assert_eq(v, 512, "blk_size");
	memcpy(&v, cfg + 36, 4);
	cr_assert_eq(v, BLK_MAX_DWZ_SECTORS, "max_discard_sectors");
	memcpy(&v, cfg + 40, 4);
	cr_assert_eq(v, 1, "max_discard_seg");
	memcpy(&v, cfg + 48, 4);
	cr_assert_eq(v, BLK_MAX_DWZ_SECTORS, "max_write_zeroes_sectors");
	memcpy(&v, cfg + 52, 4);
	cr_assert_eq(v, 1, "max_write_zeroes_seg");
	cr_assert_eq(cfg[56], 1, "write_zeroes_may_unmap");
	cr_assert_eq(cfg[57] | cfg[58] | cfg[59] | cfg[33], 0, "padding is zero");
	/* Any window of it, as the transport asks for it. */
	dev->ops->config_read(dev, 1, cfg, 2);
	cr_assert_eq(cfg[0], (SECTORS >> 8) & 0xff);
}

Test(blk, readonly_offers_ro_and_no_writing_features)
{
	start(true, 0);
	cr_assert(dev->ops->features & (1ULL << VIRTIO_BLK_F_RO));
	cr_assert_not(dev->ops->features & (1ULL << VIRTIO_BLK_F_DISCARD));
	cr_assert_not(dev->ops->features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
}

/* ---- reads and writes ---- */

Test(blk, read)
{
	uint16_t h;

	start(false, FEATURES_RW);
	h = request(VIRTIO_BLK_T_IN, 3, DATA, 4096, true);
	expect(h, VIRTIO_BLK_S_OK, 4096 + 1);
	cr_assert(data_is(DATA, 3 * 512, 4096));
	cr_assert_geq(used_calls, 1, "the driver was told");
}

Test(blk, read_into_many_buffers_with_the_header_split_and_status_shared)
{
	uint16_t h = 0;
	/* Header in 3 pieces, 5 data buffers, the last one also holding the status byte. */
	struct buf b[8] = {
	    {HDR(h), 5, false},	     {HDR(h) + 5, 1, false},	    {HDR(h) + 6, 10, false},
	    {DATA, 512, true},	     {DATA + 8192, 100, true},	    {DATA + 16384, 924, true},
	    {DATA + 24576, 1, true}, {DATA + 32768, 511 + 1, true},
	};
	uint8_t *status;

	start(false, FEATURES_RW);
	status = gpa_to_hva(&mem, DATA + 32768 + 511, 1);
	header(h, VIRTIO_BLK_T_IN, 10);
	*status = 0xee;
	cr_assert_eq(submit(b, 8), h);
	serve(1);
	cr_assert_eq(*status, VIRTIO_BLK_S_OK);
	cr_assert(data_is(DATA, 10 * 512, 512));
	cr_assert(data_is(DATA + 8192, 11 * 512, 100));
	cr_assert(data_is(DATA + 16384, 11 * 512 + 100, 924));
	cr_assert(data_is(DATA + 24576, 13 * 512, 1));
	cr_assert(data_is(DATA + 32768, 13 * 512 + 1, 511));
	cr_assert_eq(get(STATUS(h), 1), 0xee, "the status went where the chain ends");
}

Test(blk, write_then_read_back)
{
	uint8_t *p;
	uint16_t h;

	start(false, FEATURES_RW);
	p = gpa_to_hva(&mem, DATA, 8192);
	for (unsigned i = 0; i < 8192; i++)
		p[i] = (uint8_t)~pattern(100 * 512 + i);
	h = request(VIRTIO_BLK_T_OUT, 100, DATA, 8192, false);
	expect(h, VIRTIO_BLK_S_OK, 1);
	cr_assert(file_is(100 * 512, 8192, inverted));
	cr_assert(file_is(99 * 512, 512, orig), "nothing before");
	cr_assert(file_is(116 * 512, 512, orig), "nothing after");
	memset(p, 0, 8192);
	h = request(VIRTIO_BLK_T_IN, 100, DATA, 8192, true);
	expect(h, VIRTIO_BLK_S_OK, 8193);
	cr_assert_eq(p[0], (uint8_t)~pattern(100 * 512));
}

Test(blk, write_with_the_header_and_data_in_one_buffer)
{
	uint16_t h = 0;
	struct buf b[2] = {{HDR(h), 16 + 512, false}, {STATUS(h), 1, true}};
	uint8_t *p;

	start(false, FEATURES_RW);
	header(h, VIRTIO_BLK_T_OUT, 7);
	p = gpa_to_hva(&mem, HDR(h) + 16, 512);
	for (unsigned i = 0; i < 512; i++)
		p[i] = (uint8_t)~pattern(7 * 512 + i);
	/* The status byte is elsewhere: HDR(h) + 16 .. + 528 overlaps STATUS(h), so move it. */
	b[1].gpa = DATA;
	submit(b, 2);
	serve(1);
	cr_assert_eq(get(DATA, 1), VIRTIO_BLK_S_OK);
	cr_assert(file_is(7 * 512, 512, inverted));
}

Test(blk, write_through_without_flush_negotiated)
{
	uint16_t h;

	start(false, FEATURES_RW & ~(1ULL << VIRTIO_BLK_F_FLUSH));
	memset(gpa_to_hva(&mem, DATA, 4096), 0, 4096);
	h = request(VIRTIO_BLK_T_OUT, 0, DATA, 4096, false);
	expect(h, VIRTIO_BLK_S_OK, 1);
	cr_assert(file_is(0, 4096, zero));
}

Test(blk, zero_length_transfers_are_fine)
{
	uint16_t h;

	start(false, FEATURES_RW);
	h = request(VIRTIO_BLK_T_IN, 5, 0, 0, true);
	expect(h, VIRTIO_BLK_S_OK, 1);
	h = request(VIRTIO_BLK_T_OUT, SECTORS, 0, 0, false);
	expect(h, VIRTIO_BLK_S_OK, 1);
}

Test(blk, flush)
{
	uint16_t h;

	start(false, FEATURES_RW);
	h = request(VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	expect(h, VIRTIO_BLK_S_OK, 1);
}

/* ---- GET_ID ---- */

Test(blk, get_id)
{
	char id[20];
	uint16_t h;

	start(false, FEATURES_RW);
	memset(gpa_to_hva(&mem, DATA, 20), 0xff, 20);
	h = request(VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true);
	expect(h, VIRTIO_BLK_S_OK, 21);
	memcpy(id, gpa_to_hva(&mem, DATA, 20), 20);
	cr_assert_eq(memcmp(id, "tabique-serial-1\0\0\0\0", 20), 0, "NUL-padded");
	h = request(VIRTIO_BLK_T_GET_ID, 0, DATA, 16, true);
	expect(h, VIRTIO_BLK_S_IOERR, 1);
	h = request(VIRTIO_BLK_T_GET_ID, 0, DATA, 64, true);
	expect(h, VIRTIO_BLK_S_IOERR, 1);
}

Test(blk, get_id_of_20_characters_has_no_nul)
{
	struct blk *b2;

	start(false, FEATURES_RW);
	b2 = blk_create(disk, "12345678901234567890");
	cr_assert_not_null(b2);
	blk_destroy(blk);
	blk = b2;
	dev = blk_virtio(blk);
	dev->mem = &mem;
	dev->transport = &transport;
	dev->features = FEATURES_RW | 1ULL << 32;
	cr_assert_eq(blk_watch_completions(blk), 0);
	memset(gpa_to_hva(&mem, DATA, 21), 0xff, 21);
	expect(request(VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true), VIRTIO_BLK_S_OK, 21);
	cr_assert_eq(memcmp(gpa_to_hva(&mem, DATA, 20), "12345678901234567890", 20), 0);
	cr_assert_eq(get(DATA + 20, 1), 0xff, "nothing past the 20 bytes");
}

/* ---- out of range, huge, malformed ---- */

Test(blk, out_of_range_sectors_are_ioerr)
{
	start(false, FEATURES_RW);
	expect(request(VIRTIO_BLK_T_IN, SECTORS, DATA, 512, true), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_IN, SECTORS - 1, DATA, 1024, true), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_OUT, SECTORS - 1, DATA, 1024, false), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_IN, SECTORS - 1, DATA, 512, true), VIRTIO_BLK_S_OK, 513);
	cr_assert(file_is(SIZE - 1024, 1024, orig), "nothing written");
}

Test(blk, sectors_that_overflow_are_ioerr)
{
	start(false, FEATURES_RW);
	expect(request(VIRTIO_BLK_T_IN, UINT64_MAX, DATA, 512, true), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_IN, UINT64_MAX / 512 + 1, DATA, 512, true), VIRTIO_BLK_S_IOERR,
	       1);
	expect(request(VIRTIO_BLK_T_OUT, 1ULL << 63, DATA, 512, false), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_IN, UINT64_MAX - 1, 0, 0, true), VIRTIO_BLK_S_IOERR, 1);
}

Test(blk, huge_and_odd_lengths_are_ioerr)
{
	start(false, FEATURES_RW);
	/* 32 MiB: more than the disk, in RAM all the same. */
	expect(request(VIRTIO_BLK_T_IN, 0, DATA, 32u << 20, true), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_IN, 0, DATA, 511, true), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_OUT, 0, DATA, 513, false), VIRTIO_BLK_S_IOERR, 1);
	cr_assert(file_is(0, 4096, orig));
}

Test(blk, malformed_headers_are_ioerr)
{
	struct buf b[3] = {{HDR(0), 8, false}, {DATA, 512, true}, {STATUS(0), 1, true}};
	uint16_t h;

	start(false, FEATURES_RW);
	header(0, VIRTIO_BLK_T_IN, 0);
	h = submit(b, 3); /* an 8-byte header */
	expect(h, VIRTIO_BLK_S_IOERR, 1);
	/* Only a status byte. */
	header(1, VIRTIO_BLK_T_IN, 0);
	b[0] = (struct buf){STATUS(1), 1, true};
	expect(submit(b, 1), VIRTIO_BLK_S_IOERR, 1);
	/* IN with readable data after the header. */
	header(2, VIRTIO_BLK_T_IN, 0);
	b[0] = (struct buf){HDR(2), 16, false};
	b[1] = (struct buf){DATA, 512, false};
	b[2] = (struct buf){STATUS(2), 1, true};
	expect(submit(b, 3), VIRTIO_BLK_S_IOERR, 1);
	/* OUT with writable data before the status. */
	header(3, VIRTIO_BLK_T_OUT, 0);
	b[0] = (struct buf){HDR(3), 16, false};
	b[1] = (struct buf){DATA, 512, true};
	b[2] = (struct buf){STATUS(3), 1, true};
	expect(submit(b, 3), VIRTIO_BLK_S_IOERR, 1);
	cr_assert(file_is(0, 4096, orig));
	cr_assert_eq(resets, 0, "answered, not broken");
}

Test(blk, unknown_types_are_unsupp)
{
	static const uint32_t types[] = {2, 3, 5, 10, 14, 15, 16, 99, 0x80000000u, UINT32_MAX};

	start(false, FEATURES_RW);
	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		expect(request(types[i], 0, DATA, 512, true), VIRTIO_BLK_S_UNSUPP, 1);
}

Test(blk, a_chain_without_status_byte_needs_reset, .init = cr_redirect_stderr)
{
	struct buf b[2] = {{HDR(0), 16, false}, {DATA, 512, false}};

	start(false, FEATURES_RW);
	header(0, VIRTIO_BLK_T_OUT, 0);
	submit(b, 2);
	dev->ops->queue_notify(dev, 0);
	cr_assert_eq(resets, 1);
	cr_assert_not_null(strstr(reset_why, "status"), "%s", reset_why);
	cr_assert_eq(used_idx(), 0, "nothing can be answered");
	cr_assert_eq(blk_inflight(blk), 0);
	cr_assert(file_is(0, 512, orig));
}

Test(blk, more_buffers_than_seg_max_needs_reset, .init = cr_redirect_stderr)
{
	struct buf b[300];

	start(false, FEATURES_RW);
	header(0, VIRTIO_BLK_T_IN, 0);
	b[0] = (struct buf){HDR(0), 16, false};
	for (unsigned i = 1; i < 299; i++)
		b[i] = (struct buf){DATA + 512ULL * i, 512, true};
	b[299] = (struct buf){STATUS(0), 1, true};
	submit(b, 300);
	dev->ops->queue_notify(dev, 0);
	cr_assert_eq(resets, 1);
	cr_assert_eq(used_idx(), 0);
}

Test(blk, broken_rings_stop_the_device)
{
	start(false, FEATURES_RW);
	put(AVAIL + 4, 1000, 2); /* head out of range */
	put(AVAIL + 2, 1, 2);
	dev->ops->queue_notify(dev, 0);
	cr_assert(vq.broken, "the transport turns this into NEEDS_RESET");
	cr_assert_eq(blk_inflight(blk), 0);
}

/* ---- readonly ---- */

Test(blk, readonly_refuses_writes)
{
	start(true, 1ULL << VIRTIO_BLK_F_RO | 1ULL << VIRTIO_BLK_F_FLUSH);
	memset(gpa_to_hva(&mem, DATA, 512), 0, 512);
	expect(request(VIRTIO_BLK_T_OUT, 0, DATA, 512, false), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_IN, 1, DATA, 512, true), VIRTIO_BLK_S_OK, 513);
	cr_assert(data_is(DATA, 512, 512));
	expect(request(VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK, 1);
	put(DATA, 0, 8);
	put(DATA + 8, 8, 4);
	put(DATA + 12, 0, 4);
	expect(request(VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false), VIRTIO_BLK_S_UNSUPP, 1);
	expect(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false), VIRTIO_BLK_S_UNSUPP, 1);
	cr_assert(file_is(0, SIZE, orig));
}

Test(blk, readonly_refuses_writes_even_with_features_it_did_not_offer)
{
	start(true, FEATURES_RW);
	put(DATA, 0, 8);
	put(DATA + 8, 8, 4);
	put(DATA + 12, 0, 4);
	expect(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false), VIRTIO_BLK_S_IOERR, 1);
	cr_assert(file_is(0, SIZE, orig));
}

/* ---- discard and write zeroes ---- */

static void segment(uint64_t gpa, uint64_t sector, uint32_t n, uint32_t flags)
{
	put(gpa, sector, 8);
	put(gpa + 8, n, 4);
	put(gpa + 12, flags, 4);
}

static void write_zeroes_work(void)
{
	struct stat before, after;

	fstat(file, &before);
	segment(DATA, 16, 32, 0);
	expect(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false), VIRTIO_BLK_S_OK, 1);
	cr_assert(file_is(16 * 512, 32 * 512, zero));
	cr_assert(file_is(15 * 512, 512, orig));
	cr_assert(file_is(48 * 512, 512, orig));
	segment(DATA, 100, 9, VIRTIO_BLK_DWZ_F_UNMAP);
	expect(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false), VIRTIO_BLK_S_OK, 1);
	cr_assert(file_is(100 * 512, 9 * 512, zero));
	cr_assert(file_is(109 * 512, 512, orig));
	segment(DATA, SECTORS - 8, 8, VIRTIO_BLK_DWZ_F_UNMAP);
	expect(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false), VIRTIO_BLK_S_OK, 1);
	cr_assert(file_is(SIZE - 4096, 4096, zero));
	fstat(file, &after);
	cr_assert_eq(after.st_size, before.st_size, "the size stays");
}

Test(blk, write_zeroes)
{
	start(false, FEATURES_RW);
	write_zeroes_work();
}

Test(blk, write_zeroes_where_fallocate_cannot_zero_ranges)
{
	/* tmpfs punches holes but has no FALLOC_FL_ZERO_RANGE: zeroes get written. */
	start_in("/dev/shm", false, FEATURES_RW, 64);
	write_zeroes_work();
}

Test(blk, write_zeroes_write_through)
{
	start(false, FEATURES_RW & ~(1ULL << VIRTIO_BLK_F_FLUSH));
	write_zeroes_work();
}

Test(blk, discard)
{
	start(false, FEATURES_RW);
	segment(DATA, 8, 16, 0);
	expect(request(VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false), VIRTIO_BLK_S_OK, 1);
	cr_assert(file_is(7 * 512, 512, orig), "nothing before");
	cr_assert(file_is(24 * 512, 512, orig), "nothing after");
	segment(DATA, 0, 0, 0);
	expect(request(VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false), VIRTIO_BLK_S_OK, 1);
}

Test(blk, discard_and_write_zeroes_rules)
{
	start(false, FEATURES_RW);
	/* 5.2.6.2: unmap on a discard, or an unknown flag, is UNSUPP. */
	segment(DATA, 0, 8, VIRTIO_BLK_DWZ_F_UNMAP);
	expect(request(VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false), VIRTIO_BLK_S_UNSUPP, 1);
	segment(DATA, 0, 8, 2);
	expect(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false), VIRTIO_BLK_S_UNSUPP, 1);
	/* Range, size and segment count. */
	segment(DATA, SECTORS - 4, 8, 0);
	expect(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false), VIRTIO_BLK_S_IOERR, 1);
	segment(DATA, UINT64_MAX - 2, 8, 0);
	expect(request(VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false), VIRTIO_BLK_S_IOERR, 1);
	segment(DATA, 0, BLK_MAX_DWZ_SECTORS + 1, 0);
	expect(request(VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false), VIRTIO_BLK_S_IOERR, 1);
	segment(DATA + 16, 0, 8, 0);
	segment(DATA, 0, 8, 0);
	expect(request(VIRTIO_BLK_T_DISCARD, 0, DATA, 32, false), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 12, false), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, 0, 0, false), VIRTIO_BLK_S_IOERR, 1);
	cr_assert(file_is(0, SIZE, orig));
}

Test(blk, discard_and_write_zeroes_need_their_features)
{
	start(false, 1ULL << VIRTIO_BLK_F_FLUSH);
	segment(DATA, 0, 8, 0);
	expect(request(VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false), VIRTIO_BLK_S_UNSUPP, 1);
	expect(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false), VIRTIO_BLK_S_UNSUPP, 1);
	cr_assert(file_is(0, SIZE, orig));
}

/* ---- many requests, resets, a shrinking image ---- */

Test(blk, more_requests_than_slots_wait_their_turn)
{
	/* A ring of 512 (the stand-in transport allows it) against 256 slots. */
	unsigned n = 400;

	start_in("/tmp", false, FEATURES_RW, 512);
	for (unsigned i = 0; i < n; i++)
		request(VIRTIO_BLK_T_IN, i % SECTORS, DATA + 512ULL * i, 512, true);
	dev->ops->queue_notify(dev, 0);
	cr_assert_leq(blk_inflight(blk), BLK_QUEUE_SIZE);
	serve((uint16_t)n);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(get(STATUS(i), 1), VIRTIO_BLK_S_OK, "request %u", i);
		cr_assert(data_is(DATA + 512ULL * i, (i % SECTORS) * 512ULL, 512), "request %u", i);
	}
	cr_assert_eq(blk_inflight(blk), 0);
}

Test(blk, a_full_ring_of_mixed_requests)
{
	start_in("/tmp", false, FEATURES_RW, 256);
	for (unsigned i = 0; i < 256; i++) {
		uint32_t type = i % 3 == 0 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;

		if (i % 17 == 0)
			request(VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
		else
			request(type, 1024 + i, DATA + 4096ULL * i, 4096, type == VIRTIO_BLK_T_IN);
	}
	serve(256);
	for (unsigned i = 0; i < 256; i++)
		cr_assert_eq(get(STATUS(i), 1), VIRTIO_BLK_S_OK, "request %u", i);
}

Test(blk, reset_waits_for_inflight_io_and_answers_nothing)
{
	uint16_t answered;

	start(false, FEATURES_RW);
	/* Out of the page cache, so that reads are still in flight at the reset. */
	cr_assert_eq(fdatasync(file), 0);
	cr_assert_eq(posix_fadvise(file, 0, 0, POSIX_FADV_DONTNEED), 0);
	for (unsigned i = 0; i < 32; i++)
		request(VIRTIO_BLK_T_IN, 64ULL * i, DATA + 32768ULL * i, 32768, true);
	dev->ops->queue_notify(dev, 0);
	answered = used_idx(); /* those that completed during the submission */
	vq_reset(&vq);	       /* what the transport does first */
	dev->ops->reset(dev);
	cr_assert_eq(blk_inflight(blk), 0, "no read may land after the reset");
	cr_assert_eq(used_idx(), answered, "nothing answered by the reset");
	/* A reset device works again. */
	cr_assert_eq(vq_setup(&vq, &mem, 64, DESC, AVAIL, USED, false, true), 0);
	put(USED + 2, 0, 2);
	put(AVAIL + 2, 0, 2);
	avail_idx = next_head = 0;
	expect(request(VIRTIO_BLK_T_IN, 0, DATA, 512, true), VIRTIO_BLK_S_OK, 513);
}

Test(blk, an_image_shrunk_under_us_gives_ioerr)
{
	start(false, FEATURES_RW);
	cr_assert_eq(ftruncate(file, SIZE / 2), 0);
	expect(request(VIRTIO_BLK_T_IN, SECTORS - 1, DATA, 512, true), VIRTIO_BLK_S_IOERR, 1);
	expect(request(VIRTIO_BLK_T_IN, 0, DATA, 512, true), VIRTIO_BLK_S_OK, 513);
}

/* ---- snapshots ---- */

Test(blk, save_answers_inflight_requests_and_restore_checks_the_disk)
{
	struct blk_state st, bad;

	start(false, FEATURES_RW);
	for (unsigned i = 0; i < 8; i++)
		request(VIRTIO_BLK_T_IN, i, DATA + 512ULL * i, 512, true);
	dev->ops->queue_notify(dev, 0);
	blk_save(blk, &st);
	cr_assert_eq(blk_inflight(blk), 0);
	cr_assert_eq(used_idx(), 8, "answered before the queue state is saved");
	cr_assert_eq(st.capacity, SECTORS);
	cr_assert_eq(blk_restore(blk, &st), 0);
	bad = st;
	bad.magic ^= 1;
	cr_assert_eq(blk_restore(blk, &bad), -EINVAL);
	bad = st;
	bad.capacity++;
	cr_assert_eq(blk_restore(blk, &bad), -EINVAL, "a resized image");
	bad = st;
	bad.readonly = 1;
	cr_assert_eq(blk_restore(blk, &bad), -EINVAL);
	bad = st;
	bad.serial[0] ^= 1;
	cr_assert_eq(blk_restore(blk, &bad), -EINVAL);
	bad = st;
	bad.version = 2;
	cr_assert_eq(blk_restore(blk, &bad), -EINVAL);
}

/* ---- through the real virtio-pci transport and its device thread ---- */

static int sink_alloc(void *o)
{
	int *next = o;

	return (*next)++;
}

static int sink_route(void *o, int h, uint64_t addr, uint32_t data)
{
	(void)o;
	(void)h;
	(void)addr;
	(void)data;
	return 0;
}

static void sink_raise(void *o, int h)
{
	(void)o;
	(void)h;
}

static void sink_release(void *o, int h)
{
	(void)o;
	(void)h;
}

static const struct pci_msi_ops sink_ops = {sink_alloc, sink_route, sink_raise, sink_release};

Test(blk_pci, a_read_served_by_the_device_thread)
{
	struct bus mmio;
	struct pci_bus pb;
	int next = 0;
	struct pci_bus_config cfg = {
	    .mmio = &mmio,
	    .ecam_base = VD_ECAM,
	    .mmio32_base = LAYOUT_PCI_MMIO,
	    .mmio32_end = LAYOUT_PCI_MMIO_END,
	    .msi = {&sink_ops, &next},
	};
	struct virtio_pci *vp;
	struct vdrv d;
	uint64_t gpa[3] = {VD_BUF, VD_BUF + 0x1000, VD_BUF + 0x2000};
	uint32_t len[3] = {16, 4096, 1};
	bool w[3] = {false, true, true};
	struct timespec ms = {0, 1000000};

	make_image("/tmp");
	cr_assert_eq(memory_init(&mem, VD_MEM_SIZE), 0);
	bus_init(&mmio, "mmio");
	cr_assert_eq(pci_bus_init(&pb, &cfg), 0);
	cr_assert_eq(disk_open(&disk, path, DISK_FORMAT_RAW, false, BLK_QUEUE_SIZE), 0);
	blk = blk_create(disk, NULL);
	cr_assert_eq(virtio_pci_create(&vp, blk_virtio(blk), &mem, -1), 0);
	cr_assert_eq(blk_watch_completions(blk), 0);
	cr_assert_eq(pci_add_device(&pb, virtio_pci_device(vp)), 0);
	vd_probe(&d, &mmio, &mem, 1 << 3);
	cr_assert_eq(vd_cfg_read(&d, 0x02, 2), 0x1042, "virtio block: 0x1040 + 2");
	cr_assert_eq(vd_mread(&d, d.bar + d.device, 8), SECTORS, "capacity through the BAR");
	vd_enable_msix(&d, 2);
	cr_assert(vd_negotiate(&d, VD_VERSION_1 | FEATURES_RW) & VD_FEATURES_OK);
	vd_setup_queue(&d, 0, VD_QSIZE, 1);
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	cr_assert_eq(virtio_pci_start(vp), 0);
	put(VD_BUF, VIRTIO_BLK_T_IN, 4);
	put(VD_BUF + 8, 42, 8);
	vd_add_chain(&d, 0, gpa, len, w, 3);
	vd_notify(&d, 0);
	for (int i = 0; i < 5000 && vd_used_idx(&d, 0) != 1; i++)
		nanosleep(&ms, NULL);
	cr_assert_eq(vd_used_idx(&d, 0), 1);
	cr_assert_eq(get(VD_BUF + 0x2000, 1), VIRTIO_BLK_S_OK);
	cr_assert(data_is(VD_BUF + 0x1000, 42 * 512, 4096));
	vd_set_status(&d, 0); /* a reset with the thread running */
	virtio_pci_stop(vp);
	pci_bus_destroy(&pb);
	virtio_pci_destroy(vp);
	stop();
	bus_destroy(&mmio);
}
