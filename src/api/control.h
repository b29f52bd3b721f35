/*
 * The VMM's side of the control API: struct api_ops over the machine that
 * `tabique run` boots, across reboots (each boot builds a new machine; the
 * API outlives them all). The server thread calls in while the main thread
 * attaches and detaches machines: one lock orders them.
 */
#ifndef TABIQUE_API_CONTROL_H
#define TABIQUE_API_CONTROL_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "api/server.h"
#include "vmm/machine.h"

struct api_control {
	pthread_mutex_t lock;		  /* everything below */
	struct machine *m;		  /* NULL between two boots */
	const struct machine_config *cfg; /* run's: disks, NICs, vsock */
	const struct vsock_config *vsock; /* NULL without --vsock */
	const char *name;
	struct timespec started; /* CLOCK_MONOTONIC at the first boot */
	unsigned boots;
	bool reboot_asked; /* PUT /v1/vm/reboot made the last stop */
	/* Counters of the machines gone before this one: the live ones add to them. */
	struct blk_stats blk_base[DISK_MAX];
	struct net_stats net_base[NET_MAX_NICS];
};

/* What the server calls: pass {&api_control_ops, ctl} to api_server_start(). */
extern const struct api_ops api_control_ops;

/* cfg and vsock (NULL for none) must outlive ctl; name is the VM's (--name). */
void api_control_init(struct api_control *ctl, const struct machine_config *cfg,
		      const struct vsock_config *vsock, const char *name);
void api_control_destroy(struct api_control *ctl);

/* After machine_create(), before vm_run(): requests now act on m. Counts a boot. */
void api_control_attach(struct api_control *ctl, struct machine *m);
/* After vm_run() returned, before machine_destroy(): keeps m's counters. */
void api_control_detach(struct api_control *ctl);

/*
 * True when the last stop was PUT /v1/vm/reboot, which boots the guest again
 * whatever --on-reboot says. Clears it.
 */
bool api_control_take_reboot(struct api_control *ctl);

#endif
