/*
 * The virtio device interface (VIRTIO 1.2): what a device model (entropy,
 * block, network, vsock ...) implements, and the few services it may ask of
 * its transport. A device never sees PCI: the transport owns feature
 * negotiation, the status machine, queue set-up, notifications and
 * interrupts, so every device plugs in the same way.
 *
 * Threading: every callback runs with the transport's lock held, either on a
 * vCPU thread (config_read, config_write, features_ok, reset) or on the
 * device's own thread (queue_notify, fd handlers): device work never runs on
 * a vCPU thread. The services below may only be called from inside a
 * callback.
 */
#ifndef TABIQUE_VIRTIO_DEVICE_H
#define TABIQUE_VIRTIO_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/queue.h"
#include "vmm/memory.h"

#define VIRTIO_MAX_QUEUES 64

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER	  0x02
#define VIRTIO_STATUS_DRIVER_OK	  0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED	  0x80

/* Reserved feature bits (6). The transport adds these; devices list their own. */
#define VIRTIO_F_INDIRECT_DESC VQ_F_INDIRECT_DESC
#define VIRTIO_F_EVENT_IDX     VQ_F_EVENT_IDX
#define VIRTIO_F_VERSION_1     32

/* Device types (5). */
#define VIRTIO_ID_NET	  1
#define VIRTIO_ID_BLOCK	  2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_ENTROPY 4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_9P	  9
#define VIRTIO_ID_VSOCK	  19
#define VIRTIO_ID_FS	  26

struct virtio_device;

struct virtio_device_ops {
	const char *name;	 /* "virtio-rng": logs and the device thread's name */
	uint16_t device_id;	 /* VIRTIO_ID_* */
	uint64_t features;	 /* device-specific feature bits offered */
	unsigned num_queues;	 /* 1..VIRTIO_MAX_QUEUES */
	uint16_t queue_max_size; /* power of two, at most VQ_MAX_SIZE */
	uint32_t config_size;	 /* bytes of device-specific configuration, at most 4096 */

	/* Device configuration; the transport keeps offset + len within config_size. Optional. */
	void (*config_read)(struct virtio_device *dev, uint32_t offset, uint8_t *data,
			    uint32_t len);
	void (*config_write)(struct virtio_device *dev, uint32_t offset, const uint8_t *data,
			     uint32_t len);
	/*
	 * The driver set FEATURES_OK with these features, already checked to be
	 * a subset of the offer with VIRTIO_F_VERSION_1. Return false to refuse
	 * a combination (a feature without one it depends on). Optional.
	 */
	bool (*features_ok)(struct virtio_device *dev, uint64_t features);
	/*
	 * The driver made buffers available on queue q, which is set up and
	 * DRIVER_OK is set. Pop, work, push, then virtio_queue_used(). Device
	 * thread.
	 */
	void (*queue_notify)(struct virtio_device *dev, unsigned q);
	/* The driver reset the device: forget in-flight work. The queues are already reset.
	 * Optional. */
	void (*reset)(struct virtio_device *dev);
};

/* What a transport offers its device; reached through the wrappers below. */
struct virtio_transport_ops {
	struct virtqueue *(*queue)(struct virtio_device *dev, unsigned q);
	void (*queue_used)(struct virtio_device *dev, unsigned q);
	void (*queue_kick)(struct virtio_device *dev, unsigned q);
	void (*needs_reset)(struct virtio_device *dev, const char *why);
	void (*config_changed)(struct virtio_device *dev);
	int (*watch_fd)(struct virtio_device *dev, int fd,
			void (*handler)(struct virtio_device *dev, int fd));
};

/* Embed in the device's state; the transport fills everything but ops. */
struct virtio_device {
	const struct virtio_device_ops *ops;
	const struct guest_memory *mem;
	uint64_t features; /* negotiated: valid once FEATURES_OK is set, 0 after a reset */
	const struct virtio_transport_ops *transport;
	void *transport_priv;
};

/* Queue q (< num_queues): ready only while the driver has it enabled. */
static inline struct virtqueue *virtio_queue(struct virtio_device *dev, unsigned q)
{
	return dev->transport->queue(dev, q);
}

/* After vq_push()es on q: interrupts the driver if it asked for it (vq_should_notify). */
static inline void virtio_queue_used(struct virtio_device *dev, unsigned q)
{
	dev->transport->queue_used(dev, q);
}

/* Calls queue_notify(q) again later: a device that stops after a batch to stay fair. */
static inline void virtio_queue_kick(struct virtio_device *dev, unsigned q)
{
	dev->transport->queue_kick(dev, q);
}

/*
 * The driver broke the protocol (or a queue went broken): sets
 * DEVICE_NEEDS_RESET, stops the queues, tells the driver. why is logged once.
 */
static inline void virtio_needs_reset(struct virtio_device *dev, const char *why)
{
	dev->transport->needs_reset(dev, why);
}

/* The device-specific configuration changed: new generation, config interrupt. */
static inline void virtio_config_changed(struct virtio_device *dev)
{
	dev->transport->config_changed(dev);
}

/*
 * Adds fd (a backend's completion eventfd, a tap device) to the device
 * thread: handler runs there, under the transport lock, when fd is readable.
 * The exception to the rule above: call it while setting the device up,
 * before the transport starts its thread, not from a callback. The handler
 * must drain fd (epoll is level-triggered). Returns 0, -EBUSY (the thread
 * runs already), -ENOSPC or -errno.
 */
static inline int virtio_watch_fd(struct virtio_device *dev, int fd,
				  void (*handler)(struct virtio_device *dev, int fd))
{
	return dev->transport->watch_fd(dev, fd, handler);
}

#endif
