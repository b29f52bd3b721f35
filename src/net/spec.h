/*
 * The --net option: which backend a network card uses and how.
 *
 *   user[,hostfwd=PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...[,mac=MAC]
 *   tap,ifname=NAME[,mac=MAC]
 *
 * PROTO is tcp or udp; HOSTADDR defaults to 127.0.0.1 (write 0.0.0.0 to
 * listen on every address), GUESTADDR to 10.0.2.15 (the address the guest
 * gets from DHCP). Without mac=, the MAC is 52:54:00 followed by three bytes
 * of a hash of the spec and the card's position: stable across runs of the
 * same command line.
 */
#ifndef TABIQUE_NET_SPEC_H
#define TABIQUE_NET_SPEC_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_MAX_NICS	8
#define NET_MAX_HOSTFWD 16

/* The user-mode network (libslirp's defaults, as QEMU's). */
#define NET_USER_GUEST_ADDR "10.0.2.15"
#define NET_USER_HOST_ADDR  "127.0.0.1"

enum net_kind {
	NET_USER,
	NET_TAP,
};

struct net_hostfwd {
	bool udp;
	struct in_addr host_addr;
	uint16_t host_port;
	struct in_addr guest_addr;
	uint16_t guest_port;
};

struct net_spec {
	enum net_kind kind;
	uint8_t mac[6];
	char ifname[IFNAMSIZ]; /* tap */
	unsigned nfwd;	       /* user */
	struct net_hostfwd fwd[NET_MAX_HOSTFWD];
};

/*
 * Parses one --net value for the index-th card (0-based; it seeds the
 * generated MAC). Returns 0, or -EINVAL with a one-line reason in err (what
 * is wrong and what would be right).
 */
int net_parse_spec(const char *text, unsigned index, struct net_spec *out, char *err,
		   size_t errlen);

/* "52:54:00:12:34:56" into buf (at least 18 bytes). */
void net_format_mac(const uint8_t mac[6], char *buf);

#endif
