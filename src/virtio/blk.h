/*
 * virtio-blk, the block device (VIRTIO 1.2, 5.2): one request queue in
 * front of a disk image (disk/disk.h). Reads and writes go to the image
 * asynchronously, straight between guest RAM and the file; completions come
 * back on the device thread through the disk's eventfd.
 *
 * Offered: SEG_MAX, BLK_SIZE (512), FLUSH, and DISCARD + WRITE_ZEROES (one
 * segment per request) on writable disks, RO on readonly ones. Without
 * FLUSH negotiated the device is write-through: every write is stable
 * before it completes.
 */
#ifndef TABIQUE_VIRTIO_BLK_H
#define TABIQUE_VIRTIO_BLK_H

#include <stdint.h>

#include "disk/disk.h"
#include "virtio/device.h"

#define BLK_QUEUE_SIZE 256
/* Data buffers per request: as Linux sizes it, the queue less header and status. */
#define BLK_SEG_MAX (BLK_QUEUE_SIZE - 2)
/* Sectors per discard or write-zeroes segment (2 GiB): fallocate does them at once. */
#define BLK_MAX_DWZ_SECTORS (1u << 22)

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX	  1
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_GEOMETRY	  4
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_TOPOLOGY	  10
#define VIRTIO_BLK_F_CONFIG_WCE	  11
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK		  0
#define VIRTIO_BLK_S_IOERR	  1
#define VIRTIO_BLK_S_UNSUPP	  2

#define VIRTIO_BLK_REQ_HDR_SIZE 16 /* le32 type, le32 reserved, le64 sector */
#define VIRTIO_BLK_DWZ_SEG_SIZE 16 /* le64 sector, le32 num_sectors, le32 flags */
#define VIRTIO_BLK_DWZ_F_UNMAP	1u
#define VIRTIO_BLK_ID_BYTES	20

/* struct virtio_blk_config (5.2.4) up to write_zeroes_may_unmap and its padding. */
#define VIRTIO_BLK_CFG_CAPACITY	       0
#define VIRTIO_BLK_CFG_SEG_MAX	       12
#define VIRTIO_BLK_CFG_BLK_SIZE	       20
#define VIRTIO_BLK_CFG_NUM_QUEUES      34
#define VIRTIO_BLK_CFG_MAX_DISCARD     36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VIRTIO_BLK_CFG_DISCARD_ALIGN   44
#define VIRTIO_BLK_CFG_MAX_WZ	       48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG      52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP    56
#define VIRTIO_BLK_CFG_SIZE	       60

struct blk;

/* Counters of completed requests; the control API reads them. */
struct blk_stats {
	uint64_t read_ops, read_bytes;
	uint64_t write_ops, write_bytes;
	uint64_t flush_ops;
	uint64_t discard_ops, discard_bytes; /* discards and write-zeroes */
	uint64_t errors; /* requests answered IOERR or UNSUPP, malformed ones included */
};

/*
 * A block device in front of disk, which the caller opened and keeps open
 * until blk_destroy() (it may outlive the device: a guest reboot makes a new
 * one on the same disk). serial (NULL or "" for none) is what GET_ID
 * answers, at most 20 characters. Returns NULL when out of memory.
 */
struct blk *blk_create(struct disk *disk, const char *serial);

/* Waits for in-flight I/O, answering nothing, then frees; NULL is fine. */
void blk_destroy(struct blk *blk);

/* What the transport drives (virtio_pci_create). */
struct virtio_device *blk_virtio(struct blk *blk);

/*
 * Watches the disk's completions on the device thread: once the transport
 * wraps the device, before it starts its thread. Returns 0 or -errno.
 */
int blk_watch_completions(struct blk *blk);

/*
 * Waits until no I/O is in flight, answering nothing: buffers in guest RAM
 * are then free. Call after the device thread stopped, before guest RAM goes.
 */
void blk_quiesce(struct blk *blk);

/* Requests the device has taken and not yet answered. */
unsigned blk_inflight(const struct blk *blk);

/* A consistent-enough copy of the counters; any thread. */
void blk_get_stats(const struct blk *blk, struct blk_stats *out);

/* The device's own state for snapshots and migration: fixed layout, little-endian host. */
#define BLK_STATE_MAGIC	  0x4b4c4254u /* "TBLK" */
#define BLK_STATE_VERSION 1

struct blk_state {
	uint32_t magic;
	uint32_t version;
	uint64_t capacity; /* sectors */
	uint8_t readonly;
	uint8_t pad[3];
	char serial[VIRTIO_BLK_ID_BYTES];
};

/*
 * With the VM paused and the device thread stopped: finishes the I/O in
 * flight (answering it in the used ring, so the queue state saved next has
 * nothing outstanding), then fills st. Save it before virtio_pci_save().
 */
void blk_save(struct blk *blk, struct blk_state *st);

/*
 * Checks a saved state, as untrusted input, against this device and its
 * disk (same capacity, mode and serial). Returns 0 or -EINVAL.
 */
int blk_restore(struct blk *blk, const struct blk_state *st);

#endif
