/*
 * What a virtio-net device talks to on the host side: user-mode NAT
 * (net/user.c, libslirp) or a tap device (net/tap.c). A backend never sees
 * virtio: the device hands it whole frames and takes whole frames from it
 * through net_receive().
 *
 * Threading: every op but create/destroy runs on the device's thread, under
 * the transport's lock (set_offload: on a vCPU thread, same lock), so a
 * backend needs no lock of its own as long as it has no thread of its own.
 *
 * Polling: a backend exposes one fd (usually a private epoll set of its
 * sockets, tap fd and timerfd); the device thread watches it and calls poll()
 * when it is readable. Nested epoll sets are what let a backend's fds change
 * every round (libslirp's sockets) while the device thread's own epoll set is
 * fixed once it starts.
 */
#ifndef TABIQUE_NET_BACKEND_H
#define TABIQUE_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct net;
struct net_backend;
struct net_spec;

struct net_backend_ops {
	const char *name; /* "user", "tap": logs */
	/*
	 * Frames carry a 12-byte virtio_net_hdr both ways (tap with
	 * IFF_VNET_HDR): the device can then offer checksum and segmentation
	 * offloads. Without it, frames are plain Ethernet and fully checksummed.
	 */
	bool vnet_hdr;
	/* The fd the device thread watches for readability; poll() runs then. */
	int (*fd)(struct net_backend *be);
	void (*poll)(struct net_backend *be);
	/*
	 * A frame from the guest: iov[0, n) hold len bytes, at most
	 * NET_HDR_LEN + NET_MAX_FRAME. With vnet_hdr, iov[0] is the 12-byte
	 * header: the device's checked copy. The frame itself is still in
	 * guest memory, which the guest may change at any time: a backend
	 * that looks into it must copy it first (the kernel, behind a tap,
	 * does). Valid during the call only. Returns 0 or -errno (dropped).
	 */
	int (*send)(struct net_backend *be, const struct iovec *iov, unsigned n, size_t len);
	/* After a batch of send()s: the backend catches up (slirp's new sockets). Optional. */
	void (*flush)(struct net_backend *be);
	/* The device has room again after net_rx_stalled() said it had none. Optional. */
	void (*rx_ready)(struct net_backend *be);
	/* The guest negotiated these virtio-net features: enable the matching offloads. Optional.
	 */
	void (*set_offload)(struct net_backend *be, uint64_t features);
	void (*destroy)(struct net_backend *be);
};

/* Embedded first in each backend's state. */
struct net_backend {
	const struct net_backend_ops *ops;
	struct net *net; /* set by net_create(), cleared by net_destroy(): where frames go */
};

/*
 * Opens the backend a --net spec asks for (a tap, a slirp instance with its
 * port forwards). On failure, says why in one line and returns -errno.
 */
int net_backend_open(const struct net_spec *spec, struct net_backend **out);

/* Closes it; NULL is fine. No device may be using it any more. */
void net_backend_close(struct net_backend *be);

#endif
