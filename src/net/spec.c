#include "net/spec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NET_SPEC_MAX 1024 /* longer values are surely a mistake */

static int net_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int net_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* FNV-1a: small, stable across builds and hosts, good enough to tell cards apart. */
static uint64_t net_hash(const char *text, unsigned index)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const char *p = text; *p != '\0'; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
	for (unsigned i = 0; i < 4; i++)
		h = (h ^ ((index >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
	return h;
}

/* 52:54:00 is locally administered and unicast: it can clash with no vendor's card. */
static void net_generate_mac(const char *text, unsigned index, uint8_t mac[6])
{
	uint64_t h = net_hash(text, index);

	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

void net_format_mac(const uint8_t mac[6], char *buf)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

static int net_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Exactly six two-digit hex groups separated by ':'; a unicast address other than zero. */
static bool net_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned any = 0;

	if (strlen(s) != 17)
		return false;
	for (unsigned i = 0; i < 6; i++) {
		int hi = net_hexval(s[3 * i]), lo = net_hexval(s[3 * i + 1]);

		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return false;
		mac[i] = (uint8_t)(hi << 4 | lo);
		any |= mac[i];
	}
	return any != 0 && !(mac[0] & 1);
}

/* A decimal port, 1..65535, nothing else. */
static bool net_parse_port(const char *s, uint16_t *port)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)s[0]) || strlen(s) > 5)
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || errno != 0 || v < 1 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* An IPv4 address, or the default when empty. */
static bool net_parse_addr(const char *s, const char *dflt, struct in_addr *addr)
{
	return inet_pton(AF_INET, s[0] != '\0' ? s : dflt, addr) == 1;
}

/* "ADDR:PORT" at s (ADDR may be empty), split in place at the last ':'. */
static bool net_split_endpoint(char *s, char **addr, char **port)
{
	char *colon = strrchr(s, ':');

	if (colon == NULL)
		return false;
	*colon = '\0';
	*addr = s;
	*port = colon + 1;
	return true;
}

#define NET_FWD_SYNTAX "use hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"

/* PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, in place. */
static int net_parse_hostfwd(char *v, struct net_hostfwd *f, char *err, size_t errlen)
{
	char *dash = strchr(v, '-'), *colon = strchr(v, ':');
	char *haddr, *hport, *gaddr, *gport;

	if (dash == NULL || colon == NULL || colon > dash)
		return net_err(err, errlen, "bad hostfwd '%s': " NET_FWD_SYNTAX, v);
	*dash = '\0';
	*colon = '\0';
	if (strcmp(v, "tcp") != 0 && strcmp(v, "udp") != 0)
		return net_err(err, errlen, "hostfwd protocol '%s' is not tcp or udp", v);
	f->udp = v[0] == 'u';
	if (!net_split_endpoint(colon + 1, &haddr, &hport) ||
	    !net_split_endpoint(dash + 1, &gaddr, &gport))
		return net_err(err, errlen, "bad hostfwd: " NET_FWD_SYNTAX);
	if (!net_parse_addr(haddr, NET_USER_HOST_ADDR, &f->host_addr))
		return net_err(err, errlen, "hostfwd host address '%s' is not an IPv4 address",
			       haddr);
	if (!net_parse_addr(gaddr, NET_USER_GUEST_ADDR, &f->guest_addr))
		return net_err(err, errlen, "hostfwd guest address '%s' is not an IPv4 address",
			       gaddr);
	if (!net_parse_port(hport, &f->host_port))
		return net_err(err, errlen, "hostfwd host port '%s' is not a port (1-65535)",
			       hport);
	if (!net_parse_port(gport, &f->guest_port))
		return net_err(err, errlen, "hostfwd guest port '%s' is not a port (1-65535)",
			       gport);
	return 0;
}

/* Linux's rules for interface names (dev_valid_name). */
static bool net_ifname_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p) ||
		    !isprint((unsigned char)*p))
			return false;
	return true;
}

/* One key=value after the backend name. */
static int net_parse_option(char *opt, struct net_spec *s, bool *mac_set, char *err, size_t errlen)
{
	char *v = strchr(opt, '=');

	if (v == NULL)
		return net_err(err, errlen, "option '%s' needs a value (KEY=VALUE)", opt);
	*v++ = '\0';
	if (strcmp(opt, "mac") == 0) {
		if (*mac_set || !net_parse_mac(v, s->mac))
			return net_err(err, errlen,
				       "bad or repeated mac '%s': use one unicast address like "
				       "52:54:00:12:34:56",
				       v);
		*mac_set = true;
		return 0;
	}
	if (strcmp(opt, "hostfwd") == 0 && s->kind == NET_USER) {
		if (s->nfwd == NET_MAX_HOSTFWD)
			return net_err(err, errlen, "more than %d hostfwd options",
				       NET_MAX_HOSTFWD);
		return net_parse_hostfwd(v, &s->fwd[s->nfwd++], err, errlen);
	}
	if (strcmp(opt, "ifname") == 0 && s->kind == NET_TAP) {
		if (s->ifname[0] != '\0' || !net_ifname_ok(v))
			return net_err(err, errlen,
				       "bad or repeated ifname '%s': use one interface name of 1 "
				       "to %d characters",
				       v, IFNAMSIZ - 1);
		strcpy(s->ifname, v);
		return 0;
	}
	return net_err(err, errlen, "unknown option '%s' for %s: use %s", opt,
		       s->kind == NET_USER ? "user" : "tap",
		       s->kind == NET_USER ? "hostfwd= or mac=" : "ifname= or mac=");
}

static int net_parse_kind(const char *name, struct net_spec *s, char *err, size_t errlen)
{
	if (strcmp(name, "user") == 0)
		s->kind = NET_USER;
	else if (strcmp(name, "tap") == 0)
		s->kind = NET_TAP;
	else if (name[0] == '\0')
		return net_err(err, errlen, "no backend: use user or tap,ifname=NAME");
	else
		return net_err(err, errlen, "unknown network backend '%s': use user or tap", name);
	return 0;
}

int net_parse_spec(const char *text, unsigned index, struct net_spec *out, char *err, size_t errlen)
{
	char buf[NET_SPEC_MAX], *rest = buf, *tok;
	bool mac_set = false;
	int ret;

	memset(out, 0, sizeof(*out));
	if (strlen(text) >= sizeof(buf))
		return net_err(err, errlen, "longer than %d characters", NET_SPEC_MAX - 1);
	strcpy(buf, text);
	if ((ret = net_parse_kind(strsep(&rest, ","), out, err, errlen)) != 0)
		return ret;
	while ((tok = strsep(&rest, ",")) != NULL) {
		if (tok[0] == '\0')
			return net_err(err, errlen, "empty option (two commas, or one at the end)");
		if ((ret = net_parse_option(tok, out, &mac_set, err, errlen)) != 0)
			return ret;
	}
	if (out->kind == NET_TAP && out->ifname[0] == '\0')
		return net_err(err, errlen, "tap needs ifname=NAME");
	if (!mac_set)
		net_generate_mac(text, index, out->mac);
	return 0;
}
