#include "api/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/backend.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/vsock.h"

void api_control_init(struct api_control *ctl, const struct machine_config *cfg,
		      const struct vsock_config *vsock, const char *name)
{
	memset(ctl, 0, sizeof(*ctl));
	pthread_mutex_init(&ctl->lock, NULL);
	ctl->cfg = cfg;
	ctl->vsock = vsock;
	ctl->name = name;
}

void api_control_destroy(struct api_control *ctl)
{
	pthread_mutex_destroy(&ctl->lock);
}

void api_control_attach(struct api_control *ctl, struct machine *m)
{
	pthread_mutex_lock(&ctl->lock);
	if (ctl->boots++ == 0)
		clock_gettime(CLOCK_MONOTONIC, &ctl->started);
	ctl->m = m;
	ctl->reboot_asked = false;
	pthread_mutex_unlock(&ctl->lock);
}

static void api_add(uint64_t *base, const uint64_t *more, size_t n)
{
	for (size_t i = 0; i < n; i++)
		base[i] += more[i];
}

/* The next machine's devices start at 0: what this one counted is kept here. */
static void api_keep_counters(struct api_control *ctl)
{
	const struct machine *m = ctl->m;
	struct blk_stats bs;
	struct net_stats ns;

	for (unsigned i = 0; i < m->nblk && i < DISK_MAX; i++) {
		blk_get_stats(m->blk[i], &bs);
		api_add((uint64_t *)&ctl->blk_base[i], (const uint64_t *)&bs,
			sizeof(bs) / sizeof(uint64_t));
	}
	for (unsigned i = 0; i < m->nnet && i < NET_MAX_NICS; i++) {
		net_get_stats(m->net[i], &ns);
		api_add((uint64_t *)&ctl->net_base[i], (const uint64_t *)&ns,
			sizeof(ns) / sizeof(uint64_t));
	}
}

void api_control_detach(struct api_control *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	if (ctl->m != NULL)
		api_keep_counters(ctl);
	ctl->m = NULL;
	pthread_mutex_unlock(&ctl->lock);
}

bool api_control_take_reboot(struct api_control *ctl)
{
	bool asked;

	pthread_mutex_lock(&ctl->lock);
	asked = ctl->reboot_asked;
	ctl->reboot_asked = false;
	pthread_mutex_unlock(&ctl->lock);
	return asked;
}

/* ---- GET /v1/vm ---- */

static void api_dev_block(struct api_device *d, unsigned i, const struct machine_disk *md)
{
	d->type = API_DEV_BLOCK;
	snprintf(d->id, sizeof(d->id), "vd%c", 'a' + i);
	d->block.path = md->disk->path;
	d->block.serial = md->serial;
	d->block.size = md->disk->size;
	d->block.readonly = md->disk->readonly;
}

static void api_dev_net(struct api_device *d, unsigned i, const struct machine_nic *nic)
{
	const uint8_t *mac = nic->mac;

	d->type = API_DEV_NET;
	snprintf(d->id, sizeof(d->id), "net%u", i);
	snprintf(d->net.mac, sizeof(d->net.mac), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
		 mac[2], mac[3], mac[4], mac[5]);
	d->net.backend = nic->backend->ops->name;
}

/* In the guest's order: disks, NICs, vsock (PCI slots after the entropy device). */
static void api_devices(const struct api_control *ctl, struct api_vm_info *info)
{
	const struct machine_config *cfg = ctl->cfg;
	struct api_device *d = info->devices;

	for (unsigned i = 0; i < cfg->ndisks; i++)
		api_dev_block(d++, i, &cfg->disks[i]);
	for (unsigned i = 0; i < cfg->nnics; i++)
		api_dev_net(d++, i, &cfg->nics[i]);
	if (ctl->vsock != NULL) {
		d->type = API_DEV_VSOCK;
		snprintf(d->id, sizeof(d->id), "vsock");
		d->vsock.cid = ctl->vsock->cid;
		d->vsock.socket = ctl->vsock->path;
		d++;
	}
	d->type = API_DEV_RNG;
	snprintf(d->id, sizeof(d->id), "rng0");
	d++;
	info->ndevices = (unsigned)(d - info->devices);
}

static double api_uptime(const struct api_control *ctl)
{
	struct timespec now;

	if (ctl->boots == 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* Milliseconds are plenty, and print short. */
	return (double)((now.tv_sec - ctl->started.tv_sec) * 1000 +
			(now.tv_nsec - ctl->started.tv_nsec) / 1000000) /
	       1000.0;
}

static int api_control_info(void *opaque, struct api_vm_info *info)
{
	struct api_control *ctl = opaque;

	pthread_mutex_lock(&ctl->lock);
	info->name = ctl->name;
	info->paused = ctl->m != NULL && vm_paused(&ctl->m->vm);
	info->cpus = ctl->cfg->cpus;
	info->memory = ctl->cfg->memory;
	info->pid = (int)getpid();
	info->uptime_seconds = api_uptime(ctl);
	info->boots = ctl->boots;
	api_devices(ctl, info);
	pthread_mutex_unlock(&ctl->lock);
	return 0;
}

/* ---- GET /v1/vm/counters ---- */

static void api_counters_block(const struct api_control *ctl, unsigned i,
			       struct api_dev_counters *d)
{
	d->type = API_DEV_BLOCK;
	snprintf(d->id, sizeof(d->id), "vd%c", 'a' + i);
	memset(&d->block, 0, sizeof(d->block));
	if (ctl->m != NULL && i < ctl->m->nblk)
		blk_get_stats(ctl->m->blk[i], &d->block);
	api_add((uint64_t *)&d->block, (const uint64_t *)&ctl->blk_base[i],
		sizeof(d->block) / sizeof(uint64_t));
}

static void api_counters_net(const struct api_control *ctl, unsigned i, struct api_dev_counters *d)
{
	d->type = API_DEV_NET;
	snprintf(d->id, sizeof(d->id), "net%u", i);
	memset(&d->net, 0, sizeof(d->net));
	if (ctl->m != NULL && i < ctl->m->nnet)
		net_get_stats(ctl->m->net[i], &d->net);
	api_add((uint64_t *)&d->net, (const uint64_t *)&ctl->net_base[i],
		sizeof(d->net) / sizeof(uint64_t));
}

static int api_control_counters(void *opaque, struct api_counters *c)
{
	struct api_control *ctl = opaque;
	struct api_dev_counters *d = c->devices;

	pthread_mutex_lock(&ctl->lock);
	for (unsigned i = 0; i < ctl->cfg->ndisks; i++)
		api_counters_block(ctl, i, d++);
	for (unsigned i = 0; i < ctl->cfg->nnics; i++)
		api_counters_net(ctl, i, d++);
	/* The socket device lives across reboots: its counters never start over. */
	if (ctl->cfg->vsock != NULL) {
		d->type = API_DEV_VSOCK;
		snprintf(d->id, sizeof(d->id), "vsock");
		vsock_get_stats(ctl->cfg->vsock, &d->vsock);
		d++;
	}
	c->ndevices = (unsigned)(d - c->devices);
	pthread_mutex_unlock(&ctl->lock);
	return 0;
}

/* ---- actions ---- */

static int api_why(char *why, size_t len, int ret, const char *text)
{
	snprintf(why, len, "%s", text);
	return ret;
}

/* A vCPU stuck in a device for longer than this fails the pause, not the API. */
#define API_PAUSE_TIMEOUT_MS 5000 /* under the client's 10 s */

/* One line for a pause that failed to stop the vCPUs; returns ret. */
static int api_pause_resume_why(int ret, char *why, size_t len)
{
	if (ret == -ESHUTDOWN)
		return api_why(why, len, ret, "the VM is stopping");
	if (ret == -ETIMEDOUT)
		return api_why(why, len, ret,
			       "a vCPU did not stop within 5 s: the VM was not paused, it runs on");
	return ret;
}

static int api_pause_resume(struct vm *vm, bool pause, char *why, size_t len)
{
	int ret = pause ? vm_pause(vm, API_PAUSE_TIMEOUT_MS) : vm_resume(vm);

	if (ret == -EALREADY)
		return api_why(why, len, ret,
			       pause ? "the VM is paused already" : "the VM is not paused");
	return api_pause_resume_why(ret, why, len);
}

/* With the lock held and a machine attached. */
static int api_act_on(struct api_control *ctl, enum api_action action, char *why, size_t len)
{
	struct vm *vm = &ctl->m->vm;

	switch (action) {
	case API_PAUSE:
	case API_RESUME:
		return api_pause_resume(vm, action == API_PAUSE, why, len);
	case API_SHUTDOWN:
		/* The guest cannot see the button while its vCPUs are parked. */
		if (vm_paused(vm))
			return api_why(why, len, -EBUSY,
				       "the VM is paused: resume it first, or power it off");
		machine_power_button(ctl->m);
		return 0;
	case API_POWEROFF:
		vm_request_stop(vm, VM_QUIT, "powered off through the control API");
		return 0;
	case API_REBOOT:
		ctl->reboot_asked = true;
		vm_request_stop(vm, VM_REBOOT, NULL);
		return 0;
	default:
		return -EINVAL;
	}
}

/* With the lock held: 0 when there is a machine that is not stopping, else why not. */
static int api_machine_ready(const struct api_control *ctl, char *why, size_t len)
{
	if (ctl->m == NULL)
		return api_why(why, len, -EBUSY, "the VM is between two boots: try again");
	if (vm_stop_requested(&ctl->m->vm))
		return api_why(why, len, -ESHUTDOWN, "the VM is stopping");
	return 0;
}

static int api_control_act(void *opaque, enum api_action action, char *why, size_t len)
{
	struct api_control *ctl = opaque;
	int ret;

	pthread_mutex_lock(&ctl->lock);
	ret = api_machine_ready(ctl, why, len);
	if (ret == 0)
		ret = api_act_on(ctl, action, why, len);
	pthread_mutex_unlock(&ctl->lock);
	return ret;
}

/* ---- GET /v1/vm/vcpus ---- */

static int api_read_vcpus(struct vm *vm, struct api_vcpus *out, char *why, size_t len)
{
	struct vcpu_status *st = calloc(vm->ncpus, sizeof(*st));
	int ret;

	if (st == NULL)
		return -ENOMEM;
	ret = vm_read_vcpus(vm, st, API_PAUSE_TIMEOUT_MS);
	if (ret == -ETIMEDOUT || ret == -ESHUTDOWN)
		api_pause_resume_why(ret, why, len);
	else if (ret != 0)
		snprintf(why, len, "cannot read the vCPUs: %s", strerror(-ret));
	out->n = 0;
	for (unsigned i = 0; ret == 0 && i < vm->ncpus && i < API_MAX_VCPUS; i++)
		vcpu_summarize(&st[i], i, &out->vcpus[out->n++]);
	free(st);
	return ret;
}

static int api_control_vcpus(void *opaque, struct api_vcpus *out, char *why, size_t len)
{
	struct api_control *ctl = opaque;
	int ret;

	pthread_mutex_lock(&ctl->lock);
	ret = api_machine_ready(ctl, why, len);
	if (ret == 0)
		ret = api_read_vcpus(&ctl->m->vm, out, why, len);
	pthread_mutex_unlock(&ctl->lock);
	return ret;
}

const struct api_ops api_control_ops = {
    .info = api_control_info,
    .counters = api_control_counters,
    .act = api_control_act,
    .vcpus = api_control_vcpus,
};
