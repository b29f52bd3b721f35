#include "virtio/vsock.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"
#include "virtio/queue.h"

/* Packet fields (5.10.6). */
#define VSOCK_TYPE_STREAM	    1
#define VSOCK_SHUTDOWN_RCV	    1
#define VSOCK_SHUTDOWN_SEND	    2
#define VSOCK_SHUTDOWN_BOTH	    3
#define VSOCK_EVENT_TRANSPORT_RESET 0
#define VSOCK_F_STREAM		    0
#define VSOCK_PORT_MAX		    0xfffffffeu /* 0xffffffff is "any port" */

enum vsock_op {
	VSOCK_OP_INVALID,
	VSOCK_OP_REQUEST,
	VSOCK_OP_RESPONSE,
	VSOCK_OP_RST,
	VSOCK_OP_SHUTDOWN,
	VSOCK_OP_RW,
	VSOCK_OP_CREDIT_UPDATE,
	VSOCK_OP_CREDIT_REQUEST,
};

#define VSOCK_MAX_IOV	    64
#define VSOCK_HASH_SIZE	    256
#define VSOCK_MAX_ORPHANS   64 /* RSTs for packets without a connection, waiting for rx */
#define VSOCK_LINE_MAX	    32 /* "CONNECT 4294967294\r\n" and a little more */
#define VSOCK_EVENTS	    32
#define VSOCK_ACCEPT_BATCH  16
#define VSOCK_BACKLOG	    64
#define VSOCK_HOST_PORT_MIN 0x40000000u /* our ports for host-initiated streams */
/* Tell the guest about the room it got back once a quarter of its credit is free again. */
#define VSOCK_CREDIT_STEP (VSOCK_BUF_ALLOC / 4)

/* The packet header with its fields in host order; on the wire it is 44 bytes, little-endian. */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

enum vsock_state {
	VSOCK_HOST_LINE,    /* accepted on PATH, reading "CONNECT <port>\n" */
	VSOCK_HOST_REQUEST, /* REQUEST sent to the guest, waiting for RESPONSE or RST */
	VSOCK_ESTABLISHED,
	VSOCK_RESETTING, /* the host socket is closed; an RST to send, then it goes */
};

/* What a connection owes the guest; control packets go out in this order, before data. */
#define VSOCK_SEND_RST	      0x01
#define VSOCK_SEND_REQUEST    0x02
#define VSOCK_SEND_RESPONSE   0x04
#define VSOCK_SEND_CREDIT     0x08 /* CREDIT_UPDATE */
#define VSOCK_SEND_CREDIT_REQ 0x10
#define VSOCK_SEND_SHUTDOWN   0x20 /* after the data: only queued at the host's EOF */

struct vsock_conn {
	struct vsock_conn *hnext;	  /* hash bucket */
	struct vsock_conn *prev, *next;	  /* every connection */
	struct vsock_conn *pprev, *pnext; /* waiting to send to the guest */
	bool pending, hashed, dead;
	enum vsock_state state;
	int fd;		 /* the Unix socket; -1 once closed */
	bool watched;	 /* fd is in the epoll set */
	uint32_t events; /* what it is registered for */
	uint32_t local_port, peer_port;
	unsigned send;		 /* VSOCK_SEND_* */
	uint32_t shutdown_flags; /* of the SHUTDOWN to send */
	/* host -> guest */
	bool readable; /* the socket has data (or EOF) not read yet */
	bool host_eof, host_hup, credit_requested;
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	/* guest -> host */
	uint32_t peer_shutdown; /* SHUTDOWN flags the guest sent */
	bool wr_shut;		/* shutdown(SHUT_WR) done */
	uint32_t fwd_cnt, last_fwd_sent;
	uint8_t *buf; /* VSOCK_BUF_ALLOC bytes, a ring, allocated when first needed */
	uint32_t buf_head, buf_len;
	char line[VSOCK_LINE_MAX];
	unsigned line_len;
};

/* An RST owed for a packet that has no connection: the ports as the guest sees them. */
struct vsock_orphan {
	uint64_t src_cid;
	uint32_t src_port, dst_port;
};

struct vsock {
	struct virtio_device vdev; /* first: vsock_of() */
	struct vsock_config cfg;
	int listen_fd, epfd;
	bool listen_paused; /* out of fds: accept again when a connection goes */
	bool bound;
	dev_t sock_dev;
	ino_t sock_ino;
	bool live;	    /* the driver is up: a queue was notified since the last reset */
	bool failed;	    /* we set NEEDS_RESET: nothing more until the driver resets */
	bool event_pending; /* a TRANSPORT_RESET waits for an event buffer */
	struct vsock_conn *hash[VSOCK_HASH_SIZE];
	struct vsock_conn *all;
	struct vsock_conn *phead, *ptail;
	struct vsock_conn *zombies; /* freed while an epoll batch may still name them */
	unsigned nconns;
	uint32_t next_host_port;
	struct vsock_orphan orphans[VSOCK_MAX_ORPHANS];
	unsigned orphan_head, norphans;
	bool rx_held; /* rx_chain was popped and not used yet */
	struct vq_chain rx_chain;
	struct iovec rx_iov[VSOCK_MAX_IOV];
	struct iovec tx_iov[VSOCK_MAX_IOV];
	struct iovec slice[VSOCK_MAX_IOV];
	struct vsock_stats stats; /* written by the device thread, read by any */
};

/* Counters are read from other threads (the control API): relaxed atomics suffice. */
static void vsock_count(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static struct vsock *vsock_of(struct virtio_device *dev)
{
	return (struct vsock *)((char *)dev - offsetof(struct vsock, vdev));
}

static uint32_t vsock_min(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* ---- the wire format ---- */

static uint64_t vsock_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void vsock_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void vsock_hdr_decode(const uint8_t *b, struct vsock_hdr *h)
{
	h->src_cid = vsock_get(b, 8);
	h->dst_cid = vsock_get(b + 8, 8);
	h->src_port = (uint32_t)vsock_get(b + 16, 4);
	h->dst_port = (uint32_t)vsock_get(b + 20, 4);
	h->len = (uint32_t)vsock_get(b + 24, 4);
	h->type = (uint16_t)vsock_get(b + 28, 2);
	h->op = (uint16_t)vsock_get(b + 30, 2);
	h->flags = (uint32_t)vsock_get(b + 32, 4);
	h->buf_alloc = (uint32_t)vsock_get(b + 36, 4);
	h->fwd_cnt = (uint32_t)vsock_get(b + 40, 4);
}

static void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *b)
{
	vsock_put(b, h->src_cid, 8);
	vsock_put(b + 8, h->dst_cid, 8);
	vsock_put(b + 16, h->src_port, 4);
	vsock_put(b + 20, h->dst_port, 4);
	vsock_put(b + 24, h->len, 4);
	vsock_put(b + 28, h->type, 2);
	vsock_put(b + 30, h->op, 2);
	vsock_put(b + 32, h->flags, 4);
	vsock_put(b + 36, h->buf_alloc, 4);
	vsock_put(b + 40, h->fwd_cnt, 4);
}

/* The part [off, off + len) of iov[0, n) as iovecs in out (capacity max); returns their count. */
static unsigned vsock_iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len,
				struct iovec *out, unsigned max)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len > 0 && k < max; i++) {
		size_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[k].iov_len = l - off < len ? l - off : len;
		len -= out[k].iov_len;
		off = 0;
		k++;
	}
	return k;
}

/* ---- the --vsock option ---- */

static int vsock_parse_cid(const char *v, uint64_t *cid)
{
	unsigned long long n;
	char *end;

	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < VSOCK_CID_MIN || n > VSOCK_CID_MAX)
		return -EINVAL;
	*cid = n;
	return 0;
}

/* One "key=value" of the spec. */
static int vsock_parse_item(char *item, struct vsock_config *cfg, bool *have_cid, bool *have_path)
{
	char *value = strchr(item, '=');

	if (value == NULL) {
		log_error("--vsock: '%s' is not key=value: use --vsock cid=N,socket=PATH", item);
		return -EINVAL;
	}
	*value++ = '\0';
	if (strcmp(item, "cid") == 0 && !*have_cid) {
		*have_cid = true;
		if (vsock_parse_cid(value, &cfg->cid) == 0)
			return 0;
		log_error("--vsock: cid '%s' is not a guest CID: use a number from %d to %llu",
			  value, VSOCK_CID_MIN, VSOCK_CID_MAX);
		return -EINVAL;
	}
	if (strcmp(item, "socket") == 0 && !*have_path) {
		*have_path = true;
		if (*value != '\0' && strlen(value) <= VSOCK_PATH_MAX) {
			strcpy(cfg->path, value);
			return 0;
		}
		log_error("--vsock: socket= needs a path of 1 to %d bytes", VSOCK_PATH_MAX);
		return -EINVAL;
	}
	if (strcmp(item, "cid") == 0 || strcmp(item, "socket") == 0)
		log_error("--vsock: %s is given twice", item);
	else
		log_error("--vsock: unknown setting '%s': use --vsock cid=N,socket=PATH", item);
	return -EINVAL;
}

int vsock_parse_spec(const char *spec, struct vsock_config *cfg)
{
	bool have_cid = false, have_path = false;
	char *copy = strdup(spec), *rest = copy, *item;
	int ret = 0;

	if (copy == NULL)
		return -ENOMEM;
	memset(cfg, 0, sizeof(*cfg));
	while (ret == 0 && (item = strsep(&rest, ",")) != NULL)
		ret = vsock_parse_item(item, cfg, &have_cid, &have_path);
	free(copy);
	if (ret == 0 && !have_cid) {
		log_error("--vsock: cid=N is missing: the guest's CID, %d or more", VSOCK_CID_MIN);
		ret = -EINVAL;
	} else if (ret == 0 && !have_path) {
		log_error("--vsock: socket=PATH is missing: the Unix socket host programs use");
		ret = -EINVAL;
	}
	return ret;
}

/* ---- the connection table ---- */

_Static_assert(VSOCK_HASH_SIZE == 256, "vsock_hash() keeps the top 8 bits");

static unsigned vsock_hash(uint32_t local, uint32_t peer)
{
	return (local * 2654435761u ^ peer * 2246822519u) >> 24; /* VSOCK_HASH_SIZE buckets */
}

static struct vsock_conn *vsock_lookup(struct vsock *vs, uint32_t local, uint32_t peer)
{
	struct vsock_conn *c = vs->hash[vsock_hash(local, peer)];

	while (c != NULL && (c->local_port != local || c->peer_port != peer))
		c = c->hnext;
	return c;
}

static void vsock_hash_add(struct vsock *vs, struct vsock_conn *c)
{
	unsigned h = vsock_hash(c->local_port, c->peer_port);

	c->hnext = vs->hash[h];
	vs->hash[h] = c;
	c->hashed = true;
}

static void vsock_hash_del(struct vsock *vs, struct vsock_conn *c)
{
	struct vsock_conn **p = &vs->hash[vsock_hash(c->local_port, c->peer_port)];

	if (!c->hashed)
		return;
	while (*p != c)
		p = &(*p)->hnext;
	*p = c->hnext;
	c->hashed = false;
}

static void vsock_pending_add(struct vsock *vs, struct vsock_conn *c)
{
	if (c->pending)
		return;
	c->pending = true;
	c->pnext = NULL;
	c->pprev = vs->ptail;
	if (vs->ptail != NULL)
		vs->ptail->pnext = c;
	else
		vs->phead = c;
	vs->ptail = c;
}

static void vsock_pending_del(struct vsock *vs, struct vsock_conn *c)
{
	if (!c->pending)
		return;
	if (c->pprev != NULL)
		c->pprev->pnext = c->pnext;
	else
		vs->phead = c->pnext;
	if (c->pnext != NULL)
		c->pnext->pprev = c->pprev;
	else
		vs->ptail = c->pprev;
	c->pending = false;
}

/* The credit the guest gave us: what it can still take. Its counters are hostile: wrap = 0. */
static uint32_t vsock_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* Host data is there to forward, credit aside. */
static bool vsock_conn_wants_read(const struct vsock_conn *c)
{
	return c->state == VSOCK_ESTABLISHED && c->readable && !c->host_eof &&
	       !(c->peer_shutdown & VSOCK_SHUTDOWN_RCV);
}

static bool vsock_conn_has_work(const struct vsock_conn *c)
{
	return c->send != 0 || (vsock_conn_wants_read(c) && vsock_credit(c) > 0);
}

/* Level-triggered: only ask for what we would act on now, or the thread would spin. */
static uint32_t vsock_conn_want(const struct vsock_conn *c)
{
	uint32_t ev = 0;

	if (c->state == VSOCK_HOST_LINE)
		return EPOLLIN;
	if (c->state != VSOCK_ESTABLISHED)
		return 0; /* HUP and ERR still come */
	if (!c->readable && !c->host_eof && !(c->peer_shutdown & VSOCK_SHUTDOWN_RCV) &&
	    vsock_credit(c) > 0)
		ev |= EPOLLIN;
	if (c->buf_len > 0)
		ev |= EPOLLOUT;
	return ev;
}

static void vsock_conn_close_fd(struct vsock *vs, struct vsock_conn *c)
{
	if (c->fd < 0)
		return;
	if (c->watched)
		epoll_ctl(vs->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->watched = false;
	free(c->buf);
	c->buf = NULL;
	c->buf_len = 0;
}

static void vsock_listen_resume(struct vsock *vs)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = vs};

	if (vs->listen_paused && epoll_ctl(vs->epfd, EPOLL_CTL_MOD, vs->listen_fd, &ev) == 0)
		vs->listen_paused = false;
}

static void vsock_listen_pause(struct vsock *vs)
{
	struct epoll_event ev = {.events = 0, .data.ptr = vs};

	if (!vs->listen_paused && epoll_ctl(vs->epfd, EPOLL_CTL_MOD, vs->listen_fd, &ev) == 0)
		vs->listen_paused = true;
}

/* Forgets c at once (no RST); the memory goes at vsock_reap(), after any epoll batch. */
static void vsock_conn_free(struct vsock *vs, struct vsock_conn *c)
{
	if (c->dead)
		return;
	vsock_conn_close_fd(vs, c);
	vsock_hash_del(vs, c);
	vsock_pending_del(vs, c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		vs->all = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	vs->nconns--;
	vsock_count(&vs->stats.connections, (uint64_t)-1);
	c->dead = true;
	c->next = vs->zombies;
	vs->zombies = c;
	vsock_listen_resume(vs);
}

static void vsock_reap(struct vsock *vs)
{
	while (vs->zombies != NULL) {
		struct vsock_conn *c = vs->zombies;

		vs->zombies = c->next;
		free(c);
	}
}

/* Ends c with an RST to the guest; the host socket closes now. */
static void vsock_conn_reset(struct vsock *vs, struct vsock_conn *c)
{
	if (c->dead)
		return;
	vsock_conn_close_fd(vs, c);
	if (!c->hashed) {
		vsock_conn_free(vs, c); /* the guest never heard of it */
		return;
	}
	c->state = VSOCK_RESETTING;
	c->send = VSOCK_SEND_RST;
	vsock_pending_add(vs, c);
}

static void vsock_conn_sync(struct vsock *vs, struct vsock_conn *c)
{
	struct epoll_event ev = {.data.ptr = c};

	if (c->dead || c->fd < 0 || !c->watched)
		return;
	ev.events = vsock_conn_want(c);
	if (ev.events == c->events)
		return;
	if (epoll_ctl(vs->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = ev.events;
	else
		vsock_conn_reset(vs, c);
}

/* After any change to c: the right socket events, and on the pending list if it owes the guest. */
static void vsock_conn_update(struct vsock *vs, struct vsock_conn *c)
{
	if (c->dead)
		return;
	if (vsock_conn_wants_read(c) && vsock_credit(c) == 0 && !c->credit_requested) {
		c->send |= VSOCK_SEND_CREDIT_REQ;
		c->credit_requested = true;
	}
	if (vsock_conn_has_work(c))
		vsock_pending_add(vs, c);
	vsock_conn_sync(vs, c);
}

/* A connection on host socket fd (taken over: closed on failure); NULL when out of resources. */
static struct vsock_conn *vsock_conn_new(struct vsock *vs, int fd, enum vsock_state state)
{
	struct vsock_conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = {.data.ptr = c};

	if (c == NULL) {
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->state = state;
	ev.events = c->events = vsock_conn_want(c);
	if (epoll_ctl(vs->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		close(fd);
		free(c);
		return NULL;
	}
	c->watched = true;
	c->next = vs->all;
	if (vs->all != NULL)
		vs->all->prev = c;
	vs->all = c;
	vs->nconns++;
	vsock_count(&vs->stats.connections, 1);
	vsock_count(&vs->stats.connections_total, 1);
	return c;
}

static void vsock_drop_all(struct vsock *vs)
{
	while (vs->all != NULL)
		vsock_conn_free(vs, vs->all);
	vs->norphans = 0;
}

/* The driver broke the protocol: NEEDS_RESET, and no connection survives it. */
static void vsock_fail(struct vsock *vs, const char *why)
{
	vs->failed = true;
	vs->rx_held = false;
	vsock_drop_all(vs);
	virtio_needs_reset(&vs->vdev, why);
}

/* ---- toward the guest: the rx queue ---- */

static void vsock_hdr_for(const struct vsock *vs, struct vsock_conn *c, uint16_t op,
			  struct vsock_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = VSOCK_CID_HOST;
	h->dst_cid = vs->cfg.cid;
	h->src_port = c->local_port;
	h->dst_port = c->peer_port;
	h->type = VSOCK_TYPE_STREAM;
	h->op = op;
	h->buf_alloc = VSOCK_BUF_ALLOC;
	h->fwd_cnt = c->fwd_cnt;
	/* Every packet tells the guest our fwd_cnt: no separate update needed for it. */
	c->last_fwd_sent = c->fwd_cnt;
	c->send &= ~(unsigned)VSOCK_SEND_CREDIT;
}

/* Makes sure an rx chain is held: 1, 0 when the driver gave none, -1 when the device failed. */
static int vsock_rx_get(struct vsock *vs)
{
	struct virtqueue *vq = virtio_queue(&vs->vdev, VSOCK_QUEUE_RX);
	struct vq_chain *ch = &vs->rx_chain;
	int ret;

	if (vs->rx_held)
		return 1;
	ch->iov = vs->rx_iov;
	ret = vq_pop(vq, ch, VSOCK_MAX_IOV);
	if (ret == 0)
		return 0;
	if (ret == -EINVAL)
		vsock_fail(vs, "the driver broke the rx queue");
	else if (ret < 0)
		vsock_fail(vs, "an rx chain has more buffers than the device takes");
	else if (ch->nread > 0 || ch->write_bytes <= VSOCK_HDR_SIZE)
		vsock_fail(vs, "an rx chain has readable buffers or no room for a packet");
	else
		vs->rx_held = true;
	return vs->rx_held ? 1 : -1;
}

/* Writes h over the start of the held chain (its payload already in place) and gives it back. */
static void vsock_rx_push(struct vsock *vs, const struct vsock_hdr *h)
{
	struct virtqueue *vq = virtio_queue(&vs->vdev, VSOCK_QUEUE_RX);
	uint8_t raw[VSOCK_HDR_SIZE];

	vsock_hdr_encode(h, raw);
	vq_iov_write(vs->rx_chain.iov, vs->rx_chain.nwrite, 0, raw, sizeof(raw));
	vs->rx_held = false;
	vq_push(vq, vs->rx_chain.head, VSOCK_HDR_SIZE + h->len);
	vsock_count(&vs->stats.rx_packets, 1);
	vsock_count(&vs->stats.rx_bytes, h->len);
	if (h->op == VSOCK_OP_RST)
		vsock_count(&vs->stats.resets, 1);
}

static void vsock_rx_orphan(struct vsock *vs)
{
	struct vsock_orphan *o = &vs->orphans[vs->orphan_head];
	struct vsock_hdr h = {
	    .src_cid = o->src_cid,
	    .dst_cid = vs->cfg.cid,
	    .src_port = o->src_port,
	    .dst_port = o->dst_port,
	    .type = VSOCK_TYPE_STREAM,
	    .op = VSOCK_OP_RST,
	};

	vs->orphan_head = (vs->orphan_head + 1) % VSOCK_MAX_ORPHANS;
	vs->norphans--;
	vsock_rx_push(vs, &h);
}

/* Reads host data straight into the held chain, after the header: bytes, 0 at EOF, or -errno. */
static ssize_t vsock_read_host(struct vsock *vs, struct vsock_conn *c)
{
	uint32_t room = vs->rx_chain.write_bytes - VSOCK_HDR_SIZE;
	uint32_t want = vsock_min(vsock_min(room, VSOCK_MAX_PKT), vsock_credit(c));
	unsigned n = vsock_iov_slice(vs->rx_chain.iov, vs->rx_chain.nwrite, VSOCK_HDR_SIZE, want,
				     vs->slice, VSOCK_MAX_IOV);
	ssize_t r;

	if (n == 0)
		return -EAGAIN; /* no credit or no room: never a readv that looks like EOF */
	do
		r = readv(c->fd, vs->slice, (int)n);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* One RW packet of host data; false when nothing went out (no data, EOF or an error). */
static bool vsock_rx_data(struct vsock *vs, struct vsock_conn *c)
{
	ssize_t r = vsock_read_host(vs, c);
	struct vsock_hdr h;

	if (r == -EAGAIN || r == -EWOULDBLOCK) {
		c->readable = false;
		return false;
	}
	if (r < 0) {
		vsock_conn_reset(vs, c);
		return false;
	}
	if (r == 0) {
		/* The host program is done sending; if it closed altogether, it reads no more. */
		c->host_eof = true;
		c->readable = false;
		c->send |= VSOCK_SEND_SHUTDOWN;
		c->shutdown_flags = VSOCK_SHUTDOWN_SEND | (c->host_hup ? VSOCK_SHUTDOWN_RCV : 0);
		return false;
	}
	vsock_hdr_for(vs, c, VSOCK_OP_RW, &h);
	h.len = (uint32_t)r;
	c->tx_cnt += (uint32_t)r;
	vsock_rx_push(vs, &h);
	return true;
}

/* Sends the next thing c owes the guest in the held chain; true when the chain was used. */
static bool vsock_conn_emit(struct vsock *vs, struct vsock_conn *c)
{
	static const struct {
		unsigned flag;
		uint16_t op;
	} ctl[] = {
	    {VSOCK_SEND_RST, VSOCK_OP_RST},
	    {VSOCK_SEND_REQUEST, VSOCK_OP_REQUEST},
	    {VSOCK_SEND_RESPONSE, VSOCK_OP_RESPONSE},
	    {VSOCK_SEND_CREDIT, VSOCK_OP_CREDIT_UPDATE},
	    {VSOCK_SEND_CREDIT_REQ, VSOCK_OP_CREDIT_REQUEST},
	};
	struct vsock_hdr h;

	for (size_t i = 0; i < sizeof(ctl) / sizeof(ctl[0]); i++) {
		if (!(c->send & ctl[i].flag))
			continue;
		c->send &= ~ctl[i].flag;
		vsock_hdr_for(vs, c, ctl[i].op, &h);
		vsock_rx_push(vs, &h);
		if (ctl[i].op == VSOCK_OP_RST)
			vsock_conn_free(vs, c);
		return true;
	}
	if (vsock_conn_wants_read(c) && vsock_credit(c) > 0 && vsock_rx_data(vs, c))
		return true;
	if (!(c->send & VSOCK_SEND_SHUTDOWN) || c->dead)
		return false;
	c->send &= ~(unsigned)VSOCK_SEND_SHUTDOWN;
	vsock_hdr_for(vs, c, VSOCK_OP_SHUTDOWN, &h);
	h.flags = c->shutdown_flags;
	vsock_rx_push(vs, &h);
	return true;
}

/* Uses the held chain for the next orphan RST or pending connection; true when it was used. */
static bool vsock_rx_next(struct vsock *vs)
{
	struct vsock_conn *c = vs->phead;
	bool used;

	if (vs->norphans > 0) {
		vsock_rx_orphan(vs);
		return true;
	}
	used = vsock_conn_emit(vs, c);
	if (c->dead)
		return used;
	/* Round robin: a connection with more to say waits behind the others. */
	vsock_pending_del(vs, c);
	vsock_conn_update(vs, c);
	return used;
}

/* Sends what is owed to the guest while it gives rx buffers; a batch, then yields. */
static void vsock_rx_flush(struct vsock *vs)
{
	struct virtqueue *vq = virtio_queue(&vs->vdev, VSOCK_QUEUE_RX);
	unsigned budget, pushed = 0;

	if (!vs->live || vs->failed || vq == NULL || !vq->ready)
		return;
	for (budget = 2u * vq->size; budget > 0; budget--) {
		if (vs->norphans == 0 && vs->phead == NULL)
			break;
		if (vsock_rx_get(vs) <= 0)
			break;
		if (vsock_rx_next(vs))
			pushed++;
	}
	if (vs->failed)
		return;
	if (pushed > 0)
		virtio_queue_used(&vs->vdev, VSOCK_QUEUE_RX);
	if (budget == 0 && (vs->norphans > 0 || vs->phead != NULL))
		virtio_queue_kick(&vs->vdev, VSOCK_QUEUE_RX);
}

/* ---- the event queue ---- */

static void vsock_event_flush(struct vsock *vs)
{
	struct virtqueue *vq = virtio_queue(&vs->vdev, VSOCK_QUEUE_EVENT);
	struct iovec iov[4];
	struct vq_chain ch = {.iov = iov};
	uint8_t ev[4];
	int ret;

	if (!vs->event_pending || vs->failed || vq == NULL || !vq->ready)
		return;
	ret = vq_pop(vq, &ch, 4);
	if (ret == 0)
		return;
	if (ret < 0 || ch.nread > 0 || ch.write_bytes < sizeof(ev)) {
		vsock_fail(vs, "an event buffer is not a writable 4-byte buffer");
		return;
	}
	vsock_put(ev, VSOCK_EVENT_TRANSPORT_RESET, 4);
	vq_iov_write(ch.iov, ch.nwrite, 0, ev, sizeof(ev));
	vs->event_pending = false;
	if (vq_push(vq, ch.head, sizeof(ev)) == 0)
		virtio_queue_used(&vs->vdev, VSOCK_QUEUE_EVENT);
}

/* ---- toward the host: the Unix sockets ---- */

static void vsock_sockaddr(struct sockaddr_un *sa, const char *path, const uint32_t *port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/* Both fit: vsock_parse_spec() bounds the path to VSOCK_PATH_MAX. */
	if (port != NULL)
		snprintf(sa->sun_path, sizeof(sa->sun_path), "%s_%u", path, *port);
	else
		snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
}

/* Sends without blocking; returns the bytes taken (0 when the socket is full) or -errno. */
static ssize_t vsock_send(int fd, const struct iovec *iov, unsigned n)
{
	struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n};
	ssize_t w;

	do
		w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	return w;
}

/* Keeps len bytes at off in iov (within the credit we gave, so they fit) for later. */
static int vsock_buffer(struct vsock_conn *c, const struct iovec *iov, unsigned n, size_t off,
			uint32_t len)
{
	uint32_t tail, first;

	if (c->buf == NULL && (c->buf = malloc(VSOCK_BUF_ALLOC)) == NULL)
		return -ENOMEM;
	tail = (c->buf_head + c->buf_len) % VSOCK_BUF_ALLOC;
	first = vsock_min(len, VSOCK_BUF_ALLOC - tail);
	vq_iov_read(iov, n, off, c->buf + tail, first);
	vq_iov_read(iov, n, off + first, c->buf, len - first);
	c->buf_len += len;
	return 0;
}

/* Writes out what is buffered, as far as the host program takes it. Returns 0 or -errno. */
static int vsock_flush_host(struct vsock_conn *c)
{
	while (c->buf_len > 0) {
		uint32_t first = vsock_min(c->buf_len, VSOCK_BUF_ALLOC - c->buf_head);
		struct iovec iov[2] = {{c->buf + c->buf_head, first}, {c->buf, c->buf_len - first}};
		ssize_t w = vsock_send(c->fd, iov, iov[1].iov_len > 0 ? 2 : 1);

		if (w <= 0)
			return (int)w;
		c->buf_head = (c->buf_head + (uint32_t)w) % VSOCK_BUF_ALLOC;
		c->buf_len -= (uint32_t)w;
		c->fwd_cnt += (uint32_t)w;
	}
	return 0;
}

/* After the host took data or the guest shut down: credit to give back, shutdowns to pass on. */
static void vsock_forwarded(struct vsock *vs, struct vsock_conn *c)
{
	if (c->fwd_cnt - c->last_fwd_sent >= VSOCK_CREDIT_STEP)
		c->send |= VSOCK_SEND_CREDIT;
	if (c->buf_len > 0 || c->fd < 0)
		return;
	if (c->peer_shutdown == VSOCK_SHUTDOWN_BOTH) {
		/* 5.10.6.6: the guest is done both ways, all it sent delivered: RST ends it. */
		vsock_conn_reset(vs, c);
		return;
	}
	if ((c->peer_shutdown & VSOCK_SHUTDOWN_SEND) && !c->wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = true;
	}
}

/* An RW payload from the guest: straight to the socket while nothing waits, else buffered. */
static void vsock_guest_data(struct vsock *vs, struct vsock_conn *c, const struct vsock_hdr *h,
			     const struct iovec *iov, unsigned n)
{
	unsigned np;
	ssize_t w = 0;

	if (h->len == 0)
		return;
	/* Data after its own SHUTDOWN(SEND), or beyond the credit we gave: a broken peer. */
	if ((c->peer_shutdown & VSOCK_SHUTDOWN_SEND) || c->fd < 0 ||
	    c->buf_len + h->len > VSOCK_BUF_ALLOC) {
		vsock_conn_reset(vs, c);
		return;
	}
	np = vsock_iov_slice(iov, n, VSOCK_HDR_SIZE, h->len, vs->slice, VSOCK_MAX_IOV);
	if (c->buf_len == 0)
		w = vsock_send(c->fd, vs->slice, np);
	if (w < 0 || ((uint32_t)w < h->len &&
		      vsock_buffer(c, vs->slice, np, (size_t)w, h->len - (uint32_t)w) != 0)) {
		vsock_conn_reset(vs, c);
		return;
	}
	c->fwd_cnt += (uint32_t)w;
	vsock_forwarded(vs, c);
}

/* ---- from the guest: the tx queue ---- */

static void vsock_orphan_rst(struct vsock *vs, const struct vsock_hdr *h)
{
	struct vsock_orphan *o;

	/* Never an RST for an RST; a full ring drops it and the guest times out instead. */
	if (h->op == VSOCK_OP_RST || vs->norphans == VSOCK_MAX_ORPHANS)
		return;
	o = &vs->orphans[(vs->orphan_head + vs->norphans) % VSOCK_MAX_ORPHANS];
	o->src_cid = h->dst_cid;
	o->src_port = h->dst_port;
	o->dst_port = h->src_port;
	vs->norphans++;
}

static void vsock_credit_from(struct vsock_conn *c, const struct vsock_hdr *h)
{
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (vsock_credit(c) > 0)
		c->credit_requested = false;
}

/* A guest REQUEST to host port dst_port: connect to PATH_<port>. */
static void vsock_guest_connect(struct vsock *vs, const struct vsock_hdr *h)
{
	struct sockaddr_un sa;
	struct vsock_conn *c;
	int fd = -1;

	vsock_sockaddr(&sa, vs->cfg.path, &h->dst_port);
	if (vs->nconns < vs->cfg.max_conns)
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* A Unix connect completes at once; a full backlog (EAGAIN) is a refusal too. */
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		log_debug("virtio-vsock: guest port %u -> %s: %s", h->src_port, sa.sun_path,
			  strerror(errno));
		close(fd);
		fd = -1;
	}
	if (fd < 0 || (c = vsock_conn_new(vs, fd, VSOCK_ESTABLISHED)) == NULL) {
		vsock_orphan_rst(vs, h);
		return;
	}
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	vsock_hash_add(vs, c);
	vsock_credit_from(c, h);
	c->send = VSOCK_SEND_RESPONSE;
	vsock_conn_update(vs, c);
}

/* The guest accepted a host CONNECT: tell the host program which port it got. */
static void vsock_host_accepted(struct vsock *vs, struct vsock_conn *c, const struct vsock_hdr *h)
{
	char ok[24];
	struct iovec iov = {ok, 0};

	vsock_credit_from(c, h);
	iov.iov_len = (size_t)snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
	/* The socket is empty so far: a short write means the program went away. */
	if (vsock_send(c->fd, &iov, 1) != (ssize_t)iov.iov_len) {
		vsock_conn_reset(vs, c);
		return;
	}
	c->state = VSOCK_ESTABLISHED;
	vsock_conn_update(vs, c);
}

/* A valid packet for an existing connection. */
static void vsock_conn_packet(struct vsock *vs, struct vsock_conn *c, const struct vsock_hdr *h,
			      const struct iovec *iov, unsigned n)
{
	if (h->op == VSOCK_OP_RST) {
		vsock_conn_free(vs, c); /* closing the socket tells the host program */
		return;
	}
	if (c->state == VSOCK_RESETTING)
		return; /* our RST is on its way */
	if (c->state == VSOCK_HOST_REQUEST) {
		if (h->op == VSOCK_OP_RESPONSE)
			vsock_host_accepted(vs, c, h);
		else
			vsock_conn_reset(vs, c);
		return;
	}
	vsock_credit_from(c, h);
	if (h->op == VSOCK_OP_RW)
		vsock_guest_data(vs, c, h, iov, n);
	else if (h->op == VSOCK_OP_SHUTDOWN) {
		c->peer_shutdown |= h->flags & VSOCK_SHUTDOWN_BOTH;
		vsock_forwarded(vs, c);
	} else if (h->op == VSOCK_OP_CREDIT_REQUEST)
		c->send |= VSOCK_SEND_CREDIT;
	else if (h->op != VSOCK_OP_CREDIT_UPDATE)
		vsock_conn_reset(vs, c); /* REQUEST or RESPONSE on an open stream */
	vsock_conn_update(vs, c);
}

/* Address, type, op and length of a packet the guest sent (its framing is already checked). */
static bool vsock_hdr_ok(const struct vsock_hdr *h)
{
	return h->type == VSOCK_TYPE_STREAM && h->op >= VSOCK_OP_REQUEST &&
	       h->op <= VSOCK_OP_CREDIT_REQUEST && h->len <= VSOCK_MAX_PKT;
}

static void vsock_packet(struct vsock *vs, const struct vsock_hdr *h, const struct iovec *iov,
			 unsigned n)
{
	struct vsock_conn *c;

	/* Not from the guest's own address, or not to the host: answer, touch nothing. */
	if (h->src_cid != vs->cfg.cid || h->dst_cid != VSOCK_CID_HOST) {
		vsock_orphan_rst(vs, h);
		return;
	}
	c = vsock_lookup(vs, h->dst_port, h->src_port);
	if (!vsock_hdr_ok(h)) {
		if (c != NULL)
			vsock_conn_reset(vs, c);
		else
			vsock_orphan_rst(vs, h);
	} else if (c != NULL)
		vsock_conn_packet(vs, c, h, iov, n);
	else if (h->op == VSOCK_OP_REQUEST)
		vsock_guest_connect(vs, h);
	else
		vsock_orphan_rst(vs, h);
}

/* One tx chain; false when it is not a packet at all and the device failed. */
static bool vsock_tx_packet(struct vsock *vs, const struct vq_chain *ch)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	struct vsock_hdr h;

	if (ch->nwrite > 0 || ch->read_bytes < VSOCK_HDR_SIZE) {
		vsock_fail(vs, "a tx chain has writable buffers or is shorter than a header");
		return false;
	}
	vq_iov_read(ch->iov, ch->nread, 0, raw, sizeof(raw));
	vsock_hdr_decode(raw, &h);
	/* len must say exactly what follows, or the framing is lost: trust nothing here. */
	if (h.len != ch->read_bytes - VSOCK_HDR_SIZE) {
		vsock_fail(vs, "a tx packet's len does not match its buffers");
		return false;
	}
	vsock_count(&vs->stats.tx_packets, 1);
	vsock_count(&vs->stats.tx_bytes, h.len);
	vsock_packet(vs, &h, ch->iov, ch->nread);
	return true;
}

static void vsock_tx_notify(struct vsock *vs)
{
	struct virtqueue *vq = virtio_queue(&vs->vdev, VSOCK_QUEUE_TX);
	struct vq_chain ch = {.iov = vs->tx_iov};
	unsigned done = 0;
	int ret;

	while (done < vq->size && (ret = vq_pop(vq, &ch, VSOCK_MAX_IOV)) != 0) {
		if (ret < 0) {
			vsock_fail(vs, ret == -ENOBUFS
					   ? "a tx chain has more buffers than the device takes"
					   : "the driver broke the tx queue");
			return;
		}
		if (!vsock_tx_packet(vs, &ch) || vq_push(vq, ch.head, 0) != 0)
			return;
		done++;
	}
	if (done > 0)
		virtio_queue_used(&vs->vdev, VSOCK_QUEUE_TX);
	if (done == vq->size && vq_has_avail(vq))
		virtio_queue_kick(&vs->vdev, VSOCK_QUEUE_TX);
}

/* ---- host programs on PATH ---- */

static bool vsock_parse_connect(const char *line, uint32_t *port)
{
	unsigned long v;
	char *end;

	if (strncmp(line, "CONNECT ", 8) != 0 || line[8] < '0' || line[8] > '9')
		return false;
	errno = 0;
	v = strtoul(line + 8, &end, 10);
	if (*end == '\r')
		end++;
	if (errno != 0 || *end != '\0' || v > VSOCK_PORT_MAX)
		return false;
	*port = (uint32_t)v;
	return true;
}

/* A port of ours not yet paired with the guest's: the table is smaller than the range. */
static uint32_t vsock_host_port(struct vsock *vs, uint32_t peer)
{
	for (;;) {
		uint32_t p = vs->next_host_port;

		vs->next_host_port = p == VSOCK_PORT_MAX ? VSOCK_HOST_PORT_MIN : p + 1;
		if (vsock_lookup(vs, p, peer) == NULL)
			return p;
	}
}

/* The host program asked for a guest port: REQUEST it, unless the driver is not up. */
static void vsock_host_connect(struct vsock *vs, struct vsock_conn *c)
{
	uint32_t port;

	if (!vsock_parse_connect(c->line, &port) || !vs->live || vs->failed) {
		log_debug("virtio-vsock: refused host request '%s'%s", c->line,
			  vs->live ? "" : " (the guest's driver is not up)");
		vsock_conn_free(vs, c);
		return;
	}
	c->peer_port = port;
	c->local_port = vsock_host_port(vs, port);
	vsock_hash_add(vs, c);
	c->state = VSOCK_HOST_REQUEST;
	c->send = VSOCK_SEND_REQUEST;
	vsock_conn_update(vs, c);
}

/* Byte by byte, so that nothing past the newline (the stream's first data) is taken. */
static void vsock_read_line(struct vsock *vs, struct vsock_conn *c)
{
	for (;;) {
		char ch;
		ssize_t n = read(c->fd, &ch, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || c->line_len + 1 >= VSOCK_LINE_MAX) {
			vsock_conn_free(vs, c);
			return;
		}
		if (ch == '\n') {
			c->line[c->line_len] = '\0';
			vsock_host_connect(vs, c);
			return;
		}
		c->line[c->line_len++] = ch;
	}
}

/* The host program closed its end: read what is left, and stop watching (HUP never clears). */
static void vsock_conn_hup(struct vsock *vs, struct vsock_conn *c)
{
	c->host_hup = true;
	c->readable = !c->host_eof;
	if (c->watched) {
		epoll_ctl(vs->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		c->watched = false;
	}
	if (c->buf_len > 0)
		vsock_conn_reset(vs, c); /* what the guest sent can no longer be delivered */
}

static void vsock_conn_event(struct vsock *vs, struct vsock_conn *c, uint32_t events)
{
	if (c->dead || c->fd < 0)
		return;
	if (events & EPOLLERR) {
		vsock_conn_reset(vs, c);
		return;
	}
	if (c->state == VSOCK_HOST_LINE) {
		vsock_read_line(vs, c); /* HUP included: the read sees the end */
		return;
	}
	if (c->state != VSOCK_ESTABLISHED) {
		if (events & EPOLLHUP)
			vsock_conn_reset(vs, c); /* gave up before the guest answered */
		return;
	}
	if (events & EPOLLIN)
		c->readable = true;
	if (events & EPOLLHUP)
		vsock_conn_hup(vs, c);
	if ((events & EPOLLOUT) && !c->dead) {
		if (vsock_flush_host(c) != 0)
			vsock_conn_reset(vs, c);
		else
			vsock_forwarded(vs, c);
	}
	vsock_conn_update(vs, c);
}

static void vsock_accept(struct vsock *vs)
{
	struct vsock_conn *c;

	for (int i = 0; i < VSOCK_ACCEPT_BATCH; i++) {
		int fd = accept4(vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0) {
			/* Out of fds or memory: the listener would spin; wait for a connection to
			 * go. */
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				vsock_listen_pause(vs);
			return;
		}
		/* Beyond the table's size the program sees its socket closed. */
		if (vs->nconns >= vs->cfg.max_conns) {
			close(fd);
			continue;
		}
		/* The program has usually written its line already: no need to wait a round. */
		if ((c = vsock_conn_new(vs, fd, VSOCK_HOST_LINE)) != NULL)
			vsock_read_line(vs, c);
	}
}

/* The device's epoll fd is readable: host sockets have something. Device thread. */
static void vsock_host_ready(struct virtio_device *dev, int fd)
{
	struct vsock *vs = vsock_of(dev);
	struct epoll_event ev[VSOCK_EVENTS];
	int n;

	(void)fd;
	n = epoll_wait(vs->epfd, ev, VSOCK_EVENTS, 0);
	for (int i = 0; i < n; i++) {
		if (ev[i].data.ptr == vs)
			vsock_accept(vs);
		else
			vsock_conn_event(vs, ev[i].data.ptr, ev[i].events);
	}
	vsock_rx_flush(vs);
	vsock_reap(vs);
}

/* ---- the device interface ---- */

static void vsock_config_read(struct virtio_device *dev, uint32_t offset, uint8_t *data,
			      uint32_t len)
{
	uint8_t cfg[8];

	vsock_put(cfg, vsock_of(dev)->cfg.cid, sizeof(cfg)); /* le64 guest_cid */
	if (offset < sizeof(cfg))
		memcpy(data, cfg + offset, vsock_min(len, sizeof(cfg) - offset));
}

static void vsock_queue_notify(struct virtio_device *dev, unsigned q)
{
	struct vsock *vs = vsock_of(dev);

	if (vs->failed)
		return;
	/* The transport notifies only after DRIVER_OK: from now on host requests may go in. */
	vs->live = true;
	if (q == VSOCK_QUEUE_TX)
		vsock_tx_notify(vs);
	vsock_event_flush(vs);
	vsock_rx_flush(vs);
	vsock_reap(vs);
}

static void vsock_reset(struct virtio_device *dev)
{
	struct vsock *vs = vsock_of(dev);

	vsock_drop_all(vs);
	vs->live = false;
	vs->failed = false;
	vs->rx_held = false; /* the queues are gone, and the chain with them */
	vs->event_pending = false;
	vs->next_host_port = VSOCK_HOST_PORT_MIN; /* no stream is left: the same ports each boot */
	vsock_reap(vs);
}

static const struct virtio_device_ops vsock_ops = {
    .name = "virtio-vsock",
    .device_id = VIRTIO_ID_VSOCK,
    .features = 1ULL << VSOCK_F_STREAM,
    .num_queues = VSOCK_NUM_QUEUES,
    .queue_max_size = VSOCK_QUEUE_SIZE,
    .config_size = 8,
    .config_read = vsock_config_read,
    .queue_notify = vsock_queue_notify,
    .reset = vsock_reset,
};

/* ---- set-up ---- */

/* A socket file nobody listens on was left by a process that died: take it over. */
static int vsock_claim_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) != 0)
		return 0; /* gone meanwhile: bind again */
	if (!S_ISSOCK(st.st_mode)) {
		log_error("--vsock: %s exists and is not a socket: choose another path", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? 0 : errno;
	close(fd);
	if (ret == 0 || ret == EAGAIN) {
		log_error("--vsock: %s is in use: another program listens there", path);
		return -EADDRINUSE;
	}
	if (ret != ECONNREFUSED || unlink(path) != 0) {
		log_error("--vsock: cannot replace the socket %s: %s", path,
			  strerror(ret != ECONNREFUSED ? ret : errno));
		return -EADDRINUSE;
	}
	return 0;
}

static int vsock_bind(struct vsock *vs)
{
	struct sockaddr_un sa;
	struct stat st;
	int ret;

	vsock_sockaddr(&sa, vs->cfg.path, NULL);
	ret = bind(vs->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
	if (ret == EADDRINUSE) {
		if (vsock_claim_stale(vs->cfg.path, &sa) != 0)
			return -EADDRINUSE;
		ret = bind(vs->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
	}
	if (ret != 0) {
		log_error("--vsock: cannot create the socket %s: %s%s", vs->cfg.path, strerror(ret),
			  ret == ENOENT ? " (does its directory exist?)" : "");
		return -ret;
	}
	/* Remember which file is ours: at exit we remove that one, not a successor's. */
	if (stat(vs->cfg.path, &st) == 0) {
		vs->bound = true;
		vs->sock_dev = st.st_dev;
		vs->sock_ino = st.st_ino;
	}
	return 0;
}

static int vsock_listen(struct vsock *vs)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = vs};
	int ret;

	vs->epfd = epoll_create1(EPOLL_CLOEXEC);
	vs->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (vs->epfd < 0 || vs->listen_fd < 0) {
		ret = errno;
		log_error("--vsock: cannot create a socket: %s", strerror(ret));
		return -ret;
	}
	if ((ret = vsock_bind(vs)) != 0)
		return ret;
	if (listen(vs->listen_fd, VSOCK_BACKLOG) != 0 ||
	    epoll_ctl(vs->epfd, EPOLL_CTL_ADD, vs->listen_fd, &ev) != 0) {
		ret = errno;
		log_error("--vsock: cannot listen on %s: %s", vs->cfg.path, strerror(ret));
		return -ret;
	}
	return 0;
}

int vsock_create(struct vsock **out, const struct vsock_config *cfg)
{
	struct vsock *vs = calloc(1, sizeof(*vs));
	int ret;

	*out = NULL;
	if (vs == NULL)
		return -ENOMEM;
	vs->vdev.ops = &vsock_ops;
	vs->cfg = *cfg;
	vs->cfg.path[VSOCK_PATH_MAX] = '\0';
	if (vs->cfg.max_conns == 0)
		vs->cfg.max_conns = VSOCK_MAX_CONNS;
	vs->listen_fd = vs->epfd = -1;
	vs->next_host_port = VSOCK_HOST_PORT_MIN;
	if ((ret = vsock_listen(vs)) != 0) {
		vsock_destroy(vs);
		return ret;
	}
	*out = vs;
	return 0;
}

void vsock_destroy(struct vsock *vs)
{
	struct stat st;

	if (vs == NULL)
		return;
	vsock_drop_all(vs);
	vsock_reap(vs);
	if (vs->bound && stat(vs->cfg.path, &st) == 0 && st.st_dev == vs->sock_dev &&
	    st.st_ino == vs->sock_ino)
		unlink(vs->cfg.path);
	if (vs->listen_fd >= 0)
		close(vs->listen_fd);
	if (vs->epfd >= 0)
		close(vs->epfd);
	free(vs);
}

struct virtio_device *vsock_virtio(struct vsock *vs)
{
	return &vs->vdev;
}

int vsock_attach(struct vsock *vs)
{
	return virtio_watch_fd(&vs->vdev, vs->epfd, vsock_host_ready);
}

void vsock_poll(struct vsock *vs)
{
	vsock_host_ready(&vs->vdev, vs->epfd);
}

void vsock_transport_reset(struct vsock *vs)
{
	vsock_drop_all(vs);
	vsock_reap(vs);
	if (!vs->live || vs->failed)
		return; /* a driver that is not up has no connections to forget */
	vs->event_pending = true;
	vsock_event_flush(vs);
}

unsigned vsock_connections(const struct vsock *vs)
{
	return vs->nconns;
}

void vsock_get_stats(const struct vsock *vs, struct vsock_stats *out)
{
	const uint64_t *src = (const uint64_t *)&vs->stats;
	uint64_t *dst = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
