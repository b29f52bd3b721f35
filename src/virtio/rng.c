#include "virtio/rng.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/random.h>

#include "virtio/queue.h"

/* Chains longer than this get nothing: the guest's own rng driver uses one buffer. */
#define RNG_MAX_IOV 64

struct rng {
	struct virtio_device vdev; /* first: rng_of() */
	uint64_t served;
	struct iovec iov[RNG_MAX_IOV];
};

static struct rng *rng_of(struct virtio_device *dev)
{
	return (struct rng *)((char *)dev - offsetof(struct rng, vdev));
}

/* Fills one buffer; getrandom() may return short (signals, requests over 32 MiB). */
static size_t rng_fill(uint8_t *p, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = getrandom(p + done, len - done, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return done;
}

/* Up to RNG_MAX_CHAIN_BYTES into the writable buffers; returns the bytes written. */
static uint32_t rng_fill_chain(const struct vq_chain *c)
{
	size_t budget = RNG_MAX_CHAIN_BYTES, total = 0;

	for (unsigned i = c->nread; i < c->nread + c->nwrite && budget > 0; i++) {
		size_t want = c->iov[i].iov_len < budget ? c->iov[i].iov_len : budget;
		size_t got = rng_fill(c->iov[i].iov_base, want);

		total += got;
		budget -= got;
		if (got < want)
			break;
	}
	return (uint32_t)total;
}

/*
 * 5.4.6.1: the driver MUST NOT place device-readable buffers in the queue,
 * and a chain with no room for a byte cannot get the "one or more random
 * bytes" the device must place: both are driver bugs, so NEEDS_RESET.
 */
static bool rng_chain_ok(struct virtio_device *dev, const struct vq_chain *c)
{
	if (c->nread > 0 || c->read_bytes > 0) {
		virtio_needs_reset(dev, "the driver queued a device-readable buffer");
		return false;
	}
	if (c->write_bytes == 0) {
		virtio_needs_reset(dev, "the driver queued a chain with no room for entropy");
		return false;
	}
	return true;
}

/* One round: at most a queue's worth of chains, so a busy guest cannot hold the thread. */
static void rng_queue_notify(struct virtio_device *dev, unsigned q)
{
	struct rng *rng = rng_of(dev);
	struct virtqueue *vq = virtio_queue(dev, q);
	struct vq_chain chain = {.iov = rng->iov};
	unsigned served = 0;
	int ret;

	while (served < vq->size && (ret = vq_pop(vq, &chain, RNG_MAX_IOV)) != 0) {
		uint32_t written = 0;

		if (ret == -EINVAL)
			break; /* the transport sees vq->broken and sets NEEDS_RESET */
		if (ret == 1 && !rng_chain_ok(dev, &chain))
			break;
		if (ret == 1)
			written = rng_fill_chain(&chain);
		if (vq_push(vq, chain.head, written) != 0)
			break;
		rng->served += written;
		served++;
	}
	if (served > 0)
		virtio_queue_used(dev, q);
	if (served == vq->size && vq_has_avail(vq))
		virtio_queue_kick(dev, q);
}

static const struct virtio_device_ops rng_ops = {
    .name = "virtio-rng",
    .device_id = VIRTIO_ID_ENTROPY,
    .features = 0, /* none defined (5.4.3) */
    .num_queues = 1,
    .queue_max_size = RNG_QUEUE_SIZE,
    .config_size = 0,
    .queue_notify = rng_queue_notify,
};

struct rng *rng_create(void)
{
	struct rng *rng = calloc(1, sizeof(*rng));

	if (rng != NULL)
		rng->vdev.ops = &rng_ops;
	return rng;
}

void rng_destroy(struct rng *rng)
{
	free(rng);
}

struct virtio_device *rng_virtio(struct rng *rng)
{
	return &rng->vdev;
}

uint64_t rng_bytes_served(const struct rng *rng)
{
	return rng->served;
}
