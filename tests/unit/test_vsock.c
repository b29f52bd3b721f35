/*
 * virtio-vsock behind the real virtio-pci transport, driven by the test
 * driver (tests/unit/vdriver.h) in a real guest_memory, with real Unix
 * sockets on the host side. Packets are laid out here from the spec (VIRTIO
 * 1.2, 5.10.6), byte by byte, independently of src/virtio/vsock.c. There is
 * no device thread: virtio_pci_poll() serves the queues and vsock_poll() the
 * host sockets, so every step is deterministic.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus/pci.h"
#include "msi_sink.h"
#include "vdriver.h"
#include "virtio/pci.h"
#include "virtio/vsock.h"

#define CID   42
#define HOST  2
#define RX    0
#define TX    1
#define EVQ   2
#define TXBUF 0x400000ULL /* a tx packet: header, then the payload at +0x100 */
#define RXBUF 0x800000ULL /* rx buffer for descriptor head h at RXBUF + h * RXSZ */
#define RXSZ  0x1000
#define EVBUF 0xc00000ULL

enum { OP_REQUEST = 1, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQ };

struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

struct pkt {
	struct hdr h;
	uint32_t used;
	uint8_t data[RXSZ];
};


static struct guest_memory mem;
static struct bus mmio;
static struct pci_bus pb;
static struct vsock *vs;
static struct virtio_pci *vp;
static struct vdrv d;
static char dir[64], path[128];
static uint16_t rx_seen;

/* ---- the driver side ---- */

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* 5.10.6: le64 src_cid, le64 dst_cid, le32 src_port, le32 dst_port, le32 len, le16 type,
 * le16 op, le32 flags, le32 buf_alloc, le32 fwd_cnt; 44 bytes, packed. */
static void hdr_put(uint8_t *b, const struct hdr *h)
{
	put_le(b, h->src_cid, 8);
	put_le(b + 8, h->dst_cid, 8);
	put_le(b + 16, h->src_port, 4);
	put_le(b + 20, h->dst_port, 4);
	put_le(b + 24, h->len, 4);
	put_le(b + 28, h->type, 2);
	put_le(b + 30, h->op, 2);
	put_le(b + 32, h->flags, 4);
	put_le(b + 36, h->buf_alloc, 4);
	put_le(b + 40, h->fwd_cnt, 4);
}

static void hdr_get(const uint8_t *b, struct hdr *h)
{
	h->src_cid = get_le(b, 8);
	h->dst_cid = get_le(b + 8, 8);
	h->src_port = (uint32_t)get_le(b + 16, 4);
	h->dst_port = (uint32_t)get_le(b + 20, 4);
	h->len = (uint32_t)get_le(b + 24, 4);
	h->type = (uint16_t)get_le(b + 28, 2);
	h->op = (uint16_t)get_le(b + 30, 2);
	h->flags = (uint32_t)get_le(b + 32, 4);
	h->buf_alloc = (uint32_t)get_le(b + 36, 4);
	h->fwd_cnt = (uint32_t)get_le(b + 40, 4);
}

/* A well-formed packet from the guest's port sp to host port dp. */
static struct hdr mk(uint16_t op, uint32_t sp, uint32_t dp)
{
	return (struct hdr){.src_cid = CID,
			    .dst_cid = HOST,
			    .src_port = sp,
			    .dst_port = dp,
			    .type = 1,
			    .op = op,
			    .buf_alloc = 256 << 10};
}

/* Header and payload in two descriptors, as Linux's driver queues them; len is h's. */
static void tx_raw(const struct hdr *h, const void *payload, uint32_t plen)
{
	uint8_t raw[44];
	uint64_t gpa[2] = {TXBUF, TXBUF + 0x100};
	uint32_t len[2] = {44, plen};
	bool w[2] = {false, false};

	hdr_put(raw, h);
	cr_assert_eq(memory_write(&mem, TXBUF, raw, sizeof(raw)), 0);
	if (plen > 0)
		cr_assert_eq(memory_write(&mem, TXBUF + 0x100, payload, plen), 0);
	vd_add_chain(&d, TX, gpa, len, w, plen > 0 ? 2 : 1);
	vd_notify(&d, TX);
	virtio_pci_poll(vp);
}

static void tx(struct hdr h, const void *payload, uint32_t plen)
{
	h.len = plen;
	tx_raw(&h, payload, plen);
}

/* n rx buffers of RXSZ bytes, one descriptor each. */
static void rx_post(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t gpa = RXBUF + (uint64_t)d.next_desc[RX] * RXSZ;
		uint32_t len = RXSZ;
		bool w = true;

		vd_add_chain(&d, RX, &gpa, &len, &w, 1);
	}
	vd_notify(&d, RX);
	virtio_pci_poll(vp);
}

/* The next packet the device put in rx; false when there is none. */
static bool rx_next(struct pkt *p)
{
	uint8_t raw[44];
	uint32_t id, used;

	if (vd_used_idx(&d, RX) == rx_seen)
		return false;
	vd_used_elem(&d, RX, rx_seen++, &id, &used);
	cr_assert_lt(id, VD_QSIZE);
	cr_assert_geq(used, 44, "a packet has a header");
	cr_assert_leq(used, RXSZ);
	cr_assert_eq(memory_read(&mem, RXBUF + (uint64_t)id * RXSZ, raw, 44), 0);
	hdr_get(raw, &p->h);
	p->used = used;
	cr_assert_eq(p->h.len, used - 44, "len matches what was written");
	cr_assert_eq(memory_read(&mem, RXBUF + (uint64_t)id * RXSZ + 44, p->data, p->h.len), 0);
	/* An RST answers a packet to another CID from that CID: the guest's socket is there. */
	cr_assert(p->h.src_cid == HOST || p->h.op == OP_RST);
	cr_assert_eq(p->h.dst_cid, CID);
	cr_assert_eq(p->h.type, 1);
	return true;
}

/* A REQUEST from the host for guest port; its source port is the device's choice. */
static void rx_request(struct pkt *p, uint32_t port)
{
	cr_assert(rx_next(p), "expected a REQUEST in rx, got nothing");
	cr_assert_eq(p->h.op, OP_REQUEST);
	cr_assert_eq(p->h.dst_port, port);
	cr_assert_eq(p->h.buf_alloc, VSOCK_BUF_ALLOC);
}

static void rx_expect(struct pkt *p, uint16_t op, uint32_t src_port, uint32_t dst_port)
{
	cr_assert(rx_next(p), "expected op %u in rx, got nothing", op);
	cr_assert_eq(p->h.op, op, "op %u, expected %u", p->h.op, op);
	cr_assert_eq(p->h.src_port, src_port);
	cr_assert_eq(p->h.dst_port, dst_port);
}

/* ---- the host side ---- */

static void port_path(char *out, size_t n, uint32_t port)
{
	snprintf(out, n, "%s_%u", path, port);
}

static int unix_fd(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	return fd;
}

static struct sockaddr_un addr_of(const char *p)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	cr_assert_lt(strlen(p), sizeof(sa.sun_path));
	memcpy(sa.sun_path, p, strlen(p));
	return sa;
}

static int host_listen(uint32_t port)
{
	char p[160];
	struct sockaddr_un sa;
	int fd = unix_fd();

	port_path(p, sizeof(p), port);
	sa = addr_of(p);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
	cr_assert_eq(listen(fd, 8), 0);
	return fd;
}

static bool readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

static int host_accept(int lfd)
{
	cr_assert(readable(lfd, 1000), "nothing connected");
	return accept(lfd, NULL, NULL);
}

/* A host program on PATH; sends line first if not NULL. */
static int host_connect(const char *line)
{
	struct sockaddr_un sa = addr_of(path);
	int fd = unix_fd();

	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (line != NULL)
		cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	vsock_poll(vs);
	return fd;
}

/* Reads what is there within ms; returns the count, 0 at EOF, -1 when nothing came. */
static ssize_t host_read(int fd, void *buf, size_t n, int ms)
{
	if (!readable(fd, ms))
		return -1;
	return read(fd, buf, n);
}

/* The device closed its end: EOF, or ECONNRESET when it left our request unread. */
static bool host_closed(int fd)
{
	char buf[64];
	ssize_t n;

	if (!readable(fd, 1000))
		return false;
	n = read(fd, buf, sizeof(buf));
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void host_send(int fd, const void *buf, size_t n)
{
	cr_assert_eq(write(fd, buf, n), (ssize_t)n);
	vsock_poll(vs);
}

/* ---- set-up ---- */

static void setup_with(unsigned max_conns)
{
	struct pci_bus_config cfg = {
	    .mmio = &mmio,
	    .ecam_base = VD_ECAM,
	    .mmio32_base = LAYOUT_PCI_MMIO,
	    .mmio32_end = LAYOUT_PCI_MMIO_END,
	    .msi = {&sink_ops, &sink},
	};
	struct vsock_config vc = {.cid = CID, .max_conns = max_conns};

	memset(&sink, 0, sizeof(sink));
	rx_seen = 0;
	strcpy(dir, "/tmp/tabique-vsock-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	strcpy(vc.path, path);
	cr_assert_eq(memory_init(&mem, VD_MEM_SIZE), 0);
	bus_init(&mmio, "mmio");
	cr_assert_eq(pci_bus_init(&pb, &cfg), 0);
	cr_assert_eq(vsock_create(&vs, &vc), 0);
	cr_assert_eq(virtio_pci_create(&vp, vsock_virtio(vs), &mem, -1), 0);
	cr_assert_eq(vsock_attach(vs), 0);
	cr_assert_eq(pci_add_device(&pb, virtio_pci_device(vp)), 0);
	vd_probe(&d, &mmio, &mem, 1 << 3);
	vd_enable_msix(&d, 4);
	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	vd_common_write(&d, VD_MSIX, 0, 2);
	for (unsigned q = 0; q < 3; q++)
		vd_setup_queue(&d, q, VD_QSIZE, (uint16_t)(q + 1));
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	virtio_pci_poll(vp);
}

static void setup(void)
{
	setup_with(0);
}

static void teardown(void)
{
	char cmd[160];

	pci_bus_destroy(&pb);
	virtio_pci_destroy(vp);
	vsock_destroy(vs);
	bus_destroy(&mmio);
	memory_destroy(&mem);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(vsock, .init = setup, .fini = teardown);

/* Guest port gp connected to host port hp through a listener; returns the host's end. */
static int open_guest_stream(int lfd, uint32_t gp, uint32_t hp, uint32_t buf_alloc)
{
	struct hdr h = mk(OP_REQUEST, gp, hp);
	struct pkt p;

	h.buf_alloc = buf_alloc;
	tx(h, NULL, 0);
	rx_expect(&p, OP_RESPONSE, hp, gp);
	cr_assert_eq(p.h.buf_alloc, VSOCK_BUF_ALLOC);
	return host_accept(lfd);
}

Test(vsock, identity_and_config)
{
	cr_assert_eq(vd_cfg_read(&d, 0x02, 2), 0x1053, "virtio socket: 0x1040 + 19");
	cr_assert_eq(vd_common_read(&d, VD_NUMQ, 2), 3, "rx, tx, event");
	cr_assert_eq(vd_device_features(&d) & 0xffffffffu, 1u | (1u << 28) | (1u << 29),
		     "VIRTIO_VSOCK_F_STREAM, and the transport's");
	cr_assert_eq(vd_mread(&d, d.bar + d.device, 4), CID, "guest_cid low");
	cr_assert_eq(vd_mread(&d, d.bar + d.device + 4, 4), 0, "guest_cid high");
	cr_assert_eq(vd_mread(&d, d.bar + d.device, 8), CID);
}

Test(vsock, listening_socket_is_removed_on_destroy)
{
	cr_assert_eq(access(path, F_OK), 0);
	vsock_destroy(vs);
	cr_assert_neq(access(path, F_OK), 0, "gone at exit");
	vs = NULL;
}

Test(vsock, guest_connects_to_a_listening_host_port_and_data_flows)
{
	int lfd = host_listen(6000), fd;
	char buf[64];
	struct pkt p;

	rx_post(4);
	fd = open_guest_stream(lfd, 1234, 6000, 256 << 10);
	tx(mk(OP_RW, 1234, 6000), "hello", 5);
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 1000), 5);
	cr_assert_arr_eq(buf, "hello", 5);
	host_send(fd, "world!", 6);
	rx_expect(&p, OP_RW, 6000, 1234);
	cr_assert_eq(p.h.len, 6);
	cr_assert_arr_eq(p.data, "world!", 6);
	cr_assert_eq(p.h.fwd_cnt, 5, "the device forwarded the guest's 5 bytes");
	cr_assert_eq(vsock_connections(vs), 1);
	cr_assert_geq(sink.count[1], 1, "rx interrupt");
	close(fd);
	close(lfd);
}

Test(vsock, linux_style_split_rx_buffers)
{
	int lfd = host_listen(6001), fd;
	uint64_t gpa[2] = {RXBUF, RXBUF + 0x1000};
	uint32_t len[2] = {44, 100}, id, used;
	bool w[2] = {true, true};
	uint8_t raw[44], data[8];
	struct hdr h;

	rx_post(1);
	fd = open_guest_stream(lfd, 7, 6001, 4096);
	vd_add_chain(&d, RX, gpa, len, w, 2); /* header and data in separate buffers */
	vd_notify(&d, RX);
	virtio_pci_poll(vp);
	host_send(fd, "split", 5);
	cr_assert_eq(vd_used_idx(&d, RX), 2);
	vd_used_elem(&d, RX, 1, &id, &used);
	cr_assert_eq(used, 49);
	cr_assert_eq(memory_read(&mem, RXBUF, raw, 44), 0);
	hdr_get(raw, &h);
	cr_assert_eq(h.op, OP_RW);
	cr_assert_eq(h.len, 5);
	cr_assert_eq(memory_read(&mem, RXBUF + 0x1000, data, 5), 0);
	cr_assert_arr_eq(data, "split", 5);
	close(fd);
	close(lfd);
}

Test(vsock, host_data_never_exceeds_the_guests_credit)
{
	int lfd = host_listen(6002), fd;
	char big[3000];
	struct pkt p;
	struct hdr h;
	uint32_t got = 0;

	memset(big, 'x', sizeof(big));
	rx_post(8);
	fd = open_guest_stream(lfd, 99, 6002, 1000);
	host_send(fd, big, sizeof(big));
	while (rx_next(&p)) {
		if (p.h.op == OP_RW)
			got += p.h.len;
		else
			cr_assert_eq(p.h.op, OP_CREDIT_REQ, "out of credit: the device may ask");
	}
	cr_assert_eq(got, 1000, "exactly the credit the guest gave");
	/* The guest read 600 of them: 600 more may come. */
	h = mk(OP_CREDIT_UPDATE, 99, 6002);
	h.buf_alloc = 1000;
	h.fwd_cnt = 600;
	rx_post(4);
	tx(h, NULL, 0);
	vsock_poll(vs);
	got = 0;
	while (rx_next(&p))
		if (p.h.op == OP_RW)
			got += p.h.len;
	cr_assert_eq(got, 600);
	close(fd);
	close(lfd);
}

Test(vsock, guest_connect_without_a_listener_is_refused)
{
	struct pkt p;

	rx_post(2);
	tx(mk(OP_REQUEST, 1111, 7000), NULL, 0);
	rx_expect(&p, OP_RST, 7000, 1111);
	cr_assert_eq(vsock_connections(vs), 0);
}

Test(vsock, host_connect_reaches_the_guest)
{
	char buf[64] = {0}, want[32];
	struct pkt p;
	struct hdr h;
	int fd;

	rx_post(4);
	fd = host_connect("CONNECT 5000\n");
	rx_request(&p, 5000);
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 50), -1, "no OK before the guest accepts");
	/* The guest accepts: the host program learns its port. */
	h = mk(OP_RESPONSE, 5000, p.h.src_port);
	tx(h, NULL, 0);
	snprintf(want, sizeof(want), "OK %u\n", p.h.src_port);
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 1000), (ssize_t)strlen(want));
	cr_assert_str_eq(buf, want);
	host_send(fd, "ping", 4);
	rx_expect(&p, OP_RW, h.dst_port, 5000);
	cr_assert_arr_eq(p.data, "ping", 4);
	tx(mk(OP_RW, 5000, h.dst_port), "pong", 4);
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 1000), 4);
	cr_assert_arr_eq(buf, "pong", 4);
	close(fd);
}

Test(vsock, host_connect_refused_by_the_guest_closes_the_socket)
{
	struct pkt p;
	char buf[16];
	int fd;

	rx_post(2);
	fd = host_connect("CONNECT 5001\n");
	rx_request(&p, 5001);
	tx(mk(OP_RST, 5001, p.h.src_port), NULL, 0);
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 1000), 0, "EOF: refused");
	cr_assert_eq(vsock_connections(vs), 0);
	close(fd);
}

Test(vsock, bad_host_requests_are_closed)
{
	const char *bad[] = {"HELLO 5\n",     "CONNECT\n",
			     "CONNECT x\n",   "CONNECT 4294967295\n",
			     "CONNECT 5 6\n", "CONNECT 000000000000000000000000000000000000001\n"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = host_connect(bad[i]);

		cr_assert(host_closed(fd), "'%s' closed", bad[i]);
		close(fd);
	}
	vsock_poll(vs);
	cr_assert_eq(vsock_connections(vs), 0);
	cr_assert_eq(vd_used_idx(&d, RX), 0, "the guest heard nothing");
}

static void expect_rst_for(struct hdr h, const void *payload, uint32_t plen)
{
	struct pkt p;

	tx_raw(&h, payload, plen);
	rx_expect(&p, OP_RST, h.dst_port, h.src_port);
	cr_assert_eq(p.h.src_cid, h.dst_cid == 7 ? 7 : HOST);
	cr_assert_eq(vd_status(&d) & VD_NEEDS_RESET, 0);
}

Test(vsock, bad_headers_get_rst)
{
	static uint8_t big[VSOCK_MAX_PKT + 1];
	int lfd = host_listen(6003);
	struct hdr h;

	rx_post(10);
	h = mk(OP_REQUEST, 1, 6003);
	h.src_cid = CID + 1; /* not the guest's own address */
	expect_rst_for(h, NULL, 0);
	h = mk(OP_REQUEST, 2, 6003);
	h.dst_cid = 7; /* another VM */
	expect_rst_for(h, NULL, 0);
	h = mk(OP_REQUEST, 3, 6003);
	h.type = 2; /* SEQPACKET was not negotiated */
	expect_rst_for(h, NULL, 0);
	h = mk(99, 4, 6003);
	expect_rst_for(h, NULL, 0);
	h = mk(0, 5, 6003); /* VIRTIO_VSOCK_OP_INVALID */
	expect_rst_for(h, NULL, 0);
	h = mk(OP_RW, 6, 6003); /* data without a connection */
	h.len = 3;
	expect_rst_for(h, "abc", 3);
	h = mk(OP_RW, 7, 6003);
	h.len = sizeof(big); /* well framed, but beyond the largest packet */
	expect_rst_for(h, big, sizeof(big));
	cr_assert_eq(vsock_connections(vs), 0);
	cr_assert(!readable(lfd, 0), "nothing reached the host");
	/* An RST is never answered. */
	h = mk(OP_RST, 8, 6003);
	h.src_cid = 1234;
	tx(h, NULL, 0);
	cr_assert_eq(vd_used_idx(&d, RX), 7);
	close(lfd);
}

Test(vsock, bad_op_on_an_open_stream_resets_it)
{
	int lfd = host_listen(6004), fd;
	char buf[8];
	struct pkt p;

	rx_post(4);
	fd = open_guest_stream(lfd, 10, 6004, 4096);
	tx(mk(42, 10, 6004), NULL, 0);
	rx_expect(&p, OP_RST, 6004, 10);
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 1000), 0, "the host side is closed");
	cr_assert_eq(vsock_connections(vs), 0);
	close(fd);
	close(lfd);
}

Test(vsock, len_not_matching_the_chain_needs_reset)
{
	int lfd = host_listen(6005), fd;
	struct hdr h;
	char buf[8];

	rx_post(2);
	fd = open_guest_stream(lfd, 11, 6005, 4096);
	h = mk(OP_RW, 11, 6005);
	h.len = 10;
	tx_raw(&h, "abc", 3);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 1000), 0, "no stream survives");
	cr_assert_eq(vsock_connections(vs), 0);
	close(fd);
	close(lfd);
}

Test(vsock, chains_that_are_not_packets_need_reset)
{
	uint64_t gpa[2] = {TXBUF, TXBUF + 0x100};
	uint32_t len[2] = {20, 0};
	bool w[2] = {false, true};

	vd_add_chain(&d, TX, gpa, len, w, 1); /* shorter than a header */
	vd_notify(&d, TX);
	virtio_pci_poll(vp);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
	/* A reset brings it back, and a writable buffer on tx is refused too. */
	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	for (unsigned q = 0; q < 3; q++)
		vd_setup_queue(&d, q, VD_QSIZE, (uint16_t)(q + 1));
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	cr_assert_eq(vd_status(&d) & VD_NEEDS_RESET, 0);
	len[0] = 44;
	len[1] = 16;
	vd_add_chain(&d, TX, gpa, len, w, 2);
	vd_notify(&d, TX);
	virtio_pci_poll(vp);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
}

Test(vsock, tiny_rx_buffers_need_reset)
{
	uint64_t gpa = RXBUF;
	uint32_t len = 44; /* a header and not one byte more */
	bool w = true;

	vd_add_chain(&d, RX, &gpa, &len, &w, 1);
	vd_notify(&d, RX);
	virtio_pci_poll(vp);
	tx(mk(OP_REQUEST, 1, 9999), NULL, 0);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
}

TestSuite(vsock_small, .init = NULL, .fini = teardown);

Test(vsock_small, the_table_is_bounded)
{
	int lfd, fds[2], extra;
	struct pkt p;

	setup_with(2);
	lfd = host_listen(6006);
	rx_post(6);
	fds[0] = open_guest_stream(lfd, 1, 6006, 4096);
	fds[1] = open_guest_stream(lfd, 2, 6006, 4096);
	tx(mk(OP_REQUEST, 3, 6006), NULL, 0);
	rx_expect(&p, OP_RST, 6006, 3);
	cr_assert(!readable(lfd, 0), "the third never reached the host");
	extra = host_connect("CONNECT 80\n");
	cr_assert(host_closed(extra), "host side refused too");
	cr_assert_eq(vsock_connections(vs), 2);
	/* One goes: room again. */
	tx(mk(OP_RST, 1, 6006), NULL, 0);
	cr_assert_eq(vsock_connections(vs), 1);
	close(open_guest_stream(lfd, 4, 6006, 4096));
	close(extra);
	close(fds[0]);
	close(fds[1]);
	close(lfd);
}

Test(vsock, guest_shutdown_and_host_close)
{
	int lfd = host_listen(6007), fd;
	char buf[8];
	struct pkt p;
	struct hdr h;

	rx_post(6);
	fd = open_guest_stream(lfd, 12, 6007, 4096);
	h = mk(OP_SHUTDOWN, 12, 6007);
	h.flags = 2; /* SEND: no more data from the guest */
	tx(h, NULL, 0);
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 1000), 0, "the host program sees EOF");
	host_send(fd, "bye", 3); /* the other way still works */
	rx_expect(&p, OP_RW, 6007, 12);
	close(fd);
	vsock_poll(vs);
	rx_expect(&p, OP_SHUTDOWN, 6007, 12);
	cr_assert_eq(p.h.flags, 3, "the host program is gone both ways");
	/* The guest completes the close (5.10.6.6): its RST ends it. */
	tx(mk(OP_RST, 12, 6007), NULL, 0);
	cr_assert_eq(vsock_connections(vs), 0);
	close(lfd);
}

Test(vsock, guest_close_gets_rst_after_its_data)
{
	int lfd = host_listen(6008), fd;
	char buf[16];
	struct pkt p;
	struct hdr h;

	rx_post(4);
	fd = open_guest_stream(lfd, 13, 6008, 4096);
	tx(mk(OP_RW, 13, 6008), "last", 4);
	h = mk(OP_SHUTDOWN, 13, 6008);
	h.flags = 3;
	tx(h, NULL, 0);
	rx_expect(&p, OP_RST, 6008, 13);
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 1000), 4, "the data got there first");
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 1000), 0);
	cr_assert_eq(vsock_connections(vs), 0);
	close(fd);
	close(lfd);
}

Test(vsock, a_host_that_does_not_read_stops_the_guest_by_credit)
{
	static uint8_t chunk[VSOCK_MAX_PKT];
	int lfd = host_listen(6009), fd, sent = 0;
	struct pkt p;
	bool reset = false;

	rx_post(8);
	fd = open_guest_stream(lfd, 14, 6009, 4096);
	/* A guest that ignores the credit: the device buffers at most buf_alloc, then resets. */
	for (int i = 0; i < 200 && !reset; i++) {
		tx(mk(OP_RW, 14, 6009), chunk, sizeof(chunk));
		sent++;
		while (rx_next(&p))
			reset |= p.h.op == OP_RST;
		if (i % 6 == 5)
			rx_post(6);
	}
	cr_assert(reset, "an RST once more than the credit was sent");
	cr_assert_lt(sent, 200);
	close(fd);
	close(lfd);
}

Test(vsock, credit_update_after_the_host_consumed)
{
	static uint8_t chunk[20000];
	int lfd = host_listen(6010), fd;
	struct pkt p;
	bool update = false;

	rx_post(4);
	fd = open_guest_stream(lfd, 15, 6010, 4096);
	tx(mk(OP_RW, 15, 6010), chunk, sizeof(chunk));
	while (rx_next(&p))
		if (p.h.op == OP_CREDIT_UPDATE && p.h.fwd_cnt == sizeof(chunk))
			update = true;
	cr_assert(update, "a quarter of the buffer came free: the guest is told");
	/* And on request. */
	tx(mk(OP_CREDIT_REQ, 15, 6010), NULL, 0);
	rx_expect(&p, OP_CREDIT_UPDATE, 6010, 15);
	cr_assert_eq(p.h.buf_alloc, VSOCK_BUF_ALLOC);
	close(fd);
	close(lfd);
}

Test(vsock, driver_reset_drops_every_connection)
{
	int lfd = host_listen(6011), a, b;
	struct pkt p;
	char buf[8];

	rx_post(4);
	a = open_guest_stream(lfd, 16, 6011, 4096);
	b = host_connect("CONNECT 5002\n");
	rx_request(&p, 5002);
	vd_set_status(&d, 0);
	cr_assert_eq(host_read(a, buf, sizeof(buf), 1000), 0);
	cr_assert_eq(host_read(b, buf, sizeof(buf), 1000), 0);
	cr_assert_eq(vsock_connections(vs), 0);
	/* Before the driver is up again, host requests are refused. */
	close(b);
	b = host_connect("CONNECT 5003\n");
	cr_assert(host_closed(b));
	close(a);
	close(b);
	close(lfd);
}

Test(vsock, transport_reset_event)
{
	int lfd = host_listen(6012), fd;
	uint64_t gpa = EVBUF;
	uint32_t len = 4, id, used;
	bool w = true;
	char buf[8];

	rx_post(2);
	fd = open_guest_stream(lfd, 17, 6012, 4096);
	cr_assert_eq(memory_write(&mem, EVBUF, "\xff\xff\xff\xff", 4), 0);
	vd_add_chain(&d, EVQ, &gpa, &len, &w, 1);
	vd_notify(&d, EVQ);
	virtio_pci_poll(vp);
	cr_assert_eq(vd_used_idx(&d, EVQ), 0, "events only when there is one");
	vsock_transport_reset(vs);
	cr_assert_eq(vd_used_idx(&d, EVQ), 1);
	vd_used_elem(&d, EVQ, 0, &id, &used);
	cr_assert_eq(used, 4);
	cr_assert_eq(vd_get(&d, EVBUF, 4), 0, "VIRTIO_VSOCK_EVENT_TRANSPORT_RESET");
	cr_assert_eq(host_read(fd, buf, sizeof(buf), 1000), 0);
	cr_assert_eq(vsock_connections(vs), 0);
	close(fd);
	close(lfd);
}

/* ---- the --vsock option ---- */

Test(vsock_spec, good)
{
	struct vsock_config c;

	cr_assert_eq(vsock_parse_spec("cid=3,socket=/run/vm.sock", &c), 0);
	cr_assert_eq(c.cid, 3);
	cr_assert_str_eq(c.path, "/run/vm.sock");
	cr_assert_eq(vsock_parse_spec("socket=rel/v=1.sock,cid=4294967294", &c), 0);
	cr_assert_eq(c.cid, 4294967294ULL);
	cr_assert_str_eq(c.path, "rel/v=1.sock");
}

Test(vsock_spec, bad)
{
	char longp[VSOCK_PATH_MAX + 16];
	const char *bad[] = {"",
			     "cid=3",
			     "socket=/x",
			     "cid=2,socket=/x",
			     "cid=0,socket=/x",
			     "cid=-3,socket=/x",
			     "cid=+3,socket=/x",
			     "cid=3x,socket=/x",
			     "cid=4294967295,socket=/x",
			     "cid=18446744073709551616,socket=/x",
			     "cid=3,socket=",
			     "cid=3,socket=/x,",
			     "cid=3,cid=4,socket=/x",
			     "cid=3,socket=/x,socket=/y",
			     "cid=3,socket=/x,port=5",
			     "cid,socket=/x",
			     longp};
	struct vsock_config c;

	memset(longp, 0, sizeof(longp));
	strcpy(longp, "cid=3,socket=/");
	memset(longp + strlen(longp), 'a', VSOCK_PATH_MAX);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(vsock_parse_spec(bad[i], &c), -EINVAL, "'%s' accepted", bad[i]);
	/* The longest path that leaves room for "_<port>". */
	longp[strlen(longp) - 1] = '\0';
	cr_assert_eq(vsock_parse_spec(longp, &c), 0);
}

Test(vsock_spec, in_use_and_missing_directory)
{
	struct vsock_config c = {.cid = 3};
	struct vsock *a, *b;

	strcpy(c.path, "/nonexistent-dir/v.sock");
	cr_assert_eq(vsock_create(&a, &c), -ENOENT);
	strcpy(c.path, "/tmp/tabique-vsock-inuse.sock");
	unlink(c.path);
	cr_assert_eq(vsock_create(&a, &c), 0);
	cr_assert_eq(vsock_create(&b, &c), -EADDRINUSE, "a live listener is never taken over");
	vsock_destroy(a);
	cr_assert_neq(access(c.path, F_OK), 0);
}
