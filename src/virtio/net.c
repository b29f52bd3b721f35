#include "virtio/net.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "net/backend.h"
#include "virtio/queue.h"

/* Transmit chains longer than this are dropped: Linux uses at most MAX_SKB_FRAGS + 2. */
#define NET_TX_MAX_IOV 64
/* Per receive chain: Linux's "big packets" (no MRG_RXBUF, TSO) chain 19 buffers. */
#define NET_RX_SLOT_IOV 32
/* Receive chains one merged frame may use: 64 KiB in buffers of 1 KiB. */
#define NET_RX_MAX_MERGE 64
/* Frames waiting for guest buffers: enough for a burst from slirp, bounded in memory. */
#define NET_BACKLOG_MAX	  128
#define NET_BACKLOG_BYTES (2u << 20)
#define NET_PKT_MAX	  (NET_HDR_LEN + NET_MAX_FRAME)

#define NET_HAS(n, f) (((n)->vdev.features & (1ULL << (f))) != 0)

/* A receive chain popped from the ring but not filled yet. */
struct net_rx_slot {
	uint16_t head;
	unsigned niov;
	uint32_t cap; /* writable bytes */
	struct iovec iov[NET_RX_SLOT_IOV];
};

/* A frame in the backlog: the header (with no num_buffers yet) then the frame. */
struct net_frame {
	size_t len; /* of the frame, without the header */
	uint8_t data[];
};

struct net {
	struct virtio_device vdev; /* first: net_of() */
	struct net_backend *be;
	uint8_t mac[NET_MAC_LEN];
	/*
	 * queue_notify ran since the last reset, so DRIVER_OK is set. The device
	 * cannot see a NEEDS_RESET the transport sets on its own (the driver
	 * cleared a status bit): frames may then still land in the receive
	 * queue, which harms only that driver.
	 */
	bool live;
	bool broken;	/* we asked for NEEDS_RESET: no queue work until the reset */
	bool rx_pushed; /* receive chains were used since the last interrupt decision */
	bool stalled;	/* the backend was told the device is full; rx_ready() owed */
	struct net_stats stats;

	struct net_rx_slot held[NET_RX_MAX_MERGE];
	unsigned nheld;
	struct net_frame *backlog[NET_BACKLOG_MAX];
	unsigned bl_first, bl_count;
	size_t bl_bytes;

	struct iovec tx_iov[NET_TX_MAX_IOV];
	struct iovec tx_out[NET_TX_MAX_IOV + 1]; /* our header, then the frame's pieces */
};

static struct net *net_of(struct virtio_device *dev)
{
	return (struct net *)((char *)dev - offsetof(struct net, vdev));
}

/* Counters are read from other threads (the control API): relaxed atomics suffice. */
static void net_count(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static void net_fail(struct net *n, const char *why)
{
	n->broken = true;
	virtio_needs_reset(&n->vdev, why);
}

/* ---- receive: frames into the guest's buffers ---- */

/*
 * Pops one receive chain into held[nheld]. Returns 1, 0 when the ring is
 * empty, or -EINVAL after asking for a reset (the driver broke the ring or
 * the receive rules).
 */
static int net_rx_pop(struct net *n, struct virtqueue *vq)
{
	struct net_rx_slot *s = &n->held[n->nheld];
	struct vq_chain c = {.iov = s->iov};

	for (unsigned tries = 0; tries < vq->size; tries++) {
		int ret = vq_pop(vq, &c, NET_RX_SLOT_IOV);

		if (ret == 0)
			return 0;
		if (ret == -EINVAL) {
			net_fail(n, "the driver broke the receive queue");
			return -EINVAL;
		}
		if (ret == -ENOBUFS) { /* too many pieces to hold: give it back empty */
			vq_push(vq, c.head, 0);
			n->rx_pushed = true;
			continue;
		}
		/* 5.1.6.3.1: receive buffers are device-writable, each at least a header. */
		if (c.nread > 0 || c.write_bytes < NET_HDR_LEN) {
			net_fail(n, "the driver queued a receive buffer that is readable or "
				    "smaller than a header");
			return -EINVAL;
		}
		s->head = c.head;
		s->niov = c.nwrite;
		s->cap = c.write_bytes;
		n->nheld++;
		return 1;
	}
	return 0;
}

/*
 * Makes the first *count held chains hold need bytes, popping more as
 * needed. Returns 1, 0 when the guest has too few buffers for now, -E2BIG
 * when the frame can never fit (more chains than merging allows, or one
 * small chain without MRG_RXBUF), -EINVAL when the device needs a reset.
 */
static int net_rx_gather(struct net *n, struct virtqueue *vq, size_t need, unsigned *count)
{
	unsigned max = NET_HAS(n, VIRTIO_NET_F_MRG_RXBUF) ? NET_RX_MAX_MERGE : 1;
	size_t have = 0;
	unsigned i;

	if (max > vq->size)
		max = vq->size;
	for (i = 0; have < need; i++) {
		int ret;

		if (i == max)
			return -E2BIG;
		if (i == n->nheld && (ret = net_rx_pop(n, vq)) <= 0)
			return ret;
		have += n->held[i].cap;
	}
	*count = i;
	return 1;
}

/* Fills held chains [0, count) with the header and frame, and gives them to the driver. */
static void net_rx_fill(struct net *n, struct virtqueue *vq, unsigned count,
			const struct virtio_net_hdr *hdr, const uint8_t *frame, size_t len)
{
	size_t off = 0;

	for (unsigned i = 0; i < count; i++) {
		struct net_rx_slot *s = &n->held[i];
		size_t at = 0, chunk;

		if (i == 0)
			at = vq_iov_write(s->iov, s->niov, 0, hdr, NET_HDR_LEN);
		chunk = s->cap - at < len - off ? s->cap - at : len - off;
		at += vq_iov_write(s->iov, s->niov, at, frame + off, chunk);
		off += chunk;
		vq_push(vq, s->head, (uint32_t)at);
	}
	n->nheld -= count;
	memmove(n->held, n->held + count, n->nheld * sizeof(n->held[0]));
	n->rx_pushed = true;
}

/*
 * The header the guest gets: the backend's, trimmed to what the driver
 * negotiated. False when the frame needs an offload the driver did not take
 * (only a backend that ignored set_offload sends those): drop it.
 */
static bool net_rx_header(const struct net *n, const void *src, struct virtio_net_hdr *h)
{
	uint8_t gso;

	memset(h, 0, sizeof(*h));
	if (src == NULL)
		return true;
	memcpy(h, src, NET_HDR_LEN);
	h->num_buffers = 0;
	if (!NET_HAS(n, VIRTIO_NET_F_GUEST_CSUM)) {
		if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			return false;
		h->flags = 0; /* DATA_VALID is only for drivers that asked for it */
	}
	gso = h->gso_type;
	if (gso == VIRTIO_NET_HDR_GSO_NONE)
		return true;
	if (gso & VIRTIO_NET_HDR_GSO_ECN)
		return false;
	return (gso == VIRTIO_NET_HDR_GSO_TCPV4 && NET_HAS(n, VIRTIO_NET_F_GUEST_TSO4)) ||
	       (gso == VIRTIO_NET_HDR_GSO_TCPV6 && NET_HAS(n, VIRTIO_NET_F_GUEST_TSO6));
}

/* Returns 1 delivered, 0 no room in the guest yet, -1 dropped (counted). */
static int net_rx_deliver(struct net *n, const void *src_hdr, const uint8_t *frame, size_t len)
{
	struct virtqueue *vq = virtio_queue(&n->vdev, NET_RX_QUEUE);
	struct virtio_net_hdr hdr;
	unsigned count = 0;
	int ret;

	if (!n->live || n->broken || vq == NULL || !vq->ready)
		return 0;
	if (!net_rx_header(n, src_hdr, &hdr)) {
		net_count(&n->stats.rx_dropped, 1);
		return -1;
	}
	ret = net_rx_gather(n, vq, NET_HDR_LEN + len, &count);
	if (ret == 0)
		return 0;
	if (ret < 0) {
		net_count(&n->stats.rx_dropped, 1);
		return -1;
	}
	hdr.num_buffers = (uint16_t)count;
	net_rx_fill(n, vq, count, &hdr, frame, len);
	net_count(&n->stats.rx_packets, 1);
	net_count(&n->stats.rx_bytes, len);
	return 1;
}

static void net_backlog_add(struct net *n, const void *hdr, const void *frame, size_t len)
{
	struct net_frame *f;

	if (n->bl_count == NET_BACKLOG_MAX || n->bl_bytes + len > NET_BACKLOG_BYTES ||
	    (f = malloc(sizeof(*f) + NET_HDR_LEN + len)) == NULL) {
		net_count(&n->stats.rx_dropped, 1);
		return;
	}
	f->len = len;
	if (hdr != NULL)
		memcpy(f->data, hdr, NET_HDR_LEN);
	else
		memset(f->data, 0, NET_HDR_LEN);
	memcpy(f->data + NET_HDR_LEN, frame, len);
	n->backlog[(n->bl_first + n->bl_count) % NET_BACKLOG_MAX] = f;
	n->bl_count++;
	n->bl_bytes += len;
}

static void net_backlog_drop_first(struct net *n)
{
	struct net_frame *f = n->backlog[n->bl_first];

	n->bl_bytes -= f->len;
	free(f);
	n->bl_first = (n->bl_first + 1) % NET_BACKLOG_MAX;
	n->bl_count--;
}

/* Delivers what waits, in order, until the guest runs out of buffers. */
static void net_backlog_flush(struct net *n)
{
	while (n->bl_count > 0) {
		struct net_frame *f = n->backlog[n->bl_first];

		if (net_rx_deliver(n, f->data, f->data + NET_HDR_LEN, f->len) == 0)
			return;
		net_backlog_drop_first(n);
	}
	if (n->stalled && n->be->ops->rx_ready != NULL) {
		n->stalled = false;
		n->be->ops->rx_ready(n->be);
	}
}

void net_receive(struct net *n, const void *hdr, const void *frame, size_t len)
{
	if (len < NET_ETH_HLEN || len > NET_MAX_FRAME) {
		net_count(&n->stats.rx_dropped, 1);
		return;
	}
	/* Behind a backlog a frame must wait its turn: order matters to TCP. */
	if (n->bl_count == 0 && net_rx_deliver(n, hdr, frame, len) != 0)
		return;
	net_backlog_add(n, hdr, frame, len);
}

bool net_rx_stalled(struct net *n)
{
	/* The backend stops reading now: remember to tell it when there is room. */
	if (n->bl_count > 0)
		n->stalled = true;
	return n->bl_count > 0;
}

/* One interrupt decision per batch of receive pushes. */
static void net_rx_signal(struct net *n)
{
	if (n->rx_pushed) {
		n->rx_pushed = false;
		virtio_queue_used(&n->vdev, NET_RX_QUEUE);
	}
}

/* ---- transmit: chains from the guest to the backend ---- */

/*
 * What a vnet_hdr backend (the host kernel, for tap) may see: only the
 * offloads the driver negotiated, no num_buffers. False: drop the frame.
 */
static bool net_tx_header(const struct net *n, struct virtio_net_hdr *h, size_t len)
{
	uint8_t gso = h->gso_type;

	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return false;
	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (!NET_HAS(n, VIRTIO_NET_F_CSUM) || (size_t)h->csum_start + h->csum_offset + 2 > len))
		return false;
	if (gso == VIRTIO_NET_HDR_GSO_NONE)
		return true;
	return (gso == VIRTIO_NET_HDR_GSO_TCPV4 && NET_HAS(n, VIRTIO_NET_F_HOST_TSO4)) ||
	       (gso == VIRTIO_NET_HDR_GSO_TCPV6 && NET_HAS(n, VIRTIO_NET_F_HOST_TSO6));
}

/* Copies the chain out of guest memory and hands it on. Returns true if the backend took it. */
/* The buffers of src[0, n) after the first skip bytes, into dst; returns how many. */
static unsigned net_iov_after(const struct iovec *src, unsigned n, size_t skip, struct iovec *dst)
{
	unsigned out = 0;

	for (unsigned i = 0; i < n; i++) {
		size_t len = src[i].iov_len;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		dst[out].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[out++].iov_len = len - skip;
		skip = 0;
	}
	return out;
}

/*
 * Hands the chain on without copying the frame (the backend copies what it
 * parses); the header is copied, checked and replaced by our copy. Returns
 * true if the backend took it.
 */
static bool net_tx_send(struct net *n, const struct vq_chain *c)
{
	size_t total = c->read_bytes, len = total - NET_HDR_LEN;
	struct net_backend *be = n->be;
	struct virtio_net_hdr hdr;
	unsigned cnt;

	if (total > NET_PKT_MAX || len < NET_ETH_HLEN)
		return false;
	cnt = net_iov_after(c->iov, c->nread, NET_HDR_LEN, n->tx_out + 1);
	if (!be->ops->vnet_hdr)
		return be->ops->send(be, n->tx_out + 1, cnt, len) == 0;
	vq_iov_read(c->iov, c->nread, 0, &hdr, NET_HDR_LEN);
	if (!net_tx_header(n, &hdr, len))
		return false;
	hdr.num_buffers = 0;
	n->tx_out[0] = (struct iovec){&hdr, NET_HDR_LEN};
	return be->ops->send(be, n->tx_out, cnt + 1, total) == 0;
}

/* Serves one chain. Returns 1, 0 when the ring is empty, -1 when the device needs a reset. */
static int net_tx_one(struct net *n, struct virtqueue *vq)
{
	struct vq_chain c = {.iov = n->tx_iov};
	int ret = vq_pop(vq, &c, NET_TX_MAX_IOV);

	if (ret == 0 || ret == -EINVAL)
		return ret == 0 ? 0 : -1;
	/* 5.1.6.2: a header, then the frame, all device-readable. */
	if (ret == 1 && (c.nwrite > 0 || c.read_bytes < NET_HDR_LEN)) {
		net_fail(n, "the driver queued a transmit chain that is writable or has no header");
		return -1;
	}
	if (ret == 1 && net_tx_send(n, &c)) {
		net_count(&n->stats.tx_packets, 1);
		net_count(&n->stats.tx_bytes, c.read_bytes - NET_HDR_LEN);
	} else {
		net_count(&n->stats.tx_dropped, 1);
	}
	vq_push(vq, c.head, 0);
	return 1;
}

/*
 * Up to a queue's worth of chains per round, kicks suppressed meanwhile;
 * a busy guest gets another round through virtio_queue_kick, so receive
 * and the other queue get their turn.
 */
static void net_tx_notify(struct net *n)
{
	struct virtqueue *vq = virtio_queue(&n->vdev, NET_TX_QUEUE);
	unsigned done = 0;
	int ret;

	for (;;) {
		vq_disable_notify(vq);
		while ((ret = net_tx_one(n, vq)) > 0)
			if (++done == vq->size)
				break;
		/* Out of budget (ret > 0) or broken (ret < 0): no kicks wanted now. */
		if (ret != 0 || !vq_enable_notify(vq))
			break;
	}
	if (done > 0)
		virtio_queue_used(&n->vdev, NET_TX_QUEUE);
	if (ret > 0)
		virtio_queue_kick(&n->vdev, NET_TX_QUEUE);
	if (n->be->ops->flush != NULL)
		n->be->ops->flush(n->be);
}

/* ---- the device ---- */

static void net_queue_notify(struct virtio_device *dev, unsigned q)
{
	struct net *n = net_of(dev);

	if (n->broken)
		return;
	n->live = true;
	if (q == NET_TX_QUEUE)
		net_tx_notify(n);
	net_backlog_flush(n); /* new receive buffers, or frames the transmits produced */
	net_rx_signal(n);
}

static void net_backend_event(struct virtio_device *dev, int fd)
{
	struct net *n = net_of(dev);

	(void)fd;
	n->be->ops->poll(n->be);
	net_rx_signal(n);
}

static void net_config_read(struct virtio_device *dev, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct net *n = net_of(dev);
	uint8_t cfg[NET_CONFIG_SIZE] = {0};

	memcpy(cfg, n->mac, NET_MAC_LEN);
	cfg[6] = VIRTIO_NET_S_LINK_UP; /* status, le16 */
	cfg[8] = 1;		       /* max_virtqueue_pairs, le16: only read with MQ */
	memcpy(data, cfg + offset, len);
}

/* 5.1.3.1: offloads that depend on others. */
static bool net_features_ok(struct virtio_device *dev, uint64_t f)
{
	struct net *n = net_of(dev);
	bool csum = f & (1ULL << VIRTIO_NET_F_CSUM), gcsum = f & (1ULL << VIRTIO_NET_F_GUEST_CSUM);

	if ((f & (1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6)) && !gcsum)
		return false;
	if ((f & (1ULL << VIRTIO_NET_F_HOST_TSO4 | 1ULL << VIRTIO_NET_F_HOST_TSO6)) && !csum)
		return false;
	if (n->be->ops->set_offload != NULL)
		n->be->ops->set_offload(n->be, f);
	return true;
}

/* Queues are reset already: popped chains and waiting frames are forgotten. */
static void net_reset(struct virtio_device *dev)
{
	struct net *n = net_of(dev);

	n->live = n->broken = n->rx_pushed = false;
	n->nheld = 0;
	while (n->bl_count > 0) {
		net_count(&n->stats.rx_dropped, 1);
		net_backlog_drop_first(n);
	}
	if (n->be->ops->set_offload != NULL)
		n->be->ops->set_offload(n->be, 0);
	if (n->stalled && n->be->ops->rx_ready != NULL) {
		n->stalled = false;
		n->be->ops->rx_ready(n->be);
	}
}

#define NET_FEATURES                                                                               \
	(1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_STATUS | 1ULL << VIRTIO_NET_F_MRG_RXBUF)
#define NET_OFFLOADS                                                                               \
	(1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM |                             \
	 1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6 |                       \
	 1ULL << VIRTIO_NET_F_HOST_TSO4 | 1ULL << VIRTIO_NET_F_HOST_TSO6)

#define NET_OPS(feat)                                                                              \
	{                                                                                          \
		.name = "virtio-net", .device_id = VIRTIO_ID_NET, .features = (feat),              \
		.num_queues = 2, .queue_max_size = NET_QUEUE_SIZE, .config_size = NET_CONFIG_SIZE, \
		.config_read = net_config_read, .features_ok = net_features_ok,                    \
		.queue_notify = net_queue_notify, .reset = net_reset,                              \
	}

/* Offloads only when the backend passes headers on: libslirp needs whole checksums. */
static const struct virtio_device_ops net_ops = NET_OPS(NET_FEATURES);
static const struct virtio_device_ops net_ops_offload = NET_OPS(NET_FEATURES | NET_OFFLOADS);

struct net *net_create(const uint8_t mac[NET_MAC_LEN], struct net_backend *be)
{
	struct net *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return NULL;
	n->vdev.ops = be->ops->vnet_hdr ? &net_ops_offload : &net_ops;
	n->be = be;
	be->net = n;
	memcpy(n->mac, mac, NET_MAC_LEN);
	return n;
}

void net_destroy(struct net *n)
{
	if (n == NULL)
		return;
	while (n->bl_count > 0)
		net_backlog_drop_first(n);
	n->be->net = NULL;
	free(n);
}

struct virtio_device *net_virtio(struct net *n)
{
	return &n->vdev;
}

int net_attach(struct net *n)
{
	/* A device before us (the last boot's) may have left the backend paused. */
	if (n->be->ops->rx_ready != NULL)
		n->be->ops->rx_ready(n->be);
	return virtio_watch_fd(&n->vdev, n->be->ops->fd(n->be), net_backend_event);
}

void net_save(struct net *n, struct net_state *st)
{
	struct virtqueue *vq = virtio_queue(&n->vdev, NET_RX_QUEUE);

	for (unsigned i = 0; i < n->nheld; i++) {
		vq_push(vq, n->held[i].head, 0);
		n->rx_pushed = true;
	}
	n->nheld = 0;
	while (n->bl_count > 0) {
		net_count(&n->stats.rx_dropped, 1);
		net_backlog_drop_first(n);
	}
	net_rx_signal(n);
	memset(st, 0, sizeof(*st));
	st->magic = NET_STATE_MAGIC;
	st->version = NET_STATE_VERSION;
	memcpy(st->mac, n->mac, NET_MAC_LEN);
	st->live = n->live && !n->broken;
}

int net_restore(struct net *n, const struct net_state *st)
{
	if (st->magic != NET_STATE_MAGIC || st->version != NET_STATE_VERSION ||
	    memcmp(st->mac, n->mac, NET_MAC_LEN) != 0 || st->live > 1)
		return -EINVAL;
	n->nheld = 0;
	n->broken = false;
	n->live = st->live;
	return 0;
}

void net_get_stats(const struct net *n, struct net_stats *out)
{
	const uint64_t *src = (const uint64_t *)&n->stats;
	uint64_t *dst = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
