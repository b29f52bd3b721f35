#include "net/user.h"

#include <errno.h>
#include <libslirp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "virtio/net.h"

/* The epoll tag of the timerfd; slirp's fds are tagged with their index this round. */
#define NETUSER_TIMER_TAG UINT64_MAX
#define NETUSER_EVENTS	  64 /* per epoll_wait; the rest waits for the next round */
#define NETUSER_NO_EXPIRY INT64_MAX

struct netuser_pollfd {
	int fd;
	int events;  /* SLIRP_POLL_* asked for */
	int revents; /* SLIRP_POLL_* seen */
};

/* A libslirp timer (SlirpCb.timer_new_opaque); they are few (IPv6 router adverts). */
struct netuser_timer {
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms; /* NETUSER_NO_EXPIRY when not armed */
	struct netuser_timer *next;
};

struct netuser {
	struct net_backend be; /* first: netuser_of() */
	Slirp *slirp;
	int epfd, timerfd;
	/* This round's fds, in the order (index) slirp_pollfds_fill gave them. */
	struct netuser_pollfd *fds;
	unsigned nfds, fds_cap;
	/* The fds in epfd after the last round, and which round last wanted each fd. */
	int *reg;
	unsigned nreg, reg_cap;
	uint32_t *wanted;
	unsigned wanted_cap;
	uint32_t round;
	struct netuser_timer *timers;
	uint8_t frame[NET_MAX_FRAME]; /* the guest's frame, copied for slirp_input */
};

static struct netuser *netuser_of(struct net_backend *be)
{
	return (struct netuser *)be;
}

static int64_t netuser_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Grows *arr (of size elements) to hold at least need; false when out of memory. */
static bool netuser_grow(void **arr, unsigned *cap, unsigned need, size_t size)
{
	unsigned n = *cap ? *cap : 16;
	void *p;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	p = realloc(*arr, (size_t)n * size);
	if (p == NULL)
		return false;
	memset((char *)p + (size_t)*cap * size, 0, (size_t)(n - *cap) * size);
	*arr = p;
	*cap = n;
	return true;
}

/* ---- libslirp's callbacks ---- */

/* A frame for the guest. Never fails: dropping is the device's business, TCP retransmits. */
static ssize_t netuser_send_packet(const void *buf, size_t len, void *opaque)
{
	struct netuser *nu = opaque;

	net_receive(nu->be.net, NULL, buf, len);
	return (ssize_t)len;
}

/* The guest sent nonsense (bad DHCP, ...): only a developer wants to see it. */
static void netuser_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	log_debug("user network: guest error: %s", msg);
}

static int64_t netuser_clock_get_ns(void *opaque)
{
	(void)opaque;
	return netuser_now_ns();
}

static void *netuser_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct netuser *nu = opaque;
	struct netuser_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->id = id;
	t->cb_opaque = cb_opaque;
	t->expire_ms = NETUSER_NO_EXPIRY;
	t->next = nu->timers;
	nu->timers = t;
	return t;
}

static void netuser_timer_free(void *timer, void *opaque)
{
	struct netuser *nu = opaque;

	for (struct netuser_timer **p = &nu->timers; *p != NULL; p = &(*p)->next) {
		if (*p == timer) {
			*p = (*p)->next;
			free(timer);
			return;
		}
	}
}

/* expire is in ms of clock_get_ns's clock; the timerfd catches up at the end of the round. */
static void netuser_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	(void)opaque;
	if (timer != NULL)
		((struct netuser_timer *)timer)->expire_ms = expire_ms;
}

/* We re-read the whole fd set every round: per-fd registration is not needed. */
static void netuser_register_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void netuser_notify(void *opaque)
{
	(void)opaque; /* every round ends with a fresh slirp_pollfds_fill anyway */
}

static void netuser_init_completed(Slirp *slirp, void *opaque)
{
	(void)slirp;
	(void)opaque;
}

static const SlirpCb netuser_callbacks = {
    .send_packet = netuser_send_packet,
    .guest_error = netuser_guest_error,
    .clock_get_ns = netuser_clock_get_ns,
    .timer_free = netuser_timer_free,
    .timer_mod = netuser_timer_mod,
    .register_poll_fd = netuser_register_poll_fd,
    .unregister_poll_fd = netuser_register_poll_fd,
    .notify = netuser_notify,
    .init_completed = netuser_init_completed,
    .timer_new_opaque = netuser_timer_new_opaque,
};

/* ---- the epoll set, kept equal to what slirp wants ---- */

static int netuser_add_poll(int fd, int events, void *opaque)
{
	struct netuser *nu = opaque;

	if (fd < 0 ||
	    !netuser_grow((void **)&nu->fds, &nu->fds_cap, nu->nfds + 1, sizeof(*nu->fds)))
		return -1; /* slirp then never asks for this fd's events */
	nu->fds[nu->nfds] = (struct netuser_pollfd){fd, events, 0};
	return (int)nu->nfds++;
}

static int netuser_get_revents(int idx, void *opaque)
{
	struct netuser *nu = opaque;

	return idx >= 0 && (unsigned)idx < nu->nfds ? nu->fds[idx].revents : 0;
}

static uint32_t netuser_epoll_events(int slirp_events)
{
	return (slirp_events & SLIRP_POLL_IN ? EPOLLIN : 0) |
	       (slirp_events & SLIRP_POLL_OUT ? EPOLLOUT : 0) |
	       (slirp_events & SLIRP_POLL_PRI ? EPOLLPRI : 0);
}

static int netuser_slirp_events(uint32_t ev)
{
	return (ev & EPOLLIN ? SLIRP_POLL_IN : 0) | (ev & EPOLLOUT ? SLIRP_POLL_OUT : 0) |
	       (ev & EPOLLPRI ? SLIRP_POLL_PRI : 0) | (ev & EPOLLERR ? SLIRP_POLL_ERR : 0) |
	       (ev & EPOLLHUP ? SLIRP_POLL_HUP : 0);
}

/*
 * Always MOD (ADD when missing): fd numbers are reused, and a socket slirp
 * closed left epfd by itself, so "registered last round" proves nothing.
 */
static void netuser_watch(struct netuser *nu, unsigned idx)
{
	struct epoll_event ev = {.events = netuser_epoll_events(nu->fds[idx].events)};
	int fd = nu->fds[idx].fd;

	ev.data.u64 = idx;
	if (epoll_ctl(nu->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 &&
	    (errno != ENOENT || epoll_ctl(nu->epfd, EPOLL_CTL_ADD, fd, &ev) < 0))
		log_debug("user network: cannot watch socket %d: %s", fd, strerror(errno));
}

/* Brings epfd to this round's fds; fds nobody wants any more leave it. */
static void netuser_sync(struct netuser *nu)
{
	unsigned maxfd = 0;

	nu->round++;
	for (unsigned i = 0; i < nu->nfds; i++)
		if ((unsigned)nu->fds[i].fd + 1 > maxfd)
			maxfd = (unsigned)nu->fds[i].fd + 1;
	for (unsigned i = 0; i < nu->nfds; i++)
		netuser_watch(nu, i);
	/* Out of memory: better stale fds watched (slirp ignores them) than live ones lost. */
	if (!netuser_grow((void **)&nu->wanted, &nu->wanted_cap, maxfd, sizeof(*nu->wanted)) ||
	    !netuser_grow((void **)&nu->reg, &nu->reg_cap, nu->nreg + nu->nfds, sizeof(*nu->reg)))
		return;
	for (unsigned i = 0; i < nu->nfds; i++)
		nu->wanted[nu->fds[i].fd] = nu->round;
	for (unsigned i = 0; i < nu->nreg; i++) {
		int fd = nu->reg[i];

		if ((unsigned)fd >= nu->wanted_cap || nu->wanted[fd] != nu->round)
			epoll_ctl(nu->epfd, EPOLL_CTL_DEL, fd, NULL); /* ENOENT: closed already */
	}
	nu->nreg = 0;
	for (unsigned i = 0; i < nu->nfds; i++)
		nu->reg[nu->nreg++] = nu->fds[i].fd;
}

/* The next wake-up: slirp's own timeout (TCP timers) or the earliest timer. */
static void netuser_arm_timer(struct netuser *nu, uint32_t timeout_ms)
{
	int64_t now_ms = netuser_now_ns() / 1000000, at = NETUSER_NO_EXPIRY;
	struct itimerspec its = {{0, 0}, {0, 0}};

	if (timeout_ms != UINT32_MAX)
		at = now_ms + timeout_ms;
	for (struct netuser_timer *t = nu->timers; t != NULL; t = t->next)
		if (t->expire_ms < at)
			at = t->expire_ms;
	if (at != NETUSER_NO_EXPIRY) {
		if (at <= 0)
			at = 1; /* an absolute time of zero would disarm the timer */
		its.it_value.tv_sec = at / 1000;
		its.it_value.tv_nsec = (at % 1000) * 1000000;
	}
	if (timerfd_settime(nu->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		log_debug("user network: cannot arm the timer: %s", strerror(errno));
}

/* End of every round: what slirp wants to wait for next. */
static void netuser_rearm(struct netuser *nu)
{
	uint32_t timeout = UINT32_MAX;

	nu->nfds = 0;
	slirp_pollfds_fill(nu->slirp, &timeout, netuser_add_poll, nu);
	netuser_sync(nu);
	netuser_arm_timer(nu, timeout);
}

/* ---- the backend ---- */

/* Fires the expired timers; a handler may re-arm or free timers, so rescan each time. */
static void netuser_run_timers(struct netuser *nu)
{
	int64_t now_ms = netuser_now_ns() / 1000000;
	struct netuser_timer *t = nu->timers;

	while (t != NULL) {
		if (t->expire_ms > now_ms) {
			t = t->next;
			continue;
		}
		t->expire_ms = NETUSER_NO_EXPIRY;
		slirp_handle_timer(nu->slirp, t->id, t->cb_opaque);
		t = nu->timers;
	}
}

static void netuser_collect(struct netuser *nu)
{
	struct epoll_event ev[NETUSER_EVENTS];
	uint64_t expirations;
	int n = epoll_wait(nu->epfd, ev, NETUSER_EVENTS, 0);

	for (int i = 0; i < n; i++) {
		uint64_t tag = ev[i].data.u64;

		if (tag == NETUSER_TIMER_TAG) {
			if (read(nu->timerfd, &expirations, sizeof(expirations)) < 0)
				log_debug("user network: timer read: %s", strerror(errno));
		} else if (tag < nu->nfds) {
			nu->fds[tag].revents = netuser_slirp_events(ev[i].events);
		}
	}
}

static void netuser_poll(struct net_backend *be)
{
	struct netuser *nu = netuser_of(be);

	netuser_collect(nu);
	netuser_run_timers(nu);
	slirp_pollfds_poll(nu->slirp, 0, netuser_get_revents, nu);
	netuser_rearm(nu);
}

static int netuser_fd(struct net_backend *be)
{
	return netuser_of(be)->epfd;
}

/* libslirp parses the frame in place: it gets our copy, never guest memory. */
static int netuser_send(struct net_backend *be, const struct iovec *iov, unsigned n, size_t len)
{
	struct netuser *nu = netuser_of(be);
	size_t at = 0;

	for (unsigned i = 0; i < n && at < sizeof(nu->frame); i++) {
		size_t piece = iov[i].iov_len < sizeof(nu->frame) - at ? iov[i].iov_len
								       : sizeof(nu->frame) - at;

		memcpy(nu->frame + at, iov[i].iov_base, piece);
		at += piece;
	}
	if (at != len)
		return -EMSGSIZE;
	slirp_input(nu->slirp, nu->frame, (int)len);
	return 0;
}

/* New connections and queued data from the guest need their sockets watched. */
static void netuser_flush(struct net_backend *be)
{
	netuser_rearm(netuser_of(be));
}

static void netuser_destroy(struct net_backend *be)
{
	struct netuser *nu = netuser_of(be);

	if (nu->slirp != NULL)
		slirp_cleanup(nu->slirp);
	while (nu->timers != NULL)
		netuser_timer_free(nu->timers, nu);
	if (nu->epfd >= 0)
		close(nu->epfd);
	if (nu->timerfd >= 0)
		close(nu->timerfd);
	free(nu->fds);
	free(nu->reg);
	free(nu->wanted);
	free(nu);
}

static const struct net_backend_ops netuser_ops = {
    .name = "user",
    .vnet_hdr = false, /* libslirp wants whole checksums and frames up to its MTU */
    .fd = netuser_fd,
    .poll = netuser_poll,
    .send = netuser_send,
    .flush = netuser_flush,
    .destroy = netuser_destroy,
};

/* libslirp's (and QEMU's) defaults, spelled out: IPv4 10.0.2.0/24, IPv6 fec0::/64. */
static void netuser_config(SlirpConfig *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->version = 4;
	cfg->in_enabled = true;
	inet_pton(AF_INET, "10.0.2.0", &cfg->vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &cfg->vnetmask);
	inet_pton(AF_INET, "10.0.2.2", &cfg->vhost);
	inet_pton(AF_INET, NET_USER_GUEST_ADDR, &cfg->vdhcp_start);
	inet_pton(AF_INET, "10.0.2.3", &cfg->vnameserver);
	cfg->in6_enabled = true;
	inet_pton(AF_INET6, "fec0::", &cfg->vprefix_addr6);
	cfg->vprefix_len = 64;
	inet_pton(AF_INET6, "fec0::2", &cfg->vhost6);
	inet_pton(AF_INET6, "fec0::3", &cfg->vnameserver6);
	cfg->vhostname = "tabique";
	cfg->enable_emu = false; /* libslirp's own advice: its protocol emulation is not safe */
}

static int netuser_forward(struct netuser *nu, const struct net_hostfwd *f)
{
	char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];
	int err;

	errno = 0;
	if (slirp_add_hostfwd(nu->slirp, f->udp, f->host_addr, f->host_port, f->guest_addr,
			      f->guest_port) == 0)
		return 0;
	err = errno ? errno : EADDRINUSE;
	inet_ntop(AF_INET, &f->host_addr, host, sizeof(host));
	inet_ntop(AF_INET, &f->guest_addr, guest, sizeof(guest));
	log_error("--net user: cannot forward %s port %s:%u to %s:%u: %s", f->udp ? "udp" : "tcp",
		  host, f->host_port, guest, f->guest_port, strerror(err));
	return -err;
}

static int netuser_setup(struct netuser *nu, const struct net_spec *spec)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = NETUSER_TIMER_TAG};
	SlirpConfig cfg;
	int ret;

	nu->epfd = epoll_create1(EPOLL_CLOEXEC);
	nu->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (nu->epfd < 0 || nu->timerfd < 0 ||
	    epoll_ctl(nu->epfd, EPOLL_CTL_ADD, nu->timerfd, &ev) < 0) {
		ret = -errno;
		log_error("--net user: cannot set up polling: %s", strerror(errno));
		return ret;
	}
	netuser_config(&cfg);
	nu->slirp = slirp_new(&cfg, &netuser_callbacks, nu);
	if (nu->slirp == NULL) {
		log_error("--net user: libslirp could not start");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < spec->nfwd; i++)
		if ((ret = netuser_forward(nu, &spec->fwd[i])) != 0)
			return ret;
	netuser_rearm(nu);
	return 0;
}

int netuser_open(const struct net_spec *spec, struct net_backend **out)
{
	struct netuser *nu = calloc(1, sizeof(*nu));
	int ret;

	*out = NULL;
	if (nu == NULL) {
		log_error("--net user: out of memory");
		return -ENOMEM;
	}
	nu->be.ops = &netuser_ops;
	nu->epfd = nu->timerfd = -1;
	/*
	 * libslirp send()s to host sockets without MSG_NOSIGNAL: a peer that
	 * hung up must give EPIPE, not kill the VM. Process-wide, and harmless
	 * to everything else (every write checks its errors).
	 */
	signal(SIGPIPE, SIG_IGN);
	if ((ret = netuser_setup(nu, spec)) != 0) {
		netuser_destroy(&nu->be);
		return ret;
	}
	*out = &nu->be;
	return 0;
}
