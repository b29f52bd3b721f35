#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/log.h"
#include "virtio/net.h"

/* Frames read per poll: the device thread also serves the guest's queues. */
#define TAP_BUDGET 64

struct tap {
	struct net_backend be; /* first: tap_of() */
	int fd;		       /* /dev/net/tun, attached to ifname */
	int epfd;	       /* holds fd while reading; empty while paused */
	bool paused;
	bool failed; /* a hard read error: the interface went away */
	char ifname[IFNAMSIZ];
	uint8_t buf[NET_HDR_LEN + NET_MAX_FRAME];
};

static struct tap *tap_of(struct net_backend *be)
{
	return (struct tap *)be;
}

/* DEL rather than MOD to no events: EPOLLERR and EPOLLHUP would still be reported. */
static void tap_pause(struct tap *t)
{
	if (t->paused)
		return;
	if (epoll_ctl(t->epfd, EPOLL_CTL_DEL, t->fd, NULL) < 0)
		log_debug("tap %s: cannot pause: %s", t->ifname, strerror(errno));
	t->paused = true;
}

static void tap_resume(struct tap *t)
{
	struct epoll_event ev = {.events = EPOLLIN};

	if (!t->paused || t->failed)
		return;
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->fd, &ev) < 0 && errno != EEXIST)
		log_warn("tap %s: cannot resume reading: %s", t->ifname, strerror(errno));
	t->paused = false;
}

static void tap_rx_ready(struct net_backend *be)
{
	tap_resume(tap_of(be));
}

/* A read error other than "nothing more": stop reading for good rather than spin on it. */
static void tap_read_failed(struct tap *t, int err)
{
	log_warn("tap %s: cannot read: %s; the guest receives nothing more", t->ifname,
		 strerror(err));
	tap_pause(t);
	t->failed = true;
}

static void tap_poll(struct net_backend *be)
{
	struct tap *t = tap_of(be);
	size_t hdr = be->ops->vnet_hdr ? NET_HDR_LEN : 0;

	for (unsigned i = 0; i < TAP_BUDGET; i++) {
		ssize_t n;

		if (net_rx_stalled(be->net)) {
			tap_pause(t); /* the guest is full: let the kernel queue hold them */
			return;
		}
		n = read(t->fd, t->buf, sizeof(t->buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != EAGAIN)
				tap_read_failed(t, errno);
			return;
		}
		if ((size_t)n < hdr)
			continue;
		net_receive(be->net, hdr ? t->buf : NULL, t->buf + hdr, (size_t)n - hdr);
	}
}

static int tap_fd(struct net_backend *be)
{
	return tap_of(be)->epfd;
}

/* A full host queue (EAGAIN, ENOBUFS) drops the frame, as a busy wire would. */
static int tap_send(struct net_backend *be, const struct iovec *iov, unsigned n, size_t len)
{
	ssize_t done;

	(void)len;
	do {
		done = writev(tap_of(be)->fd, iov, (int)n);
	} while (done < 0 && errno == EINTR);
	return done < 0 ? -errno : 0;
}

/* What the kernel may hand us is what the guest can take (TUN_F_* follow GUEST_*). */
static void tap_set_offload(struct net_backend *be, uint64_t f)
{
	struct tap *t = tap_of(be);
	unsigned flags = 0;

	if (f & (1ULL << VIRTIO_NET_F_GUEST_CSUM))
		flags |= TUN_F_CSUM;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
		flags |= TUN_F_TSO4;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
		flags |= TUN_F_TSO6;
	if (ioctl(t->fd, TUNSETOFFLOAD, (unsigned long)flags) < 0)
		log_debug("tap %s: TUNSETOFFLOAD %#x: %s", t->ifname, flags, strerror(errno));
}

static void tap_destroy(struct net_backend *be)
{
	struct tap *t = tap_of(be);

	if (t->fd >= 0)
		close(t->fd);
	if (t->epfd >= 0)
		close(t->epfd);
	free(t);
}

static const struct net_backend_ops tap_ops_vnet = {
    .name = "tap",
    .vnet_hdr = true,
    .fd = tap_fd,
    .poll = tap_poll,
    .send = tap_send,
    .rx_ready = tap_rx_ready,
    .set_offload = tap_set_offload,
    .destroy = tap_destroy,
};

static const struct net_backend_ops tap_ops_plain = {
    .name = "tap",
    .vnet_hdr = false,
    .fd = tap_fd,
    .poll = tap_poll,
    .send = tap_send,
    .rx_ready = tap_rx_ready,
    .destroy = tap_destroy,
};

/* TUNSETIFF; without vnet header support (old kernels) the offloads go. */
static int tap_attach(struct tap *t)
{
	struct ifreq ifr;
	int hdr_len = NET_HDR_LEN;

	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, t->ifname, IFNAMSIZ);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(t->fd, TUNSETIFF, &ifr) == 0 && ioctl(t->fd, TUNSETVNETHDRSZ, &hdr_len) == 0) {
		t->be.ops = &tap_ops_vnet;
		return 0;
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(t->fd, TUNSETIFF, &ifr) == 0) {
		t->be.ops = &tap_ops_plain;
		return 0;
	}
	return -errno;
}

static int tap_setup(struct tap *t)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int ret;

	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0 || (ret = tap_attach(t)) != 0) {
		ret = t->fd < 0 ? -errno : ret;
		log_error("cannot open tap device %s: %s (needs CAP_NET_ADMIN or an existing tap "
			  "owned by you)",
			  t->ifname, strerror(-ret));
		return ret;
	}
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->epfd < 0 || epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->fd, &ev) < 0) {
		ret = -errno;
		log_error("tap %s: cannot set up polling: %s", t->ifname, strerror(errno));
		return ret;
	}
	if (t->be.ops->vnet_hdr)
		tap_set_offload(&t->be, 0);
	return 0;
}

int tap_open(const struct net_spec *spec, struct net_backend **out)
{
	struct tap *t = calloc(1, sizeof(*t));
	int ret;

	*out = NULL;
	if (t == NULL) {
		log_error("tap %s: out of memory", spec->ifname);
		return -ENOMEM;
	}
	t->fd = t->epfd = -1;
	t->be.ops = &tap_ops_plain;
	memcpy(t->ifname, spec->ifname, IFNAMSIZ);
	if ((ret = tap_setup(t)) != 0) {
		tap_destroy(&t->be);
		return ret;
	}
	*out = &t->be;
	return 0;
}
