/*
 * The contract between the hostile guests (hostile_*.c, gdrv.c) and their
 * runner (hostile_test.c): which devices sit on the bus, where the guest keeps
 * its rings, how it tells the runner which attack it is running. C only
 * (the hostile guests are freestanding C), so plain #defines and one struct.
 */
#ifndef TABIQUE_TESTS_HOSTILE_H
#define TABIQUE_TESTS_HOSTILE_H

#include <stdint.h>

#include "guest.h"

/*
 * The runner's hostile control ports, next to guest.h's. A step marker is
 * written before each attack: the runner cuts its captured log at every
 * marker and checks each piece (one NEEDS_RESET line from the device the
 * marker names, none from the others).
 */
#define HOSTILE_PORT_STEP      0x740 /* out HOSTILE_STEP(id, device type to reset, or 0) */
#define HOSTILE_PORT_NOTE      0x744 /* out any value: the runner logs it (debugging) */
#define HOSTILE_PORT_LEN       8
#define HOSTILE_STEP_ANY       0xff /* a race: at most one NEEDS_RESET, from any device */
#define HOSTILE_STEP_UNCHECKED 0xfe /* resets race the driver: any number of NEEDS_RESET */
#define HOSTILE_STEP(id, type) ((uint32_t)(id) << 8 | (uint32_t)(type))
#define HOSTILE_STEP_ID(v)     ((v) >> 8)
#define HOSTILE_STEP_TYPE(v)   ((v)&0xff)

/* A failed check: the attack's id and the check's number within it, for guest_done. */
#define HOSTILE_FAIL(id, check) ((uint32_t)(id) << 8 | (uint32_t)(check))

/* hostile_config: break-and-reset rounds that must not flood the host's log. */
#define HOSTILE_FLOOD_ROUNDS 2000

/* Virtio device types the runner attaches (VIRTIO 1.2, 5). */
#define HOSTILE_NET   1
#define HOSTILE_BLK   2
#define HOSTILE_RNG   4
#define HOSTILE_VSOCK 19

/*
 * What the runner attaches, in slot order as machine.c does (entropy, disks,
 * NICs, vsock): rng, a writable blk, a readonly blk, net on a loopback
 * backend (every frame sent comes back), vsock.
 */
#define HOSTILE_BLK_SECTORS    2048 /* the writable image: 1 MiB */
#define HOSTILE_BLK_RO_SECTORS 128  /* the readonly one, every byte HOSTILE_RO_BYTE */
#define HOSTILE_RO_BYTE	       0xa5
/* hostile_blk's last write, which the runner looks for in the image. */
#define HOSTILE_BLK_FINAL_SECTOR  9
#define HOSTILE_BLK_FINAL_BYTE(i) ((uint8_t)((i) ^ 0x5a))
#define HOSTILE_BLK_ZEROED	  100 /* written, then zeroed by WRITE_ZEROES */
#define HOSTILE_GUEST_CID	  3
#define HOSTILE_VSOCK_PORT	  1234 /* a host program listens on PATH_1234 */
#define HOSTILE_VSOCK_HELLO	  "hello from a hostile guest"

/* Written by the runner at HOSTILE_PARAMS before the start. */
#define HOSTILE_PARAMS (GUEST_PARAMS + 0x800)

struct hostile_params {
	uint32_t victim; /* hostile_ring: the device type under attack */
	uint32_t rounds; /* hostile_race: requests to race */
	uint32_t mode;	 /* hostile_race: HOSTILE_RACE_* */
	uint32_t pad;
	uint64_t ram_size; /* bytes of RAM, all below the hole */
};

/* What hostile_race's second vCPU does while the first submits requests. */
#define HOSTILE_RACE_RINGS 0 /* rewrites descriptors, indirect tables, avail entries */
#define HOSTILE_RACE_RESET 1 /* resets the device at random moments */

/*
 * Guest-physical memory the guests use: per device (in gdrv's table order) a
 * MiB with three queues' rings and buffers; above it scratch for the attacks.
 */
#define GD_DEV_BASE   0x400000
#define GD_DEV_SIZE   0x100000
#define GD_RING_SIZE  0x4000  /* desc, avail at +0x1000, used at +0x2000 */
#define GD_BUF_OFF    0x10000 /* buffers from here to the end of the device's MiB */
#define GD_SCRATCH    0x1000000
#define GD_SCRATCH_SZ 0x1000000

#endif
