/*
 * libFuzzer target for virtio-net's guest-facing paths: transmit chains
 * parsed into frames (headers, sizes, writable buffers, chains that break
 * the ring) and frames delivered into the guest's receive buffers (single
 * and merged). The input is what a hostile guest controls: its rings and
 * buffers, and the features it negotiates; the device runs on a fake
 * transport and backend here, so one input is one deterministic run.
 *
 * Input layout:
 *   0      features: bit 0 MRG_RXBUF, 1 vnet_hdr backend (offloads offered),
 *          2 CSUM, 3 HOST_TSO4, 4 GUEST_CSUM, 5 EVENT_IDX, 6 INDIRECT_DESC,
 *          7 GUEST_TSO4
 *   1      log2 of the transmit queue size (low nibble), receive (high); at most 8
 *   2      frames the backend delivers (low 5 bits); bit 7: the backend refuses sends
 *   3..4   their length (little-endian); bit 0 of byte 5 adds 64 KiB
 *   5..6   the header given with them (vnet backend): flags, gso_type
 *   7      transmit rounds (low 2 bits + 1)
 *   8..    guest RAM from gpa 0: the transmit rings (available, used,
 *          descriptors) at 0, the receive rings at 0x2000, buffers anywhere
 *          in the first WINDOW bytes (the rest of RAM reads as zeros)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/backend.h"
#include "virtio/net.h"
#include "virtio/queue.h"
#include "vmm/memory.h"

#define HEADER	 8
#define RAM	 (16u << 20) /* the smallest guest; every buffer outside is refused */
#define WINDOW	 (1u << 20)
#define RX_RINGS 0x2000
#define MAX_LOG2 8

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct guest_memory mem;
static struct virtqueue vqs[2];
static bool needs_reset;
static bool kicked;
static int send_ret;
static unsigned sends;
static uint8_t frame[NET_MAX_FRAME + (64u << 10)];

/* ---- a backend that checks what reaches it ---- */

struct fuzz_backend {
	struct net_backend be;
};

static int fb_fd(struct net_backend *be)
{
	(void)be;
	return -1;
}

static void fb_poll(struct net_backend *be)
{
	(void)be;
}

/* The pieces must add up to len and lie in guest RAM, but for our header. */
static int fb_send(struct net_backend *be, const struct iovec *iov, unsigned n, size_t len)
{
	size_t hdr = be->ops->vnet_hdr ? NET_HDR_LEN : 0, total = 0;

	CHECK(len >= hdr + NET_ETH_HLEN && len <= hdr + NET_MAX_FRAME);
	for (unsigned i = 0; i < n; i++) {
		CHECK(iov[i].iov_len > 0);
		CHECK((i == 0 && hdr) || gpa_to_hva(&mem, 0, RAM) <= iov[i].iov_base);
		CHECK((i == 0 && hdr) || (uint8_t *)iov[i].iov_base + iov[i].iov_len <=
					     (uint8_t *)gpa_to_hva(&mem, 0, RAM) + RAM);
		total += iov[i].iov_len;
	}
	CHECK(total == len);
	if (hdr) {
		struct virtio_net_hdr h;

		CHECK(iov[0].iov_len == NET_HDR_LEN);
		memcpy(&h, iov[0].iov_base, sizeof(h));
		CHECK(h.num_buffers == 0);
		CHECK(!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) ||
		      (size_t)h.csum_start + h.csum_offset + 2 <= len - hdr);
	}
	sends++;
	return send_ret;
}

static void fb_destroy(struct net_backend *be)
{
	(void)be;
}

static const struct net_backend_ops fb_plain = {
    .name = "fuzz",
    .fd = fb_fd,
    .poll = fb_poll,
    .send = fb_send,
    .destroy = fb_destroy,
};
static const struct net_backend_ops fb_vnet = {
    .name = "fuzz-vnet",
    .vnet_hdr = true,
    .fd = fb_fd,
    .poll = fb_poll,
    .send = fb_send,
    .destroy = fb_destroy,
};

/* ---- a transport with two queues and no PCI ---- */

static struct virtqueue *ft_queue(struct virtio_device *dev, unsigned q)
{
	(void)dev;
	return q < 2 ? &vqs[q] : NULL;
}

static void ft_queue_used(struct virtio_device *dev, unsigned q)
{
	(void)dev;
	(void)vq_should_notify(&vqs[q]);
}

static void ft_queue_kick(struct virtio_device *dev, unsigned q)
{
	(void)dev;
	kicked |= q == NET_TX_QUEUE;
}

static void ft_needs_reset(struct virtio_device *dev, const char *why)
{
	(void)dev;
	(void)why;
	needs_reset = true;
}

static void ft_config_changed(struct virtio_device *dev)
{
	(void)dev;
}

static int ft_watch_fd(struct virtio_device *dev, int fd,
		       void (*handler)(struct virtio_device *dev, int fd))
{
	(void)dev;
	(void)fd;
	(void)handler;
	return 0;
}

static const struct virtio_transport_ops ft_ops = {
    ft_queue, ft_queue_used, ft_queue_kick, ft_needs_reset, ft_config_changed, ft_watch_fd,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (memory_init(&mem, RAM) != 0)
		abort();
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 13);
	return 0;
}

static uint64_t features_of(uint8_t b)
{
	static const unsigned bit[8] = {
	    VIRTIO_NET_F_MRG_RXBUF,  64,
	    VIRTIO_NET_F_CSUM,	     VIRTIO_NET_F_HOST_TSO4,
	    VIRTIO_NET_F_GUEST_CSUM, VQ_F_EVENT_IDX,
	    VQ_F_INDIRECT_DESC,	     VIRTIO_NET_F_GUEST_TSO4,
	};
	uint64_t f = 1ULL << VIRTIO_F_VERSION_1;

	for (unsigned i = 0; i < 8; i++)
		if ((b & (1u << i)) && bit[i] < 64)
			f |= 1ULL << bit[i];
	return f;
}

static bool setup_queue(unsigned q, unsigned log2, uint64_t base, uint64_t f)
{
	uint16_t qsize = (uint16_t)(1u << (log2 > MAX_LOG2 ? MAX_LOG2 : log2));
	uint64_t used = (base + 6 + 2ULL * qsize + 3) & ~3ULL;
	uint64_t desc = (used + 6 + 8ULL * qsize + 15) & ~15ULL;

	vq_reset(&vqs[q]);
	vqs[q].name = "fuzz-net";
	return vq_setup(&vqs[q], &mem, qsize, desc, base, used, f & (1ULL << VQ_F_EVENT_IDX),
			f & (1ULL << VQ_F_INDIRECT_DESC)) == 0;
}

/* What the transport does: notify until the device stops asking for another round. */
static void run_tx(struct virtio_device *dev, unsigned rounds)
{
	for (unsigned r = 0; r < rounds && !needs_reset; r++) {
		kicked = false;
		dev->ops->queue_notify(dev, NET_TX_QUEUE);
		if (!kicked)
			break;
	}
}

static void run_rx(struct net *net, struct virtio_device *dev, const uint8_t *h)
{
	unsigned nframes = h[2] & 31;
	size_t len = (size_t)(h[3] | h[4] << 8) + ((h[5] & 1) ? 64u << 10 : 0);
	uint8_t hdr[NET_HDR_LEN] = {h[5] & ~1, h[6], 0, 0, 100, 0, 14, 0, 6};
	bool vnet = dev->ops->features & (1ULL << VIRTIO_NET_F_CSUM);

	if (len > sizeof(frame))
		len = sizeof(frame);
	for (unsigned i = 0; i < nframes && !needs_reset; i++) {
		net_receive(net, vnet ? hdr : NULL, frame, len);
		if (i % 4 == 3)
			dev->ops->queue_notify(dev, NET_RX_QUEUE); /* the guest added buffers */
	}
	if (!needs_reset)
		dev->ops->queue_notify(dev, NET_RX_QUEUE);
}

static void check_counts(struct net *net)
{
	struct net_stats s;

	net_get_stats(net, &s);
	if (!vqs[NET_TX_QUEUE].broken && !needs_reset)
		CHECK(s.tx_packets + s.tx_dropped == vqs[NET_TX_QUEUE].used_idx);
	CHECK(s.tx_packets <= sends);
	CHECK(s.rx_packets <= vqs[NET_RX_QUEUE].used_idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_backend fb;
	uint8_t *ram = gpa_to_hva(&mem, 0, WINDOW);
	uint64_t f;
	struct net *net;
	struct virtio_device *dev;
	const uint8_t mac[NET_MAC_LEN] = {0x52, 0x54, 0, 1, 2, 3};

	if (size < HEADER)
		return 0;
	/* Every run starts from zeroed RAM: buffers outside the window too. */
	fallocate(mem.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, RAM);
	memcpy(ram, data + HEADER, size - HEADER < WINDOW ? size - HEADER : WINDOW);
	needs_reset = false;
	sends = 0;
	send_ret = (data[2] & 0x80) ? -EAGAIN : 0;
	fb.be.ops = (data[0] & 2) ? &fb_vnet : &fb_plain;
	net = net_create(mac, &fb.be);
	CHECK(net != NULL);
	dev = net_virtio(net);
	f = features_of(data[0]) & (dev->ops->features | 1ULL << VIRTIO_F_VERSION_1 |
				    1ULL << VQ_F_EVENT_IDX | 1ULL << VQ_F_INDIRECT_DESC);
	dev->mem = &mem;
	dev->transport = &ft_ops;
	dev->features = f;
	if (dev->ops->features_ok(dev, f) && setup_queue(NET_TX_QUEUE, data[1] & 15, 0, f) &&
	    setup_queue(NET_RX_QUEUE, data[1] >> 4, RX_RINGS, f)) {
		run_tx(dev, (data[7] & 3) + 1);
		run_rx(net, dev, data);
		check_counts(net);
	}
	net_destroy(net);
	return 0;
}
