#include "virtio/pci.h"

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/log.h"

#define VIRTIO_PCI_MAX_WATCH	  8
#define VIRTIO_PCI_SUBSYSTEM	  0x0040 /* non-transitional: 0x40 or higher (4.1.2.1) */
#define VIRTIO_PCI_CAP_LEN	  16
#define VIRTIO_PCI_NOTIFY_CAP_LEN 20
#define VIRTIO_PCI_CFG_CAP_LEN	  20

/* What the device thread's epoll events carry: a kind and an index. */
enum { VIRTIO_PCI_EV_QUEUE, VIRTIO_PCI_EV_STOP, VIRTIO_PCI_EV_WATCH };

struct virtio_pci_queue {
	uint16_t size; /* the queue_size register */
	uint16_t vector;
	bool enabled;
	uint64_t desc, driver, device;
	int kick_fd;	/* ioeventfd target; MMIO notifications write it too */
	bool ioeventfd; /* registered with KVM at notify_addr */
	uint64_t notify_addr;
};

struct virtio_pci_watch {
	int fd;
	void (*handler)(struct virtio_device *dev, int fd);
};

/*
 * What the device thread did, logged once a second under TABIQUE_DEBUG: per
 * request, the guest's kicks and our interrupts are VM exits, our wakeups
 * system calls; that is what I/O latency is made of in a nested host.
 */
struct virtio_pci_counters {
	uint64_t wakeups;	  /* epoll_wait returns */
	uint64_t kicks;		  /* guest notifications, as the eventfds count them */
	uint64_t used;		  /* chains answered through the used rings */
	uint64_t irqs;		  /* queue interrupts sent */
	uint64_t irqs_suppressed; /* answered without one: the driver did not want it */
	uint64_t logged_ns;
};

struct virtio_pci {
	struct pci_device pci;
	struct virtio_device *dev;
	const struct virtio_device_ops *ops;
	int vm_fd;

	pthread_mutex_t lock; /* everything below; held around every device callback */
	uint64_t offered;
	uint64_t driver_features;
	uint32_t dev_feature_sel, drv_feature_sel;
	uint16_t config_vector, queue_sel;
	uint8_t status, config_generation, isr;
	unsigned nq;
	struct virtio_pci_queue q[VIRTIO_MAX_QUEUES];
	struct virtqueue vq[VIRTIO_MAX_QUEUES];
	uint8_t cfg_cap;	    /* the VIRTIO_PCI_CAP_PCI_CFG capability */
	uint64_t slow_notifies;	    /* through MMIO exits, not ioeventfds */
	struct log_limit log_limit; /* NEEDS_RESET reports: a guest can cause them in a loop */

	int epfd, stop_fd;
	pthread_t thread;
	bool running;
	struct virtio_pci_watch watch[VIRTIO_PCI_MAX_WATCH];
	unsigned nwatch;
	struct virtio_pci_counters count;	  /* device thread only */
	uint16_t counted_used[VIRTIO_MAX_QUEUES]; /* used_idx at the last count */
};

/* ---- little helpers ---- */

static uint64_t virtio_pci_le(const uint8_t *data, uint32_t len)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < len && i < 8; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

static void virtio_pci_put(uint8_t *buf, uint32_t off, uint64_t v, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		buf[off + i] = (uint8_t)(v >> (8 * i));
}

static void virtio_pci_kick_fd(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		log_debug("virtio-pci: cannot signal a queue eventfd");
}

static bool virtio_pci_vector_ok(const struct virtio_pci *vp, uint16_t v)
{
	return v < vp->pci.msix.nvec;
}

/* ---- interrupts ---- */

/* Without MSI-X there is no interrupt at all (no INTx pin): the ISR bit is all the driver gets. */
static void virtio_pci_interrupt(struct virtio_pci *vp, uint16_t vector, uint8_t isr)
{
	if (isr == VIRTIO_ISR_CONFIG || !pci_msix_enabled(&vp->pci))
		vp->isr |= isr;
	if (vector != VIRTIO_MSI_NO_VECTOR && pci_msix_enabled(&vp->pci))
		pci_msix_raise(&vp->pci, vector);
}

static void virtio_pci_config_interrupt(struct virtio_pci *vp)
{
	virtio_pci_interrupt(vp, vp->config_vector, VIRTIO_ISR_CONFIG);
}

static void virtio_pci_set_needs_reset(struct virtio_pci *vp, const char *why)
{
	if (vp->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	if (log_limit_allow(&vp->log_limit, vp->ops->name))
		log_warn("%s: %s; the device needs a reset by its driver", vp->ops->name, why);
	vp->status |= VIRTIO_STATUS_NEEDS_RESET;
	/* 2.1.2: after DRIVER_OK, NEEDS_RESET comes with a configuration change notification. */
	if (vp->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_pci_config_interrupt(vp);
}

/* ---- the services a device gets (struct virtio_transport_ops) ---- */

static struct virtio_pci *virtio_pci_of(struct virtio_device *dev)
{
	return dev->transport_priv;
}

static struct virtqueue *virtio_pci_queue(struct virtio_device *dev, unsigned q)
{
	struct virtio_pci *vp = virtio_pci_of(dev);

	return q < vp->nq ? &vp->vq[q] : NULL;
}

static void virtio_pci_queue_used(struct virtio_device *dev, unsigned q)
{
	struct virtio_pci *vp = virtio_pci_of(dev);

	if (q >= vp->nq)
		return;
	vp->count.used += (uint16_t)(vp->vq[q].used_idx - vp->counted_used[q]);
	vp->counted_used[q] = vp->vq[q].used_idx;
	if (vq_should_notify(&vp->vq[q])) {
		vp->count.irqs++;
		virtio_pci_interrupt(vp, vp->q[q].vector, VIRTIO_ISR_QUEUE);
	} else {
		vp->count.irqs_suppressed++;
	}
}

static void virtio_pci_queue_kick(struct virtio_device *dev, unsigned q)
{
	struct virtio_pci *vp = virtio_pci_of(dev);

	if (q < vp->nq)
		virtio_pci_kick_fd(vp->q[q].kick_fd);
}

static void virtio_pci_needs_reset(struct virtio_device *dev, const char *why)
{
	virtio_pci_set_needs_reset(virtio_pci_of(dev), why);
}

static void virtio_pci_config_changed(struct virtio_device *dev)
{
	struct virtio_pci *vp = virtio_pci_of(dev);

	vp->config_generation++;
	virtio_pci_config_interrupt(vp);
}

static int virtio_pci_watch_fd(struct virtio_device *dev, int fd,
			       void (*handler)(struct virtio_device *dev, int fd))
{
	struct virtio_pci *vp = virtio_pci_of(dev);
	struct epoll_event ev = {.events = EPOLLIN};

	if (vp->running)
		return -EBUSY; /* the thread reads the table without the lock */
	if (vp->nwatch == VIRTIO_PCI_MAX_WATCH)
		return -ENOSPC;
	ev.data.u64 = (uint64_t)VIRTIO_PCI_EV_WATCH << 32 | vp->nwatch;
	if (epoll_ctl(vp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	vp->watch[vp->nwatch++] = (struct virtio_pci_watch){fd, handler};
	return 0;
}

static const struct virtio_transport_ops virtio_pci_transport = {
    .queue = virtio_pci_queue,
    .queue_used = virtio_pci_queue_used,
    .queue_kick = virtio_pci_queue_kick,
    .needs_reset = virtio_pci_needs_reset,
    .config_changed = virtio_pci_config_changed,
    .watch_fd = virtio_pci_watch_fd,
};

/* ---- the status machine ---- */

static void virtio_pci_reset_queue(struct virtio_pci *vp, unsigned i)
{
	struct virtio_pci_queue *q = &vp->q[i];

	vq_reset(&vp->vq[i]);
	vp->counted_used[i] = 0;
	q->size = vp->ops->queue_max_size;
	q->vector = VIRTIO_MSI_NO_VECTOR;
	q->enabled = false;
	q->desc = q->driver = q->device = 0;
}

/* Writing 0 to device_status (4.1.4.3.1); ioeventfds stay: they follow the BAR, not the status. */
static void virtio_pci_reset(struct virtio_pci *vp)
{
	for (unsigned i = 0; i < vp->nq; i++)
		virtio_pci_reset_queue(vp, i);
	vp->status = 0;
	vp->driver_features = 0;
	vp->dev_feature_sel = vp->drv_feature_sel = 0;
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	vp->queue_sel = 0;
	vp->isr = 0;
	vp->dev->features = 0;
	if (vp->ops->reset != NULL)
		vp->ops->reset(vp->dev);
}

/* 3.1.1: never a feature we did not offer, and never without VIRTIO_F_VERSION_1. */
static bool virtio_pci_features_ok(struct virtio_pci *vp)
{
	uint64_t f = vp->driver_features;

	if ((f & ~vp->offered) != 0 || !(f & (1ULL << VIRTIO_F_VERSION_1)))
		return false;
	if (vp->ops->features_ok != NULL && !vp->ops->features_ok(vp->dev, f))
		return false;
	vp->dev->features = f;
	return true;
}

static void virtio_pci_driver_ok(struct virtio_pci *vp)
{
	/* Buffers made available before DRIVER_OK had to wait (2.1.2): serve them now. */
	for (unsigned i = 0; i < vp->nq; i++)
		if (vp->q[i].enabled)
			virtio_pci_kick_fd(vp->q[i].kick_fd);
}

static void virtio_pci_set_status(struct virtio_pci *vp, uint8_t v)
{
	uint8_t old = vp->status & (uint8_t)~VIRTIO_STATUS_NEEDS_RESET;
	uint8_t drv = v & (uint8_t)~VIRTIO_STATUS_NEEDS_RESET; /* that bit is the device's */
	uint8_t added = drv & (uint8_t)~old;

	if (v == 0) {
		virtio_pci_reset(vp);
		return;
	}
	if (old & ~drv) {
		virtio_pci_set_needs_reset(vp, "the driver cleared a status bit");
		return;
	}
	if ((added & VIRTIO_STATUS_FEATURES_OK) && !virtio_pci_features_ok(vp))
		drv &=
		    (uint8_t)~VIRTIO_STATUS_FEATURES_OK; /* the driver reads it back and gives up */
	if ((added & VIRTIO_STATUS_DRIVER_OK) && !(drv & VIRTIO_STATUS_FEATURES_OK)) {
		virtio_pci_set_needs_reset(vp, "DRIVER_OK without FEATURES_OK");
		return;
	}
	vp->status = drv | (vp->status & VIRTIO_STATUS_NEEDS_RESET);
	if (added & VIRTIO_STATUS_DRIVER_OK)
		virtio_pci_driver_ok(vp);
}

static void virtio_pci_enable_queue(struct virtio_pci *vp, unsigned i)
{
	struct virtio_pci_queue *q = &vp->q[i];
	uint64_t f = vp->dev->features;

	if (q->enabled)
		return;
	/* The queue format depends on the features: they come first (3.1.1). */
	if (!(vp->status & VIRTIO_STATUS_FEATURES_OK)) {
		virtio_pci_set_needs_reset(vp, "a queue was enabled before FEATURES_OK");
		return;
	}
	if (q->size > vp->ops->queue_max_size ||
	    vq_setup(&vp->vq[i], vp->dev->mem, q->size, q->desc, q->driver, q->device,
		     f & (1ULL << VIRTIO_F_EVENT_IDX), f & (1ULL << VIRTIO_F_INDIRECT_DESC)) != 0) {
		virtio_pci_set_needs_reset(vp, "a queue's size or rings are invalid");
		return;
	}
	q->enabled = true;
}

/* ---- common configuration ---- */

static void virtio_pci_common_snapshot(const struct virtio_pci *vp, uint8_t *b)
{
	unsigned sel = vp->queue_sel;

	memset(b, 0, VIRTIO_PCI_COMMON_LEN);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_DFSELECT, vp->dev_feature_sel, 4);
	if (vp->dev_feature_sel < 2)
		virtio_pci_put(b, VIRTIO_PCI_COMMON_DF, vp->offered >> (32 * vp->dev_feature_sel),
			       4);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_GFSELECT, vp->drv_feature_sel, 4);
	if (vp->drv_feature_sel < 2)
		virtio_pci_put(b, VIRTIO_PCI_COMMON_GF,
			       vp->driver_features >> (32 * vp->drv_feature_sel), 4);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_MSIX, vp->config_vector, 2);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_NUMQ, vp->nq, 2);
	b[VIRTIO_PCI_COMMON_STATUS] = vp->status;
	b[VIRTIO_PCI_COMMON_CFGGENERATION] = vp->config_generation;
	virtio_pci_put(b, VIRTIO_PCI_COMMON_Q_SELECT, sel, 2);
	if (sel >= vp->nq)
		return; /* queue_size 0: no such queue */
	virtio_pci_put(b, VIRTIO_PCI_COMMON_Q_SIZE, vp->q[sel].size, 2);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_Q_MSIX, vp->q[sel].vector, 2);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_Q_ENABLE, vp->q[sel].enabled, 2);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_Q_NOFF, sel, 2);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_Q_DESCLO, vp->q[sel].desc, 8);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_Q_AVAILLO, vp->q[sel].driver, 8);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_Q_USEDLO, vp->q[sel].device, 8);
	virtio_pci_put(b, VIRTIO_PCI_COMMON_Q_NDATA, sel, 2);
}

static void virtio_pci_common_read(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len)
{
	uint8_t b[VIRTIO_PCI_COMMON_LEN];

	virtio_pci_common_snapshot(vp, b);
	for (uint32_t i = 0; i < len; i++)
		data[i] = off + i < sizeof(b) ? b[off + i] : 0;
}

/* Sets the low (hi = false) or high half of a 64-bit register. */
static void virtio_pci_set_half(uint64_t *reg, bool hi, uint32_t v)
{
	if (hi)
		*reg = (*reg & 0xffffffffULL) | (uint64_t)v << 32;
	else
		*reg = (*reg & ~0xffffffffULL) | v;
}

/* Queue registers are frozen once the queue is enabled (4.1.4.3.2). */
static struct virtio_pci_queue *virtio_pci_config_queue(struct virtio_pci *vp)
{
	if (vp->queue_sel >= vp->nq || vp->q[vp->queue_sel].enabled)
		return NULL;
	return &vp->q[vp->queue_sel];
}

static void virtio_pci_write_features(struct virtio_pci *vp, uint32_t v)
{
	/* Features are fixed once FEATURES_OK is set. */
	if (vp->drv_feature_sel < 2 && !(vp->status & VIRTIO_STATUS_FEATURES_OK))
		virtio_pci_set_half(&vp->driver_features, vp->drv_feature_sel == 1, v);
}

static void virtio_pci_write_queue_addr(struct virtio_pci *vp, uint64_t off, uint32_t v)
{
	struct virtio_pci_queue *q = virtio_pci_config_queue(vp);
	uint64_t *regs[3];
	unsigned field = (unsigned)(off - VIRTIO_PCI_COMMON_Q_DESCLO) / 8;

	if (q == NULL)
		return;
	regs[0] = &q->desc;
	regs[1] = &q->driver;
	regs[2] = &q->device;
	virtio_pci_set_half(regs[field], (off & 4) != 0, v);
}

static void virtio_pci_write_vector(struct virtio_pci *vp, uint16_t *reg, uint16_t v)
{
	/* A vector the table does not have reads back as NO_VECTOR: mapping failed (4.1.5.1.2.1).
	 */
	*reg = v == VIRTIO_MSI_NO_VECTOR || virtio_pci_vector_ok(vp, v) ? v : VIRTIO_MSI_NO_VECTOR;
}

/* Dword and word registers accept only their own width; everything else is read-only. */
static void virtio_pci_common_write(struct virtio_pci *vp, uint64_t off, uint32_t v, uint32_t len)
{
	struct virtio_pci_queue *q;

	if (len == 4 && off == VIRTIO_PCI_COMMON_DFSELECT)
		vp->dev_feature_sel = v;
	else if (len == 4 && off == VIRTIO_PCI_COMMON_GFSELECT)
		vp->drv_feature_sel = v;
	else if (len == 4 && off == VIRTIO_PCI_COMMON_GF)
		virtio_pci_write_features(vp, v);
	else if (len == 2 && off == VIRTIO_PCI_COMMON_MSIX)
		virtio_pci_write_vector(vp, &vp->config_vector, (uint16_t)v);
	else if (len == 1 && off == VIRTIO_PCI_COMMON_STATUS)
		virtio_pci_set_status(vp, (uint8_t)v);
	else if (len == 2 && off == VIRTIO_PCI_COMMON_Q_SELECT)
		vp->queue_sel = (uint16_t)v;
	else if (len == 2 && off == VIRTIO_PCI_COMMON_Q_SIZE && (q = virtio_pci_config_queue(vp)))
		q->size = (uint16_t)v;
	else if (len == 2 && off == VIRTIO_PCI_COMMON_Q_MSIX && vp->queue_sel < vp->nq)
		virtio_pci_write_vector(vp, &vp->q[vp->queue_sel].vector, (uint16_t)v);
	else if (len == 2 && off == VIRTIO_PCI_COMMON_Q_ENABLE && v == 1 && vp->queue_sel < vp->nq)
		virtio_pci_enable_queue(vp, vp->queue_sel);
	else if (len == 4 && off >= VIRTIO_PCI_COMMON_Q_DESCLO &&
		 off <= VIRTIO_PCI_COMMON_Q_USEDHI && (off & 3) == 0)
		virtio_pci_write_queue_addr(vp, off, v);
}

/* ---- BAR 0 ---- */

static void virtio_pci_isr_read(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len)
{
	memset(data, 0, len);
	/* Reading the ISR clears it (4.1.4.5). */
	if (off == 0) {
		data[0] = vp->isr;
		vp->isr = 0;
	}
}

/* Clips an access to the device-specific configuration; false when nothing is left. */
static bool virtio_pci_clip_config(const struct virtio_pci *vp, uint64_t off, uint32_t *len)
{
	if (off >= vp->ops->config_size)
		return false;
	if (*len > vp->ops->config_size - off)
		*len = (uint32_t)(vp->ops->config_size - off);
	return true;
}

static void virtio_pci_device_read(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len)
{
	memset(data, 0, len);
	if (virtio_pci_clip_config(vp, off, &len) && vp->ops->config_read != NULL)
		vp->ops->config_read(vp->dev, (uint32_t)off, data, len);
}

static void virtio_pci_device_write(struct virtio_pci *vp, uint64_t off, const uint8_t *data,
				    uint32_t len)
{
	if (virtio_pci_clip_config(vp, off, &len) && vp->ops->config_write != NULL)
		vp->ops->config_write(vp->dev, (uint32_t)off, data, len);
}

static bool virtio_pci_in(uint64_t off, uint32_t len, uint64_t start, uint64_t size)
{
	return off >= start && off - start < size && len <= size - (off - start);
}

/* Whatever was written, the address names the queue: kick it. */
static void virtio_pci_mmio_notify(struct virtio_pci *vp, unsigned q, uint32_t len)
{
	/* The slow path: say so once, it is where a missing ioeventfd shows. */
	if (vp->slow_notifies++ == 0)
		log_debug("%s: queue %u notified through an MMIO exit (%u bytes, ioeventfd %s)",
			  vp->ops->name, q, len, vp->q[q].ioeventfd ? "set" : "unset");
	virtio_pci_kick_fd(vp->q[q].kick_fd);
}

/* Accesses that straddle two structures read as zero and write nowhere. */
static void virtio_pci_bar_read_locked(struct virtio_pci *vp, uint64_t off, uint8_t *data,
				       uint32_t len)
{
	if (virtio_pci_in(off, len, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN))
		virtio_pci_common_read(vp, off - VIRTIO_PCI_COMMON_OFF, data, len);
	else if (virtio_pci_in(off, len, VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_ISR_LEN))
		virtio_pci_isr_read(vp, off - VIRTIO_PCI_ISR_OFF, data, len);
	else if (virtio_pci_in(off, len, VIRTIO_PCI_DEVICE_OFF, VIRTIO_PCI_DEVICE_MAX))
		virtio_pci_device_read(vp, off - VIRTIO_PCI_DEVICE_OFF, data, len);
	else
		memset(data, 0, len);
}

static void virtio_pci_bar_write_locked(struct virtio_pci *vp, uint64_t off, const uint8_t *data,
					uint32_t len)
{
	uint64_t v = virtio_pci_le(data, len);

	if (virtio_pci_in(off, len, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN)) {
		if (len == 8) { /* a 64-bit register in one go: as its two halves */
			virtio_pci_common_write(vp, off - VIRTIO_PCI_COMMON_OFF, (uint32_t)v, 4);
			virtio_pci_common_write(vp, off - VIRTIO_PCI_COMMON_OFF + 4,
						(uint32_t)(v >> 32), 4);
		} else {
			virtio_pci_common_write(vp, off - VIRTIO_PCI_COMMON_OFF, (uint32_t)v, len);
		}
	} else if (virtio_pci_in(off, len, VIRTIO_PCI_DEVICE_OFF, VIRTIO_PCI_DEVICE_MAX)) {
		virtio_pci_device_write(vp, off - VIRTIO_PCI_DEVICE_OFF, data, len);
	} else if (virtio_pci_in(off, len, VIRTIO_PCI_NOTIFY_OFF,
				 (uint64_t)vp->nq * VIRTIO_PCI_NOTIFY_MULT)) {
		virtio_pci_mmio_notify(
		    vp, (unsigned)((off - VIRTIO_PCI_NOTIFY_OFF) / VIRTIO_PCI_NOTIFY_MULT), len);
	}
}

static enum vm_action virtio_pci_bar_read(void *opaque, unsigned bar, uint64_t off, uint8_t *data,
					  uint32_t len)
{
	struct virtio_pci *vp = opaque;

	if (bar != VIRTIO_PCI_BAR)
		return VM_CONTINUE;
	pthread_mutex_lock(&vp->lock);
	virtio_pci_bar_read_locked(vp, off, data, len);
	pthread_mutex_unlock(&vp->lock);
	return VM_CONTINUE;
}

static enum vm_action virtio_pci_bar_write(void *opaque, unsigned bar, uint64_t off,
					   const uint8_t *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;

	if (bar != VIRTIO_PCI_BAR)
		return VM_CONTINUE;
	pthread_mutex_lock(&vp->lock);
	virtio_pci_bar_write_locked(vp, off, data, len);
	pthread_mutex_unlock(&vp->lock);
	return VM_CONTINUE;
}

/* ---- notifications: KVM ioeventfds on the notify addresses ---- */

static void virtio_pci_ioeventfd(struct virtio_pci *vp, unsigned i, uint64_t addr, bool assign)
{
	struct virtio_pci_queue *q = &vp->q[i];
	/* 16 bits: what a driver writes without VIRTIO_F_NOTIFICATION_DATA (4.1.5.2). */
	struct kvm_ioeventfd io = {.addr = assign ? addr : q->notify_addr,
				   .len = 2,
				   .fd = q->kick_fd,
				   .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN};

	if (vp->vm_fd < 0 || q->ioeventfd == assign)
		return;
	if (ioctl(vp->vm_fd, KVM_IOEVENTFD, &io) < 0) {
		/* Not fatal: the notification then takes the MMIO exit path. */
		log_debug("%s: queue %u: KVM_IOEVENTFD failed: %s", vp->ops->name, i,
			  strerror(errno));
		return;
	}
	q->ioeventfd = assign;
	q->notify_addr = addr;
}

static void virtio_pci_bar_map(void *opaque, unsigned bar, uint64_t addr, bool mapped)
{
	struct virtio_pci *vp = opaque;

	if (bar != VIRTIO_PCI_BAR)
		return;
	pthread_mutex_lock(&vp->lock);
	for (unsigned i = 0; i < vp->nq; i++)
		virtio_pci_ioeventfd(
		    vp, i, addr + VIRTIO_PCI_NOTIFY_OFF + (uint64_t)i * VIRTIO_PCI_NOTIFY_MULT,
		    mapped);
	pthread_mutex_unlock(&vp->lock);
}

/* ---- the PCI configuration access capability (4.1.4.9) ---- */

/* The window cap.bar/cap.offset/cap.length describe, or false when the driver set it up wrong. */
static bool virtio_pci_cfg_window(const struct virtio_pci *vp, uint32_t *off, uint32_t *len)
{
	uint8_t bar = vp->pci.cfg[vp->cfg_cap + 4];

	*off = pci_cfg_get(&vp->pci, vp->cfg_cap + 8, 4);
	*len = pci_cfg_get(&vp->pci, vp->cfg_cap + 12, 4);
	return bar == VIRTIO_PCI_BAR && (*len == 1 || *len == 2 || *len == 4) && *off % *len == 0 &&
	       *off < VIRTIO_PCI_BAR_SIZE;
}

static void virtio_pci_cfg_read(void *opaque, uint32_t offset, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	uint8_t data[4] = {0};
	uint32_t off, n;

	(void)offset;
	(void)len;
	if (!virtio_pci_cfg_window(vp, &off, &n))
		return;
	pthread_mutex_lock(&vp->lock);
	virtio_pci_bar_read_locked(vp, off, data, n);
	pthread_mutex_unlock(&vp->lock);
	memcpy(&vp->pci.cfg[vp->cfg_cap + 16], data, n);
}

static void virtio_pci_cfg_write(void *opaque, uint32_t offset, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	uint32_t off, n;

	(void)offset;
	(void)len;
	if (!virtio_pci_cfg_window(vp, &off, &n))
		return;
	pthread_mutex_lock(&vp->lock);
	virtio_pci_bar_write_locked(vp, off, &vp->pci.cfg[vp->cfg_cap + 16], n);
	pthread_mutex_unlock(&vp->lock);
}

static const struct pci_device_ops virtio_pci_ops = {
    .bar_read = virtio_pci_bar_read,
    .bar_write = virtio_pci_bar_write,
    .bar_map = virtio_pci_bar_map,
    .cfg_read = virtio_pci_cfg_read,
    .cfg_write = virtio_pci_cfg_write,
};

/* ---- the PCI function ---- */

/* The class a driver-less guest shows: network, storage, or "other". */
static uint32_t virtio_pci_class(uint16_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET:
		return 0x020000; /* Ethernet controller */
	case VIRTIO_ID_BLOCK:
	case VIRTIO_ID_FS:
		return 0x018000; /* other mass storage */
	case VIRTIO_ID_CONSOLE:
		return 0x078000; /* other communication */
	default:
		return PCI_CLASS_OTHERS;
	}
}

static int virtio_pci_add_cap(struct virtio_pci *vp, uint8_t type, uint8_t len, uint32_t off,
			      uint32_t size)
{
	int cap = pci_device_add_cap(&vp->pci, PCI_CAP_ID_VNDR, len);

	if (cap < 0)
		return cap;
	pci_cfg_set(&vp->pci, (uint32_t)cap + 2, len, 1);
	pci_cfg_set(&vp->pci, (uint32_t)cap + 3, type, 1);
	pci_cfg_set(&vp->pci, (uint32_t)cap + 4, VIRTIO_PCI_BAR, 1);
	pci_cfg_set(&vp->pci, (uint32_t)cap + 8, off, 4);
	pci_cfg_set(&vp->pci, (uint32_t)cap + 12, size, 4);
	return cap;
}

static int virtio_pci_setup_caps(struct virtio_pci *vp)
{
	int notify, cfg;

	if (virtio_pci_add_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_LEN,
			       VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN) < 0 ||
	    (notify = virtio_pci_add_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_CAP_LEN,
					 VIRTIO_PCI_NOTIFY_OFF, vp->nq * VIRTIO_PCI_NOTIFY_MULT)) <
		0 ||
	    virtio_pci_add_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_LEN, VIRTIO_PCI_ISR_OFF,
			       VIRTIO_PCI_ISR_LEN) < 0)
		return -ENOSPC;
	pci_cfg_set(&vp->pci, (uint32_t)notify + 16, VIRTIO_PCI_NOTIFY_MULT, 4);
	if (vp->ops->config_size != 0 &&
	    virtio_pci_add_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_LEN,
			       VIRTIO_PCI_DEVICE_OFF, vp->ops->config_size) < 0)
		return -ENOSPC;
	/* The access capability: bar, offset, length and data are the driver's to write. */
	cfg = virtio_pci_add_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, VIRTIO_PCI_CFG_CAP_LEN, 0, 0);
	if (cfg < 0)
		return -ENOSPC;
	vp->cfg_cap = (uint8_t)cfg;
	pci_cfg_set_writable(&vp->pci, (uint32_t)cfg + 4, 1);
	pci_cfg_set_writable(&vp->pci, (uint32_t)cfg + 8, 12);
	vp->pci.hook_off = (uint32_t)cfg + 16;
	vp->pci.hook_len = 4;
	return 0;
}

static int virtio_pci_setup_function(struct virtio_pci *vp)
{
	const struct virtio_device_ops *ops = vp->ops;
	struct pci_device_id id = {
	    .vendor = VIRTIO_PCI_VENDOR,
	    .device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + ops->device_id),
	    .subsystem_vendor = VIRTIO_PCI_VENDOR,
	    .subsystem = VIRTIO_PCI_SUBSYSTEM,
	    .revision = 1, /* non-transitional (4.1.2.1) */
	    .class_code = virtio_pci_class(ops->device_id),
	};
	int ret;

	pci_device_init(&vp->pci, ops->name, &id, &virtio_pci_ops, vp);
	if ((ret = pci_device_set_bar(&vp->pci, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE, PCI_BAR_64)) !=
		0 ||
	    (ret = virtio_pci_setup_caps(vp)) != 0)
		return ret;
	return pci_device_add_msix(&vp->pci, 1 + vp->nq, VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_TABLE,
				   VIRTIO_PCI_MSIX_PBA);
}

static bool virtio_pci_ops_ok(const struct virtio_device_ops *ops)
{
	return ops->num_queues >= 1 && ops->num_queues <= VIRTIO_MAX_QUEUES &&
	       ops->queue_max_size >= 1 && ops->queue_max_size <= VQ_MAX_SIZE &&
	       (ops->queue_max_size & (ops->queue_max_size - 1)) == 0 &&
	       ops->config_size <= VIRTIO_PCI_DEVICE_MAX && ops->queue_notify != NULL &&
	       ops->name != NULL;
}

static int virtio_pci_add_event(struct virtio_pci *vp, int fd, uint32_t kind, uint32_t index)
{
	struct epoll_event ev = {.events = EPOLLIN};

	ev.data.u64 = (uint64_t)kind << 32 | index;
	return epoll_ctl(vp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int virtio_pci_setup_events(struct virtio_pci *vp)
{
	int ret;

	vp->epfd = epoll_create1(EPOLL_CLOEXEC);
	vp->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vp->epfd < 0 || vp->stop_fd < 0)
		return -errno;
	if ((ret = virtio_pci_add_event(vp, vp->stop_fd, VIRTIO_PCI_EV_STOP, 0)) != 0)
		return ret;
	for (unsigned i = 0; i < vp->nq; i++) {
		vp->q[i].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->q[i].kick_fd < 0)
			return -errno;
		if ((ret = virtio_pci_add_event(vp, vp->q[i].kick_fd, VIRTIO_PCI_EV_QUEUE, i)) != 0)
			return ret;
	}
	return 0;
}

int virtio_pci_create(struct virtio_pci **out, struct virtio_device *dev,
		      const struct guest_memory *mem, int vm_fd)
{
	struct virtio_pci *vp;
	int ret;

	*out = NULL;
	if (dev->ops == NULL || !virtio_pci_ops_ok(dev->ops))
		return -EINVAL;
	vp = calloc(1, sizeof(*vp));
	if (vp == NULL)
		return -ENOMEM;
	pthread_mutex_init(&vp->lock, NULL);
	vp->dev = dev;
	vp->ops = dev->ops;
	vp->vm_fd = vm_fd;
	vp->nq = dev->ops->num_queues;
	vp->epfd = vp->stop_fd = -1;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		vp->q[i].kick_fd = -1;
		vp->vq[i].name = dev->ops->name;
		vp->vq[i].log_limit = &vp->log_limit;
	}
	vp->offered = dev->ops->features | 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX |
		      1ULL << VIRTIO_F_INDIRECT_DESC;
	dev->mem = mem;
	dev->transport = &virtio_pci_transport;
	dev->transport_priv = vp;
	if ((ret = virtio_pci_setup_events(vp)) != 0 ||
	    (ret = virtio_pci_setup_function(vp)) != 0) {
		virtio_pci_destroy(vp);
		return ret;
	}
	virtio_pci_reset(vp);
	*out = vp;
	return 0;
}

struct pci_device *virtio_pci_device(struct virtio_pci *vp)
{
	return &vp->pci;
}

/* ---- the device thread ---- */

/* Runs queue i if the driver let the device work on it (2.1.2: not before DRIVER_OK). */
static void virtio_pci_run_queue(struct virtio_pci *vp, unsigned i)
{
	uint8_t s = vp->status;

	if (!(s & VIRTIO_STATUS_DRIVER_OK) || (s & VIRTIO_STATUS_NEEDS_RESET) || !vp->q[i].enabled)
		return;
	vp->ops->queue_notify(vp->dev, i);
	if (vp->vq[i].broken)
		virtio_pci_set_needs_reset(vp, "the driver broke a virtqueue");
}

/* Reads an eventfd: how many times it was signalled, 0 when it was not. */
static uint64_t virtio_pci_drain(int fd)
{
	uint64_t n;

	return read(fd, &n, sizeof(n)) == sizeof(n) ? n : 0;
}

static void virtio_pci_dispatch(struct virtio_pci *vp, uint64_t tag)
{
	uint32_t kind = (uint32_t)(tag >> 32), index = (uint32_t)tag;

	if (kind == VIRTIO_PCI_EV_QUEUE && index < vp->nq) {
		vp->count.kicks += virtio_pci_drain(vp->q[index].kick_fd);
		pthread_mutex_lock(&vp->lock);
		virtio_pci_run_queue(vp, index);
		pthread_mutex_unlock(&vp->lock);
	} else if (kind == VIRTIO_PCI_EV_WATCH && index < vp->nwatch) {
		pthread_mutex_lock(&vp->lock);
		vp->watch[index].handler(vp->dev, vp->watch[index].fd);
		pthread_mutex_unlock(&vp->lock);
	}
}

static void virtio_pci_log_counters(struct virtio_pci *vp)
{
	const struct virtio_pci_counters *c = &vp->count;

	if (log_debug_due(&vp->count.logged_ns, 1000))
		log_debug("%s slot %u: counters: wakeups %llu kicks %llu used %llu irqs %llu "
			  "suppressed %llu",
			  vp->ops->name, vp->pci.slot, (unsigned long long)c->wakeups,
			  (unsigned long long)c->kicks, (unsigned long long)c->used,
			  (unsigned long long)c->irqs, (unsigned long long)c->irqs_suppressed);
}

static void *virtio_pci_thread(void *arg)
{
	struct virtio_pci *vp = arg;
	struct epoll_event ev[16];

	for (;;) {
		int n = epoll_wait(vp->epfd, ev, 16, -1);

		if (n < 0 && errno != EINTR) {
			log_error("%s: the device thread cannot wait for events: %s", vp->ops->name,
				  strerror(errno));
			return NULL;
		}
		vp->count.wakeups++;
		virtio_pci_log_counters(vp);
		for (int i = 0; i < n; i++) {
			if ((uint32_t)(ev[i].data.u64 >> 32) == VIRTIO_PCI_EV_STOP)
				return NULL;
			virtio_pci_dispatch(vp, ev[i].data.u64);
		}
	}
}

int virtio_pci_start(struct virtio_pci *vp)
{
	char name[16];
	int ret;

	if (vp->running)
		return 0;
	ret = pthread_create(&vp->thread, NULL, virtio_pci_thread, vp);
	if (ret != 0) {
		log_error("%s: cannot start the device thread: %s", vp->ops->name, strerror(ret));
		return -ret;
	}
	snprintf(name, sizeof(name), "%s", vp->ops->name);
	pthread_setname_np(vp->thread, name);
	vp->running = true;
	return 0;
}

void virtio_pci_stop(struct virtio_pci *vp)
{
	if (!vp->running)
		return;
	virtio_pci_kick_fd(vp->stop_fd);
	pthread_join(vp->thread, NULL);
	vp->running = false;
	virtio_pci_drain(vp->stop_fd);
}

uint64_t virtio_pci_slow_notifies(struct virtio_pci *vp)
{
	uint64_t n;

	pthread_mutex_lock(&vp->lock);
	n = vp->slow_notifies;
	pthread_mutex_unlock(&vp->lock);
	return n;
}

void virtio_pci_poll(struct virtio_pci *vp)
{
	for (unsigned i = 0; i < vp->nq; i++)
		if (virtio_pci_drain(vp->q[i].kick_fd))
			virtio_pci_dispatch(vp, (uint64_t)VIRTIO_PCI_EV_QUEUE << 32 | i);
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	if (vp == NULL)
		return;
	virtio_pci_stop(vp);
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if (vp->q[i].kick_fd >= 0)
			close(vp->q[i].kick_fd);
	if (vp->epfd >= 0)
		close(vp->epfd);
	if (vp->stop_fd >= 0)
		close(vp->stop_fd);
	pthread_mutex_destroy(&vp->lock);
	free(vp);
}

/* ---- snapshots ---- */

void virtio_pci_save(struct virtio_pci *vp, struct virtio_pci_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&vp->lock);
	st->device_id = vp->ops->device_id;
	st->num_queues = vp->nq;
	st->driver_features = vp->driver_features;
	st->dev_feature_sel = vp->dev_feature_sel;
	st->drv_feature_sel = vp->drv_feature_sel;
	st->config_vector = vp->config_vector;
	st->queue_sel = vp->queue_sel;
	st->status = vp->status;
	st->config_generation = vp->config_generation;
	st->isr = vp->isr;
	for (unsigned i = 0; i < vp->nq; i++) {
		const struct virtio_pci_queue *q = &vp->q[i];
		struct virtio_pci_queue_state *s = &st->queues[i];

		s->desc = q->desc;
		s->driver = q->driver;
		s->device = q->device;
		s->size = q->size;
		s->vector = q->vector;
		s->enabled = q->enabled;
		vq_save(&vp->vq[i], &s->vq);
	}
	pthread_mutex_unlock(&vp->lock);
	pci_device_save(&vp->pci, &st->pci);
}

#define VIRTIO_STATUS_KNOWN                                                                        \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |              \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)

static bool virtio_pci_vector_valid(const struct virtio_pci *vp, uint16_t v)
{
	return v == VIRTIO_MSI_NO_VECTOR || virtio_pci_vector_ok(vp, v);
}

/* Everything but the rings themselves, which vq_restore checks. */
static bool virtio_pci_state_ok(struct virtio_pci *vp, const struct virtio_pci_state *st)
{
	if (st->device_id != vp->ops->device_id || st->num_queues != vp->nq ||
	    (st->status & ~VIRTIO_STATUS_KNOWN) || !virtio_pci_vector_valid(vp, st->config_vector))
		return false;
	if ((st->status & VIRTIO_STATUS_FEATURES_OK) &&
	    ((st->driver_features & ~vp->offered) ||
	     !(st->driver_features & (1ULL << VIRTIO_F_VERSION_1))))
		return false;
	for (unsigned i = 0; i < vp->nq; i++) {
		const struct virtio_pci_queue_state *s = &st->queues[i];

		if (s->size > vp->ops->queue_max_size || !virtio_pci_vector_valid(vp, s->vector))
			return false;
		if (s->enabled && (!(st->status & VIRTIO_STATUS_FEATURES_OK) || !s->vq.ready ||
				   s->vq.size != s->size || s->vq.desc_gpa != s->desc ||
				   s->vq.avail_gpa != s->driver || s->vq.used_gpa != s->device))
			return false;
	}
	return true;
}

static int virtio_pci_restore_queues(struct virtio_pci *vp, const struct virtio_pci_state *st)
{
	for (unsigned i = 0; i < vp->nq; i++) {
		const struct virtio_pci_queue_state *s = &st->queues[i];
		struct virtio_pci_queue *q = &vp->q[i];

		q->desc = s->desc;
		q->driver = s->driver;
		q->device = s->device;
		q->size = s->size;
		q->vector = s->vector;
		q->enabled = s->enabled;
		if (s->enabled && vq_restore(&vp->vq[i], vp->dev->mem, &s->vq) != 0)
			return -EINVAL;
		vp->counted_used[i] = vp->vq[i].used_idx;
	}
	return 0;
}

int virtio_pci_restore(struct virtio_pci *vp, const struct virtio_pci_state *st)
{
	int ret = -EINVAL;

	pthread_mutex_lock(&vp->lock);
	virtio_pci_reset(vp);
	if (virtio_pci_state_ok(vp, st)) {
		vp->driver_features = st->driver_features;
		vp->dev->features =
		    st->status & VIRTIO_STATUS_FEATURES_OK ? st->driver_features : 0;
		vp->dev_feature_sel = st->dev_feature_sel;
		vp->drv_feature_sel = st->drv_feature_sel;
		vp->config_vector = st->config_vector;
		vp->queue_sel = st->queue_sel;
		vp->status = st->status;
		vp->config_generation = st->config_generation;
		vp->isr = st->isr & (VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG);
		ret = virtio_pci_restore_queues(vp, st);
		if (ret != 0)
			virtio_pci_reset(vp);
	}
	pthread_mutex_unlock(&vp->lock);
	/* Outside our lock: the BAR moves call back into bar_map, which takes it. */
	if (ret == 0)
		pci_device_restore(&vp->pci, &st->pci);
	return ret;
}
