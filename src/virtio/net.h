/*
 * virtio-net (VIRTIO 1.2, 5.1): one receive and one transmit queue in front
 * of a host backend (net/backend.h). Offers MAC, STATUS (link always up) and
 * MRG_RXBUF; with a backend that takes virtio_net_hdr (tap), also checksum
 * and TSO offloads in both directions.
 *
 * Transmit: each chain is a 12-byte header then one frame, copied out of
 * guest memory (the guest may change it under us) and handed to the backend.
 * Receive: frames go into the guest's receive buffers, merged over several
 * when MRG_RXBUF is negotiated; while the guest has none, a few frames wait
 * in a bounded backlog and the rest are dropped and counted. The device
 * thread never blocks.
 */
#ifndef TABIQUE_VIRTIO_NET_H
#define TABIQUE_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/device.h"

#define NET_RX_QUEUE   0
#define NET_TX_QUEUE   1
#define NET_QUEUE_SIZE 256
#define NET_HDR_LEN    12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define NET_ETH_HLEN   14
#define NET_MAX_FRAME  65550 /* 64 KiB of TSO payload behind an Ethernet header */
#define NET_MAC_LEN    6

/* Feature bit numbers (5.1.3), as VIRTIO_F_* in device.h. */
#define VIRTIO_NET_F_CSUM	0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC	5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN	9
#define VIRTIO_NET_F_HOST_TSO4	11
#define VIRTIO_NET_F_HOST_TSO6	12
#define VIRTIO_NET_F_HOST_ECN	13
#define VIRTIO_NET_F_MRG_RXBUF	15
#define VIRTIO_NET_F_STATUS	16

/* struct virtio_net_hdr (5.1.6), little-endian. */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE	    0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_TCPV6    4
#define VIRTIO_NET_HDR_GSO_ECN	    0x80

struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};

/* Device configuration (5.1.4): mac, status, max_virtqueue_pairs. */
#define NET_CONFIG_SIZE	     10
#define VIRTIO_NET_S_LINK_UP 1

/* Counters; the control API reads them. */
struct net_stats {
	uint64_t rx_packets, rx_bytes;
	uint64_t rx_dropped; /* no guest buffer (backlog full), or the frame did not fit */
	uint64_t tx_packets, tx_bytes;
	uint64_t tx_dropped; /* malformed or oversized frames, or the backend refused them */
};

struct net;
struct net_backend;

/*
 * A new network device with this MAC in front of be, not yet on a transport.
 * The caller keeps be (it outlives reboots, which make a new device) and
 * destroys it after net_destroy. NULL when out of memory.
 */
struct net *net_create(const uint8_t mac[NET_MAC_LEN], struct net_backend *be);
void net_destroy(struct net *net);

/* What the transport drives (virtio_pci_create). */
struct virtio_device *net_virtio(struct net *net);

/* After virtio_pci_create, before virtio_pci_start: the backend's fd joins the device thread. */
int net_attach(struct net *net);

/*
 * A frame from the backend for the guest: hdr (NET_HDR_LEN bytes from a
 * vnet_hdr backend, or NULL for "no offload information") and len bytes of
 * Ethernet frame. Delivered now, kept in the backlog, or dropped and
 * counted. Device thread only (backends call it from poll, send or flush).
 */
void net_receive(struct net *net, const void *hdr, const void *frame, size_t len);

/*
 * Whether received frames are waiting for guest buffers: a backend that can
 * leave frames in the host (tap) stops reading until its rx_ready().
 */
bool net_rx_stalled(struct net *net);

/* A consistent-enough copy of the counters; any thread. */
void net_get_stats(const struct net *net, struct net_stats *out);

/* The device's own state for snapshots and migration: fixed layout, little-endian host. */
#define NET_STATE_MAGIC	  0x54454e54u /* "TNET" */
#define NET_STATE_VERSION 1

struct net_state {
	uint32_t magic;
	uint32_t version;
	uint8_t mac[NET_MAC_LEN];
	uint8_t live; /* the driver had set DRIVER_OK: receive may go on at once */
	uint8_t pad[5];
};

/*
 * With the VM paused and the device thread stopped: gives back the receive
 * buffers the device holds (empty, as the driver sees a dropped frame) and
 * drops the frames waiting for buffers, so the queue state saved next has
 * nothing outstanding; then fills st. Save it before virtio_pci_save().
 * The backend's own state (slirp's connections) is not part of it.
 */
void net_save(struct net *net, struct net_state *st);

/*
 * Checks a saved state, as untrusted input, against this device (same MAC).
 * Returns 0 or -EINVAL. Restore it after virtio_pci_restore().
 */
int net_restore(struct net *net, const struct net_state *st);

#endif
