/*
 * User-mode networking through libslirp: the guest sits behind a NAT on
 * 10.0.2.0/24 (it gets 10.0.2.15 by DHCP, the gateway 10.0.2.2 is the host's
 * loopback, 10.0.2.3 relays DNS), with TCP and UDP ports of the host
 * forwarded into it. Needs no privileges.
 *
 * Everything runs on the device's thread: libslirp's sockets and a timerfd
 * for its timers live in a private epoll set, which the device thread
 * watches as one fd. After each round (poll, or a batch of frames from the
 * guest) the set is brought up to date with what slirp_pollfds_fill asks for.
 */
#ifndef TABIQUE_NET_USER_H
#define TABIQUE_NET_USER_H

#include "net/backend.h"
#include "net/spec.h"

/*
 * A slirp instance with spec's port forwards listening. Returns 0, or
 * -errno after one line saying what failed (a port in use, say).
 */
int netuser_open(const struct net_spec *spec, struct net_backend **out);

#endif
