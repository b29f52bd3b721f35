/*
 * virtio-vsock, the socket device (VIRTIO 1.2, 5.10): stream sockets between
 * the guest and host programs, with the host side on Unix sockets.
 *
 *   host -> guest  a host program connects to the Unix socket PATH and writes
 *                  "CONNECT <port>\n"; the device opens a stream to the guest's
 *                  port and answers "OK <hostport>\n" once the guest accepted,
 *                  or closes the socket when the guest refused (RST). From
 *                  then on the Unix socket carries the stream both ways.
 *   guest -> host  a guest connection to the host (CID 2) port P is forwarded
 *                  by connecting to the Unix socket "PATH_P"; when nothing
 *                  listens there the guest gets an RST (connection refused).
 *
 * Queues: rx (device -> driver packets), tx (driver -> device), event. Every
 * packet header the guest sends is hostile and checked: its own CID as the
 * source, the host as the destination, len equal to the payload in the chain
 * and at most VSOCK_MAX_PKT, stream type, a known op. A bad header gets an
 * RST; a chain that is not a packet at all (or a broken ring) puts the device
 * in NEEDS_RESET and drops every connection.
 *
 * Flow control is the spec's credit scheme both ways: toward the guest never
 * more than the credit it advertised (a guest that does not read stops the
 * device reading that Unix socket), toward the host at most VSOCK_BUF_ALLOC
 * bytes buffered per connection (a host program that does not read stops the
 * guest through its credit). The table holds at most max_conns connections,
 * beyond that requests get an RST (guest) or a closed socket (host).
 *
 * Threading: everything runs on the transport's device thread under its lock;
 * the host sockets live in an epoll set of the device's own, which is the one
 * fd it gives virtio_watch_fd(), because sockets come and go at run time.
 */
#ifndef TABIQUE_VIRTIO_VSOCK_H
#define TABIQUE_VIRTIO_VSOCK_H

#include <stdint.h>

#include "virtio/device.h"

#define VSOCK_CID_HOST 2
#define VSOCK_CID_MIN  3
/* The upper 32 bits of a CID are reserved (5.10.4) and 0xffffffff is "any". */
#define VSOCK_CID_MAX 0xfffffffeULL
/* PATH plus "_4294967295" must fit in sun_path (108 bytes with the NUL). */
#define VSOCK_PATH_MAX	  96
#define VSOCK_MAX_CONNS	  1024
#define VSOCK_QUEUE_SIZE  256
#define VSOCK_HDR_SIZE	  44
#define VSOCK_MAX_PKT	  (64u << 10) /* payload of one packet, both ways */
#define VSOCK_BUF_ALLOC	  (64u << 10) /* our receive buffer per connection (buf_alloc) */
#define VSOCK_NUM_QUEUES  3
#define VSOCK_QUEUE_RX	  0
#define VSOCK_QUEUE_TX	  1
#define VSOCK_QUEUE_EVENT 2

struct vsock_config {
	uint64_t cid;		       /* the guest's CID, VSOCK_CID_MIN..VSOCK_CID_MAX */
	char path[VSOCK_PATH_MAX + 1]; /* the Unix socket host programs connect to */
	unsigned max_conns;	       /* 0: VSOCK_MAX_CONNS */
};

struct vsock;

/* Counters; the control API reads them. rx: toward the guest, tx: from the guest. */
struct vsock_stats {
	uint64_t rx_packets, rx_bytes; /* packets put in the rx queue, and their payload */
	uint64_t tx_packets, tx_bytes; /* packets the guest sent, and their payload */
	uint64_t connections;	       /* open now, host-side handshakes included */
	uint64_t connections_total;    /* ever opened, both ways */
	uint64_t resets;	       /* RSTs sent to the guest */
};

/*
 * Parses the --vsock value "cid=N,socket=PATH" into cfg. Returns 0, or
 * -EINVAL after one line saying what was wrong.
 */
int vsock_parse_spec(const char *spec, struct vsock_config *cfg);

/*
 * A new socket device listening on cfg->path (a socket file left there by a
 * dead process is replaced; a live listener is not). Returns 0, or a negative
 * errno after one line saying what was wrong.
 */
int vsock_create(struct vsock **out, const struct vsock_config *cfg);
/* Closes every socket and removes the listening socket file, if still ours. */
void vsock_destroy(struct vsock *vs);

/* What the transport drives (virtio_pci_create). */
struct virtio_device *vsock_virtio(struct vsock *vs);

/*
 * Puts the host sockets on the transport's device thread: call after
 * virtio_pci_create() and before virtio_pci_start(), once per transport (the
 * device may outlive one machine and serve the next after a reboot).
 * Returns 0 or a negative errno.
 */
int vsock_attach(struct vsock *vs);

/*
 * Handles what the host sockets have ready, on the calling thread: for tests
 * and fuzzing that have no device thread. Never while the thread runs.
 */
void vsock_poll(struct vsock *vs);

/*
 * Drops every connection and tells the driver with a TRANSPORT_RESET event
 * (5.10.6.7): what a restored or migrated guest must hear, as its streams no
 * longer exist. From a device callback, or with the device thread stopped.
 */
void vsock_transport_reset(struct vsock *vs);

/* Connections in the table, host-side handshakes included. */
unsigned vsock_connections(const struct vsock *vs);

/* A consistent-enough copy of the counters; any thread. */
void vsock_get_stats(const struct vsock *vs, struct vsock_stats *out);

#endif
