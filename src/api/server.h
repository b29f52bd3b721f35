/*
 * The per-VM control API: REST with JSON on a Unix socket (docs/api.yaml is
 * the contract). libmicrohttpd serves it from one internal polling thread;
 * this module does the HTTP side (routes, limits, JSON in and out), and what
 * a request does to the VM goes through a small vtable (struct api_ops), so
 * that unit tests can drive the server with a fake VM.
 *
 *   GET /v1/vm            200 the VM: name, state, cpus, memory, pid, ...
 *   PUT /v1/vm/pause      204; 409 when paused already
 *   PUT /v1/vm/resume     204; 409 when not paused
 *   PUT /v1/vm/shutdown   202: the ACPI power button is pressed
 *   PUT /v1/vm/poweroff   202: the VM stops now, the VMM exits 5
 *   PUT /v1/vm/reboot     202: hard reset, the guest boots again
 *   GET /v1/vm/counters   200 per-device counters
 *   GET /v1/vm/vcpus      200 where each vCPU is (a pause of a few ms)
 *
 * Every error is {"error": "one line"}: 400 bad body, 404 unknown path, 405
 * wrong method (with Allow), 409 wrong state, 413 body over API_BODY_MAX,
 * 503 a vCPU did not stop in time.
 * A PUT body is optional; when present it must be a JSON object without
 * members the endpoint does not know (none, so far).
 */
#ifndef TABIQUE_API_SERVER_H
#define TABIQUE_API_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/vsock.h"
#include "vmm/vcpu.h"

#define API_BODY_MAX	   (64u << 10) /* request bodies beyond this get 413 */
#define API_BODY_DRAIN_MAX (1u << 20)  /* chunked bodies: bytes past the limit read for the 413 */
#define API_MAX_CONNS	   64	       /* connections served at once; more wait in the backlog */
#define API_CONN_TIMEOUT   10	       /* seconds a connection may stay idle or half-sent */
#define API_SOCKET_BACKLOG 128
#define API_MAX_DEVICES	   32 /* 16 disks, 8 NICs, vsock, rng, and room */
#define API_NAME_MAX	   63 /* VM names: see api_name_valid() */

enum api_action {
	API_PAUSE,
	API_RESUME,
	API_SHUTDOWN, /* press the power button: the guest shuts itself down */
	API_POWEROFF, /* stop now; the VMM exits 5 */
	API_REBOOT,   /* hard reset; the guest boots again */
};

enum api_dev_type { API_DEV_BLOCK, API_DEV_NET, API_DEV_VSOCK, API_DEV_RNG };

/* One device of GET /v1/vm; strings are the VM side's and stay valid during the call. */
struct api_device {
	enum api_dev_type type;
	char id[16]; /* "vda", "net0", "vsock", "rng0" */
	union {
		struct {
			const char *path;
			const char *serial; /* NULL or "" for none */
			uint64_t size;	    /* bytes */
			bool readonly;
		} block;
		struct {
			char mac[18];	     /* "52:54:00:12:34:56" */
			const char *backend; /* "user" or "tap" */
		} net;
		struct {
			uint64_t cid;
			const char *socket;
		} vsock;
	};
};

struct api_vm_info {
	const char *name;
	bool paused;
	unsigned cpus;
	uint64_t memory; /* bytes */
	int pid;
	double uptime_seconds; /* since the VM first started, pauses included */
	unsigned boots;	       /* 1, plus one per reboot */
	unsigned ndevices;
	struct api_device devices[API_MAX_DEVICES];
};

/* The counters of one device, for GET /v1/vm/counters. */
struct api_dev_counters {
	enum api_dev_type type; /* block, net or vsock */
	char id[16];
	union {
		struct blk_stats block;
		struct net_stats net;
		struct vsock_stats vsock;
	};
};

struct api_counters {
	unsigned ndevices;
	struct api_dev_counters devices[API_MAX_DEVICES];
};

#define API_MAX_VCPUS 256

struct api_vcpus {
	unsigned n;
	struct vcpu_summary vcpus[API_MAX_VCPUS];
};

/*
 * What the server asks of the VM, from its thread, one request at a time.
 * info and counters fill their struct and return 0 or -errno. act returns 0
 * when done (pause: every vCPU parked) or accepted; -EALREADY, -EBUSY or
 * -ESHUTDOWN for a state the action does not fit (409), -ETIMEDOUT when the
 * vCPUs did not stop in time (503), with why set to one line for the client;
 * anything else is a server failure (500). vcpus answers like act.
 */
struct api_ops {
	int (*info)(void *opaque, struct api_vm_info *info);
	int (*counters)(void *opaque, struct api_counters *counters);
	int (*act)(void *opaque, enum api_action action, char *why, size_t whylen);
	int (*vcpus)(void *opaque, struct api_vcpus *out, char *why, size_t whylen);
};

struct api_server;

/* A listening Unix socket and the file it is bound to (so that only that file is removed). */
struct api_socket {
	int fd;
	char path[108];
	uint64_t dev, ino;
};

/*
 * Binds a Unix socket at path with mode 0600 and listens on it. A socket
 * file that nobody answers on (left by a VMM that died) is replaced; a live
 * one, or a path that is not a socket, is refused. Returns 0, or a negative
 * errno after one line naming what (e.g. "--api-socket") and path.
 */
int api_listen(struct api_socket *sock, const char *path, const char *what);

/* Closes the socket and removes its file, if it is still the one we bound. Safe twice. */
void api_unlisten(struct api_socket *sock);

/*
 * Serves the API on sock (from api_listen; the server takes it over) from a
 * new thread, which inherits the caller's signal mask. conn_timeout is in
 * seconds (0: API_CONN_TIMEOUT). Returns 0 or a negative errno after one
 * line (sock is then still the caller's).
 */
int api_server_start(struct api_server **out, struct api_socket *sock, const struct api_ops *ops,
		     void *opaque, unsigned conn_timeout);

/* Stops serving, closes every connection and removes the socket file. NULL is fine. */
void api_server_stop(struct api_server *srv);

/* VM names: 1 to API_NAME_MAX letters, digits, '.', '_' or '-', starting with a letter or digit. */
bool api_name_valid(const char *name);

#endif
