/*
 * libFuzzer target for virtio-blk's request parsing: the input is what a
 * hostile guest controls (its ring, descriptor tables, request headers,
 * discard segments, data) plus a header choosing the negotiated features and
 * what the driver does meanwhile. The device runs behind a stand-in
 * transport, on real images (io_uring and all) in /dev/shm.
 *
 * Input layout:
 *   0      bit 0 readonly disk, bit 1 FLUSH, bit 2 DISCARD, bit 3
 *          WRITE_ZEROES, bit 4 INDIRECT_DESC, bit 5 EVENT_IDX, bit 6 reset
 *          the device while I/O is in flight, bit 7 save/restore
 *   1      log2 of the queue size (low 3 bits, plus 1: 2..256)
 *   2..    guest RAM from gpa 0: the available ring, the used ring, the
 *          descriptor table (each at its next aligned address), then
 *          anything: headers, segments, tables, data
 *
 * Invariants checked: nothing is in flight once the device has been run
 * to the end, the device never answers more chains than it took, a saved
 * state restores; and the sanitizers watch every byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/disk.h"
#include "virtio/blk.h"
#include "virtio/queue.h"
#include "vmm/memory.h"

#define HEADER	   2
#define WINDOW	   (256u << 10)
#define IMAGE_SIZE (64u << 10) /* 128 sectors */
#define MAX_ROUNDS 64

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static struct guest_memory mem;
static struct virtqueue vq = {.name = "fuzz-blk"};
static struct disk *disks[2];
static struct blk *blks[2];
static int kicks, watch_fds[2];
static void (*handler)(struct virtio_device *, int);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct virtqueue *t_queue(struct virtio_device *d, unsigned q)
{
	(void)d;
	return q == 0 ? &vq : NULL;
}

static void t_used(struct virtio_device *d, unsigned q)
{
	(void)d;
	(void)q;
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
	(void)why;
}

static void t_config_changed(struct virtio_device *d)
{
	(void)d;
}

static int t_watch(struct virtio_device *d, int fd, void (*h)(struct virtio_device *, int))
{
	(void)d;
	(void)fd;
	handler = h;
	return 0;
}

static const struct virtio_transport_ops transport = {
    t_queue, t_used, t_kick, t_needs_reset, t_config_changed, t_watch,
};

static void open_image(unsigned i, bool readonly)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/tabique-fuzz-blk-%d-%u", (int)getpid(), i);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, IMAGE_SIZE) != 0)
		abort();
	close(fd);
	if (disk_open(&disks[i], path, DISK_FORMAT_RAW, readonly, BLK_QUEUE_SIZE) != 0)
		abort();
	unlink(path); /* the open disk keeps it */
	blks[i] = blk_create(disks[i], "fuzz");
	if (blks[i] == NULL)
		abort();
	blk_virtio(blks[i])->mem = &mem;
	blk_virtio(blks[i])->transport = &transport;
	if (blk_watch_completions(blks[i]) != 0)
		abort();
	watch_fds[i] = disks[i]->event_fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (memory_init(&mem, MEMORY_MIN) != 0)
		abort();
	open_image(0, false);
	open_image(1, true);
	return 0;
}

/* Runs the device as its thread would, until it has nothing in flight. */
static void run(struct virtio_device *dev, struct blk *blk, int fd)
{
	for (int round = 0; round < MAX_ROUNDS; round++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int k = kicks;

		if (blk_inflight(blk) > 0 && poll(&p, 1, 1000) == 1)
			handler(dev, fd);
		if (kicks != k)
			dev->ops->queue_notify(dev, 0);
		else if (blk_inflight(blk) == 0)
			return;
	}
}

/*
 * The device's own count, not the ring in guest RAM: a guest may point its
 * buffers at its own used ring, and the device then writes there for it.
 */
static void check_used(void)
{
	CHECK((uint16_t)vq.used_idx <= (uint16_t)vq.last_avail);
}

static uint64_t features_of(uint8_t flags)
{
	uint64_t f = 1ULL << 32;

	if (flags & 2)
		f |= 1ULL << VIRTIO_BLK_F_FLUSH;
	if (flags & 4)
		f |= 1ULL << VIRTIO_BLK_F_DISCARD;
	if (flags & 8)
		f |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	return f;
}

static void save_restore(struct blk *blk)
{
	struct blk_state st;

	blk_save(blk, &st);
	CHECK(blk_inflight(blk) == 0);
	CHECK(blk_restore(blk, &st) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t flags;
	uint16_t qs;
	uint64_t used, desc;
	unsigned which;
	struct virtio_device *dev;

	if (size < HEADER)
		return 0;
	flags = data[0];
	qs = (uint16_t)(1u << ((data[1] & 7) + 1));
	used = (6 + 2ULL * qs + 3) & ~3ULL;
	desc = (used + 6 + 8ULL * qs + 15) & ~15ULL;
	which = flags & 1;
	dev = blk_virtio(blks[which]);
	memset(mem.base, 0, WINDOW);
	CHECK(memory_write(&mem, 0, data + HEADER,
			   size - HEADER < WINDOW ? size - HEADER : WINDOW) == 0);
	CHECK(vq_setup(&vq, &mem, qs, desc, 0, used, flags & 32, flags & 16) == 0);
	memset(mem.base + used, 0, 4); /* the used ring is the device's: it starts empty */
	dev->features = features_of(flags);
	dev->ops->queue_notify(dev, 0);
	if (flags & 64) {
		vq_reset(&vq);
		dev->ops->reset(dev);
		CHECK(blk_inflight(blks[which]) == 0);
	} else if (flags & 128) {
		save_restore(blks[which]);
	}
	run(dev, blks[which], watch_fds[which]);
	CHECK(blk_inflight(blks[which]) == 0);
	if (vq.ready)
		check_used();
	vq_reset(&vq);
	return 0;
}
