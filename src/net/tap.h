/*
 * A tap device (/dev/net/tun, IFF_TAP | IFF_NO_PI): the guest's frames go to
 * a host interface that the user configures (address, bridge). With
 * IFF_VNET_HDR the frames carry a virtio_net_hdr, so checksum and TSO
 * offloads pass through to the host kernel untouched.
 *
 * Non-blocking and read on the device thread; reading pauses while the guest
 * has no receive buffers, so frames wait in the kernel's queue instead of
 * being dropped by us.
 */
#ifndef TABIQUE_NET_TAP_H
#define TABIQUE_NET_TAP_H

#include "net/backend.h"
#include "net/spec.h"

/*
 * Attaches to tap spec->ifname (created if missing and we may). Returns 0,
 * or -errno after one line saying what failed.
 */
int tap_open(const struct net_spec *spec, struct net_backend **out);

#endif
