/*
 * virtio-net behind the real virtio-pci transport, driven by the test driver
 * (tests/unit/vdriver.h) in a real guest_memory, in front of a fake backend:
 * transmit chains become frames (header handling, oversized and malformed
 * chains), frames land in single and merged receive buffers, and frames for
 * a guest without buffers wait in the backlog or are dropped and counted.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bus/pci.h"
#include "net/backend.h"
#include "net/spec.h"
#include "msi_sink.h"
#include "vdriver.h"
#include "virtio/net.h"
#include "virtio/pci.h"

#define RXQ 0
#define TXQ 1

#define F_MAC	     (1ULL << VIRTIO_NET_F_MAC)
#define F_STATUS     (1ULL << VIRTIO_NET_F_STATUS)
#define F_MRG	     (1ULL << VIRTIO_NET_F_MRG_RXBUF)
#define F_CSUM	     (1ULL << VIRTIO_NET_F_CSUM)
#define F_GUEST_CSUM (1ULL << VIRTIO_NET_F_GUEST_CSUM)
#define F_HOST_TSO4  (1ULL << VIRTIO_NET_F_HOST_TSO4)

/* ---- a backend that records what it is given ---- */

#define FAKE_MAX 8

struct fake {
	struct net_backend be;
	int fd;
	int send_ret;
	unsigned nsent;
	size_t sent_len[FAKE_MAX];
	uint8_t *sent[FAKE_MAX];
	unsigned rx_ready_calls;
	uint64_t offload;
};

static struct fake *fake_of(struct net_backend *be)
{
	return (struct fake *)be;
}

static int fake_fd(struct net_backend *be)
{
	return fake_of(be)->fd;
}

static void fake_poll(struct net_backend *be)
{
	(void)be;
}

/* Gathers the pieces; checks they add up to len. */
static int fake_send(struct net_backend *be, const struct iovec *iov, unsigned n, size_t len)
{
	struct fake *f = fake_of(be);
	size_t at = 0;
	uint8_t *p = malloc(len);

	for (unsigned i = 0; i < n; i++) {
		cr_assert_leq(at + iov[i].iov_len, len);
		memcpy(p + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	cr_assert_eq(at, len);
	if (f->nsent < FAKE_MAX) {
		f->sent[f->nsent] = p;
		f->sent_len[f->nsent++] = len;
	} else {
		free(p);
	}
	return f->send_ret;
}

static void fake_rx_ready(struct net_backend *be)
{
	fake_of(be)->rx_ready_calls++;
}

static void fake_set_offload(struct net_backend *be, uint64_t features)
{
	fake_of(be)->offload = features;
}

static void fake_destroy(struct net_backend *be)
{
	struct fake *f = fake_of(be);

	for (unsigned i = 0; i < f->nsent; i++)
		free(f->sent[i]);
	close(f->fd);
	free(f);
}

static const struct net_backend_ops fake_ops = {
    .name = "fake",
    .vnet_hdr = false,
    .fd = fake_fd,
    .poll = fake_poll,
    .send = fake_send,
    .rx_ready = fake_rx_ready,
    .destroy = fake_destroy,
};

static const struct net_backend_ops fake_vnet_ops = {
    .name = "fake-vnet",
    .vnet_hdr = true,
    .fd = fake_fd,
    .poll = fake_poll,
    .send = fake_send,
    .rx_ready = fake_rx_ready,
    .set_offload = fake_set_offload,
    .destroy = fake_destroy,
};

/* ---- the machine around it ---- */

static const uint8_t test_mac[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};

static struct guest_memory mem;
static struct bus mmio;
static struct pci_bus pb;
static struct fake *fake;
static struct net *net;
static struct virtio_pci *vp;
static struct vdrv d;

static void make_device(const struct net_backend_ops *ops)
{
	struct pci_bus_config cfg = {
	    .mmio = &mmio,
	    .ecam_base = VD_ECAM,
	    .mmio32_base = LAYOUT_PCI_MMIO,
	    .mmio32_end = LAYOUT_PCI_MMIO_END,
	    .msi = {&sink_ops, &sink},
	};

	memset(&sink, 0, sizeof(sink));
	cr_assert_eq(memory_init(&mem, VD_MEM_SIZE), 0);
	bus_init(&mmio, "mmio");
	cr_assert_eq(pci_bus_init(&pb, &cfg), 0);
	fake = calloc(1, sizeof(*fake));
	fake->be.ops = ops;
	fake->fd = eventfd(0, EFD_CLOEXEC);
	net = net_create(test_mac, &fake->be);
	cr_assert_not_null(net);
	cr_assert_eq(virtio_pci_create(&vp, net_virtio(net), &mem, -1), 0);
	cr_assert_eq(net_attach(net), 0);
	cr_assert_eq(pci_add_device(&pb, virtio_pci_device(vp)), 0);
	vd_probe(&d, &mmio, &mem, 1 << 3);
	vd_enable_msix(&d, 3);
}

/* Negotiates features, sets up both queues (vectors 1 and 2), DRIVER_OK. */
static void driver_up(uint64_t features)
{
	cr_assert(vd_negotiate(&d, VD_VERSION_1 | features) & VD_FEATURES_OK);
	vd_common_write(&d, VD_MSIX, 0, 2);
	vd_setup_queue(&d, RXQ, VD_QSIZE, 1);
	vd_setup_queue(&d, TXQ, VD_QSIZE, 2);
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	virtio_pci_poll(vp);
}

static void setup(void)
{
	make_device(&fake_ops);
}

static void setup_vnet(void)
{
	make_device(&fake_vnet_ops);
}

static void teardown(void)
{
	pci_bus_destroy(&pb);
	virtio_pci_destroy(vp);
	net_destroy(net);
	net_backend_close(&fake->be);
	bus_destroy(&mmio);
	memory_destroy(&mem);
}

TestSuite(net, .init = setup, .fini = teardown);
TestSuite(net_vnet, .init = setup_vnet, .fini = teardown);

/* ---- helpers ---- */

static uint8_t *hva(uint64_t gpa, size_t len)
{
	uint8_t *p = gpa_to_hva(&mem, gpa, len);

	cr_assert_not_null(p);
	return p;
}

/* An Ethernet frame of len bytes: a recognisable pattern seeded by seed. */
static void make_frame(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* One readable chain: a header then a frame of len bytes, split into n pieces. */
static void tx_chain(size_t len, unsigned n, uint8_t seed)
{
	uint64_t gpa[4];
	uint32_t lens[4];
	bool w[4] = {false, false, false, false};
	size_t total = NET_HDR_LEN + len, at = 0;
	uint8_t *buf = hva(VD_BUF, total);

	memset(buf, 0, NET_HDR_LEN);
	make_frame(buf + NET_HDR_LEN, len, seed);
	for (unsigned i = 0; i < n; i++) {
		size_t piece = i + 1 < n ? total / n : total - at;

		gpa[i] = VD_BUF + at;
		lens[i] = (uint32_t)piece;
		at += piece;
	}
	vd_add_chain(&d, TXQ, gpa, lens, w, n);
}

static void kick(unsigned q)
{
	vd_notify(&d, q);
	virtio_pci_poll(vp);
}

/* Receive buffers: n chains of one writable buffer of len bytes each, at VD_BUF + i * 64 KiB. */
static void rx_buffers(unsigned n, uint32_t len)
{
	static unsigned next;

	for (unsigned i = 0; i < n; i++) {
		uint64_t gpa = VD_BUF + 0x10000ULL * (next++ % 64);
		bool w = true;

		memset(hva(gpa, len), 0xee, len);
		vd_add_chain(&d, RXQ, &gpa, &len, &w, 1);
	}
}

static struct net_stats stats(void)
{
	struct net_stats s;

	net_get_stats(net, &s);
	return s;
}

/* ---- identity and configuration ---- */

Test(net, identity_and_config)
{
	uint64_t f = vd_device_features(&d);

	cr_assert_eq(vd_cfg_read(&d, 0x02, 2), 0x1041, "virtio network: 0x1040 + 1");
	cr_assert_eq(vd_common_read(&d, VD_NUMQ, 2), 2);
	cr_assert(f & F_MAC && f & F_STATUS && f & F_MRG && f & VD_VERSION_1);
	cr_assert_eq(f & (F_CSUM | F_GUEST_CSUM | F_HOST_TSO4), 0,
		     "no offloads in front of a backend that needs whole checksums");
	for (unsigned i = 0; i < 6; i++)
		cr_assert_eq(vd_mread(&d, d.bar + d.device + i, 1), test_mac[i]);
	cr_assert_eq(vd_mread(&d, d.bar + d.device + 6, 2), 1, "link up");
}

Test(net_vnet, offloads_are_offered_and_followed)
{
	uint64_t f = vd_device_features(&d);

	cr_assert(f & F_CSUM && f & F_GUEST_CSUM && f & F_HOST_TSO4);
	cr_assert_eq(vd_negotiate(&d, VD_VERSION_1 | F_HOST_TSO4) & VD_FEATURES_OK, 0,
		     "HOST_TSO4 needs CSUM (5.1.3.1)");
	driver_up(F_MRG | F_CSUM | F_GUEST_CSUM);
	cr_assert_eq(fake->offload & (F_CSUM | F_GUEST_CSUM), F_CSUM | F_GUEST_CSUM,
		     "the backend hears what the guest can take");
}

/* ---- transmit ---- */

Test(net, tx_header_and_frame_in_one_buffer)
{
	uint32_t id, len;

	driver_up(F_MRG);
	tx_chain(60, 1, 1);
	kick(TXQ);
	cr_assert_eq(fake->nsent, 1);
	cr_assert_eq(fake->sent_len[0], 60, "the header is not the backend's");
	cr_assert_arr_eq(fake->sent[0], hva(VD_BUF + NET_HDR_LEN, 60), 60);
	cr_assert_eq(vd_used_idx(&d, TXQ), 1);
	vd_used_elem(&d, TXQ, 0, &id, &len);
	cr_assert_eq(len, 0, "the device writes nothing into a transmit chain");
	cr_assert_eq(stats().tx_packets, 1);
	cr_assert_eq(stats().tx_bytes, 60);
	cr_assert_eq(sink.count[2], 1, "transmit interrupt on vector 2");
}

Test(net, tx_frame_split_across_buffers)
{
	uint8_t expect[1500];

	driver_up(0);
	make_frame(expect, sizeof(expect), 9);
	tx_chain(sizeof(expect), 4, 9); /* pieces that cut the header in two */
	kick(TXQ);
	cr_assert_eq(fake->nsent, 1);
	cr_assert_eq(fake->sent_len[0], sizeof(expect));
	cr_assert_arr_eq(fake->sent[0], expect, sizeof(expect));
}

Test(net, tx_batches_get_one_interrupt)
{
	driver_up(F_MRG);
	for (int i = 0; i < 5; i++)
		tx_chain(100, 1, (uint8_t)i);
	kick(TXQ);
	cr_assert_eq(fake->nsent, 5);
	cr_assert_eq(vd_used_idx(&d, TXQ), 5);
	cr_assert_eq(sink.count[2], 1);
}

Test(net, tx_oversized_frame_is_dropped)
{
	driver_up(F_MRG);
	tx_chain(NET_MAX_FRAME + 1, 2, 0);
	tx_chain(NET_MAX_FRAME, 2, 0);
	kick(TXQ);
	cr_assert_eq(fake->nsent, 1, "only the one that fits");
	cr_assert_eq(fake->sent_len[0], NET_MAX_FRAME);
	cr_assert_eq(vd_used_idx(&d, TXQ), 2, "both chains come back");
	cr_assert_eq(stats().tx_dropped, 1);
	cr_assert_eq(vd_status(&d) & VD_NEEDS_RESET, 0);
}

Test(net, tx_runt_frames_are_dropped)
{
	driver_up(F_MRG);
	tx_chain(0, 1, 0);  /* a header and nothing */
	tx_chain(13, 1, 0); /* shorter than an Ethernet header */
	kick(TXQ);
	cr_assert_eq(fake->nsent, 0);
	cr_assert_eq(stats().tx_dropped, 2);
	cr_assert_eq(vd_used_idx(&d, TXQ), 2);
}

Test(net, tx_backend_refusal_is_counted)
{
	driver_up(F_MRG);
	fake->send_ret = -EAGAIN;
	tx_chain(100, 1, 0);
	kick(TXQ);
	cr_assert_eq(stats().tx_dropped, 1);
	cr_assert_eq(stats().tx_packets, 0);
	cr_assert_eq(vd_used_idx(&d, TXQ), 1);
}

Test(net, tx_chain_with_writable_buffer_needs_reset)
{
	uint64_t gpa[2] = {VD_BUF, VD_BUF + 0x1000};
	uint32_t len[2] = {NET_HDR_LEN + 60, 100};
	bool w[2] = {false, true};

	driver_up(F_MRG);
	vd_add_chain(&d, TXQ, gpa, len, w, 2);
	kick(TXQ);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
	cr_assert_eq(fake->nsent, 0);
	cr_assert_eq(sink.count[0], 1, "configuration interrupt");
}

Test(net, tx_chain_shorter_than_a_header_needs_reset)
{
	uint64_t gpa = VD_BUF;
	uint32_t len = NET_HDR_LEN - 1;
	bool w = false;

	driver_up(F_MRG);
	vd_add_chain(&d, TXQ, &gpa, &len, &w, 1);
	kick(TXQ);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
}

Test(net, tx_outside_ram_breaks_the_queue)
{
	uint64_t gpa = 0xfffff000;
	uint32_t len = 100;
	bool w = false;

	driver_up(F_MRG);
	vd_add_chain(&d, TXQ, &gpa, &len, &w, 1);
	kick(TXQ);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
	cr_assert_eq(fake->nsent, 0);
}

Test(net_vnet, tx_header_goes_to_the_backend_checked)
{
	struct virtio_net_hdr *h = (struct virtio_net_hdr *)hva(VD_BUF, NET_HDR_LEN);

	driver_up(F_MRG | F_CSUM);
	tx_chain(100, 1, 0);
	h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h->csum_start = 34;
	h->csum_offset = 16;
	h->num_buffers = 7;
	kick(TXQ);
	cr_assert_eq(fake->nsent, 1);
	cr_assert_eq(fake->sent_len[0], NET_HDR_LEN + 100, "header and frame");
	cr_assert_eq(fake->sent[0][0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
	cr_assert_eq(fake->sent[0][10] | fake->sent[0][11], 0, "num_buffers cleared");

	tx_chain(100, 1, 0);
	h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h->csum_start = 90; /* the checksum would land past the frame */
	h->csum_offset = 16;
	kick(TXQ);
	tx_chain(100, 1, 0);
	h->gso_type = VIRTIO_NET_HDR_GSO_TCPV4; /* HOST_TSO4 not negotiated */
	kick(TXQ);
	cr_assert_eq(fake->nsent, 1);
	cr_assert_eq(stats().tx_dropped, 2);
}

/* ---- receive ---- */

static void rx_frame(size_t len, uint8_t seed)
{
	uint8_t *f = malloc(len);

	make_frame(f, len, seed);
	net_receive(net, NULL, f, len);
	free(f);
}

/* Checks used element i of the receive ring: len, and the header's num_buffers. */
static uint64_t rx_used(unsigned i, uint32_t expect_len)
{
	uint32_t id, len;

	vd_used_elem(&d, RXQ, i, &id, &len);
	cr_assert_eq(len, expect_len, "used element %u: %u bytes, not %u", i, len, expect_len);
	return VD_DESC(RXQ) + 16ULL * id;
}

static uint64_t desc_addr(uint64_t desc)
{
	return vd_get(&d, desc, 8);
}

Test(net, rx_into_a_single_buffer)
{
	uint8_t expect[1000];
	uint64_t buf;

	driver_up(0);
	rx_buffers(2, 1526);
	kick(RXQ);
	rx_frame(sizeof(expect), 3);
	cr_assert_eq(vd_used_idx(&d, RXQ), 1);
	buf = desc_addr(rx_used(0, NET_HDR_LEN + 1000));
	make_frame(expect, sizeof(expect), 3);
	cr_assert_eq(vd_get(&d, buf + 10, 2), 1, "num_buffers is 1 without MRG_RXBUF");
	cr_assert_eq(vd_get(&d, buf, 8), 0, "no offload information");
	cr_assert_arr_eq(hva(buf + NET_HDR_LEN, 1000), expect, 1000);
	cr_assert_eq(hva(buf + NET_HDR_LEN + 1000, 1)[0], 0xee, "nothing past the frame");
	cr_assert_eq(stats().rx_packets, 1);
	cr_assert_eq(stats().rx_bytes, 1000);
}

Test(net, rx_merged_over_several_buffers)
{
	uint8_t expect[2500];
	uint64_t b0, b1, b2;

	driver_up(F_MRG);
	rx_buffers(4, 1000);
	kick(RXQ);
	rx_frame(sizeof(expect), 5);
	make_frame(expect, sizeof(expect), 5);
	cr_assert_eq(vd_used_idx(&d, RXQ), 3);
	b0 = desc_addr(rx_used(0, 1000));
	b1 = desc_addr(rx_used(1, 1000));
	b2 = desc_addr(rx_used(2, NET_HDR_LEN + 2500 - 2000));
	cr_assert_eq(vd_get(&d, b0 + 10, 2), 3, "num_buffers");
	cr_assert_arr_eq(hva(b0 + NET_HDR_LEN, 1000 - NET_HDR_LEN), expect, 1000 - NET_HDR_LEN);
	cr_assert_arr_eq(hva(b1, 1000), expect + 988, 1000);
	cr_assert_arr_eq(hva(b2, 512), expect + 1988, 512);
	/* The fourth buffer is popped for the next frame only. */
	rx_frame(100, 6);
	cr_assert_eq(vd_used_idx(&d, RXQ), 4);
	cr_assert_eq(sink.count[1], 0, "interrupts come per batch, from the device's own paths");
}

Test(net, rx_without_buffers_waits_then_drops)
{
	driver_up(F_MRG);
	rx_frame(100, 1);
	cr_assert(net_rx_stalled(net), "a frame waits for buffers");
	cr_assert_eq(vd_used_idx(&d, RXQ), 0);
	rx_buffers(2, 2048);
	kick(RXQ);
	cr_assert_eq(vd_used_idx(&d, RXQ), 1, "delivered when buffers came");
	rx_used(0, NET_HDR_LEN + 100);
	cr_assert_not(net_rx_stalled(net));
	cr_assert_eq(fake->rx_ready_calls, 2, "once at attach, once when the backlog drained");
	cr_assert_eq(sink.count[1], 1, "receive interrupt");
	/* A flood with no buffers: the backlog is bounded, the rest is counted. */
	for (int i = 0; i < 1000; i++)
		rx_frame(60, 2);
	cr_assert_eq(vd_used_idx(&d, RXQ), 2, "one buffer left, one frame");
	cr_assert_gt(stats().rx_dropped, 800);
	cr_assert_eq(stats().rx_packets + stats().rx_dropped, 1001 - 128, "128 frames wait");
}

Test(net, rx_before_driver_ok_waits)
{
	cr_assert(vd_negotiate(&d, VD_VERSION_1 | F_MRG) & VD_FEATURES_OK);
	vd_setup_queue(&d, RXQ, VD_QSIZE, 1);
	vd_setup_queue(&d, TXQ, VD_QSIZE, 2);
	rx_buffers(1, 2048);
	rx_frame(100, 1);
	cr_assert(net_rx_stalled(net), "no DRIVER_OK yet: the device may not use the queue");
	cr_assert_eq(vd_used_idx(&d, RXQ), 0);
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	virtio_pci_poll(vp);
	cr_assert_eq(vd_used_idx(&d, RXQ), 1);
}

Test(net, rx_frame_too_big_for_a_single_buffer_is_dropped)
{
	driver_up(0);
	rx_buffers(1, 500);
	kick(RXQ);
	rx_frame(1000, 1);
	cr_assert_eq(stats().rx_dropped, 1);
	cr_assert_not(net_rx_stalled(net), "dropped, not waiting");
	rx_frame(400, 1);
	cr_assert_eq(vd_used_idx(&d, RXQ), 1, "the buffer serves the next frame that fits");
	rx_used(0, NET_HDR_LEN + 400);
}

Test(net, rx_frame_needing_more_buffers_than_the_ring_is_dropped)
{
	driver_up(F_MRG);
	rx_buffers(VD_QSIZE, 100);
	kick(RXQ);
	rx_frame(VD_QSIZE * 100, 1);
	cr_assert_eq(stats().rx_dropped, 1);
	rx_frame(150, 2);
	cr_assert_eq(vd_used_idx(&d, RXQ), 2, "the held buffers serve the next frame");
}

Test(net, rx_readable_buffer_needs_reset)
{
	uint64_t gpa = VD_BUF;
	uint32_t len = 2048;
	bool w = false;

	driver_up(F_MRG);
	vd_add_chain(&d, RXQ, &gpa, &len, &w, 1);
	kick(RXQ);
	rx_frame(100, 1);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
}

Test(net, rx_buffer_smaller_than_a_header_needs_reset)
{
	driver_up(F_MRG);
	rx_buffers(1, NET_HDR_LEN - 1);
	kick(RXQ);
	rx_frame(100, 1);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
}

Test(net, rx_bad_frame_sizes_are_dropped)
{
	driver_up(F_MRG);
	rx_buffers(2, 2048);
	kick(RXQ);
	rx_frame(NET_ETH_HLEN - 1, 1);
	rx_frame(NET_MAX_FRAME + 1, 1);
	cr_assert_eq(stats().rx_dropped, 2);
	cr_assert_eq(vd_used_idx(&d, RXQ), 0);
}

Test(net, reset_forgets_waiting_frames)
{
	driver_up(F_MRG);
	rx_frame(100, 1);
	rx_frame(100, 2);
	vd_set_status(&d, 0);
	cr_assert_eq(stats().rx_dropped, 2);
	cr_assert_not(net_rx_stalled(net));
	driver_up(F_MRG);
	rx_buffers(1, 2048);
	kick(RXQ);
	cr_assert_eq(vd_used_idx(&d, RXQ), 0, "nothing from before the reset");
}

Test(net_vnet, rx_header_from_the_backend_is_trimmed)
{
	struct virtio_net_hdr h = {.flags = VIRTIO_NET_HDR_F_DATA_VALID};
	uint8_t frame[100] = {0};
	uint64_t buf;

	driver_up(F_MRG);
	rx_buffers(3, 2048);
	kick(RXQ);
	net_receive(net, &h, frame, sizeof(frame));
	buf = desc_addr(rx_used(0, NET_HDR_LEN + 100));
	cr_assert_eq(vd_get(&d, buf, 1), 0, "DATA_VALID only for a driver with GUEST_CSUM");
	cr_assert_eq(vd_get(&d, buf + 10, 2), 1);
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM; /* a partial checksum the guest cannot finish */
	net_receive(net, &h, frame, sizeof(frame));
	h.flags = 0;
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	net_receive(net, &h, frame, sizeof(frame));
	cr_assert_eq(stats().rx_dropped, 2);
	cr_assert_eq(vd_used_idx(&d, RXQ), 1);
}

/* ---- the --net parser ---- */

static int parse(const char *text, struct net_spec *s)
{
	char err[160];

	return net_parse_spec(text, 0, s, err, sizeof(err));
}

Test(net_spec, user_with_forwards)
{
	struct net_spec s;
	char mac[18];

	cr_assert_eq(parse("user,hostfwd=tcp::2222-:22,hostfwd=udp:0.0.0.0:5353-10.0.2.20:53,"
			   "mac=52:54:00:AA:bb:01",
			   &s),
		     0);
	cr_assert_eq(s.kind, NET_USER);
	cr_assert_eq(s.nfwd, 2);
	cr_assert_not(s.fwd[0].udp);
	cr_assert_eq(s.fwd[0].host_addr.s_addr, htonl(0x7f000001), "127.0.0.1 by default");
	cr_assert_eq(s.fwd[0].host_port, 2222);
	cr_assert_eq(s.fwd[0].guest_addr.s_addr, htonl(0x0a00020f), "10.0.2.15 by default");
	cr_assert_eq(s.fwd[0].guest_port, 22);
	cr_assert(s.fwd[1].udp);
	cr_assert_eq(s.fwd[1].host_addr.s_addr, 0, "every address when asked");
	cr_assert_eq(s.fwd[1].guest_addr.s_addr, htonl(0x0a000214));
	net_format_mac(s.mac, mac);
	cr_assert_str_eq(mac, "52:54:00:aa:bb:01");
}

Test(net_spec, tap)
{
	struct net_spec s;

	cr_assert_eq(parse("tap,ifname=tap0", &s), 0);
	cr_assert_eq(s.kind, NET_TAP);
	cr_assert_str_eq(s.ifname, "tap0");
}

Test(net_spec, generated_macs_are_stable_local_and_distinct)
{
	struct net_spec a, b, c;
	char err[160];

	cr_assert_eq(net_parse_spec("user", 0, &a, err, sizeof(err)), 0);
	cr_assert_eq(net_parse_spec("user", 0, &b, err, sizeof(err)), 0);
	cr_assert_eq(net_parse_spec("user", 1, &c, err, sizeof(err)), 0);
	cr_assert_arr_eq(a.mac, b.mac, 6, "same command line, same MAC");
	cr_assert_arr_neq(a.mac, c.mac, 6, "the second card differs");
	cr_assert_eq(a.mac[0], 0x52, "locally administered, unicast");
	cr_assert_eq(a.mac[0] & 3, 2);
}

Test(net_spec, bad_strings)
{
	static const char *const bad[] = {
	    "",
	    "bridge",
	    "user,",
	    ",user",
	    "user,,mac=52:54:00:00:00:01",
	    "user,hostfwd",
	    "user,hostfwd=",
	    "user,hostfwd=tcp::80",
	    "user,hostfwd=tcp:80-:80",
	    "user,hostfwd=sctp::80-:80",
	    "user,hostfwd=tcp::0-:80",
	    "user,hostfwd=tcp::65536-:80",
	    "user,hostfwd=tcp::80-:99999",
	    "user,hostfwd=tcp::-1-:80",
	    "user,hostfwd=tcp::80x-:80",
	    "user,hostfwd=tcp::+80-:80",
	    "user,hostfwd=tcp:1.2.3:80-:80",
	    "user,hostfwd=tcp::80-10.0.2:80",
	    "user,hostfwd=tcp::80-:",
	    "user,mac=52:54:00:00:00",
	    "user,mac=52:54:00:00:00:0g",
	    "user,mac=53:54:00:00:00:01",
	    "user,mac=00:00:00:00:00:00",
	    "user,mac=52-54-00-00-00-01",
	    "user,mac=52:54:00:00:00:01,mac=52:54:00:00:00:02",
	    "user,ifname=tap0",
	    "user,bogus=1",
	    "tap",
	    "tap,ifname=",
	    "tap,ifname=a-name-that-is-too-long",
	    "tap,ifname=a/b",
	    "tap,ifname=a b",
	    "tap,ifname=..",
	    "tap,ifname=t0,ifname=t1",
	    "tap,hostfwd=tcp::80-:80",
	};
	struct net_spec s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[160] = "";

		cr_expect_eq(net_parse_spec(bad[i], 0, &s, err, sizeof(err)), -EINVAL,
			     "'%s' accepted", bad[i]);
		cr_expect_neq(err[0], '\0', "'%s' gave no reason", bad[i]);
	}
}

Test(net_spec, too_many_forwards)
{
	char text[1024] = "user";
	struct net_spec s;

	for (int i = 0; i < NET_MAX_HOSTFWD; i++)
		sprintf(text + strlen(text), ",hostfwd=tcp::%d-:%d", 1000 + i, 80);
	cr_assert_eq(parse(text, &s), 0);
	strcat(text, ",hostfwd=tcp::999-:80");
	cr_assert_eq(parse(text, &s), -EINVAL);
}

/* ---- snapshots ---- */

Test(net, save_gives_held_buffers_back)
{
	struct net_state st;

	driver_up(F_MRG);
	rx_buffers(2, 100);
	kick(RXQ);
	rx_frame(1000, 1); /* needs more buffers than there are: both are held */
	cr_assert_eq(vd_used_idx(&d, RXQ), 0);
	net_save(net, &st);
	cr_assert_eq(vd_used_idx(&d, RXQ), 2, "nothing outstanding in the saved queue");
	rx_used(0, 0);
	rx_used(1, 0);
	cr_assert_eq(stats().rx_dropped, 1, "the waiting frame");
	cr_assert_eq(st.magic, NET_STATE_MAGIC);
	cr_assert_eq(st.live, 1);
	cr_assert_eq(net_restore(net, &st), 0);
}

Test(net, restore_checks_its_input)
{
	struct net_state st, bad;

	driver_up(F_MRG);
	net_save(net, &st);
	bad = st;
	bad.mac[5] ^= 1;
	cr_assert_eq(net_restore(net, &bad), -EINVAL, "another card's state");
	bad = st;
	bad.version = 99;
	cr_assert_eq(net_restore(net, &bad), -EINVAL);
	bad = st;
	bad.live = 7;
	cr_assert_eq(net_restore(net, &bad), -EINVAL);
}
