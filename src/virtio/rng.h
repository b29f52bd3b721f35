/*
 * virtio-rng, the entropy device (VIRTIO 1.2, 5.4): one request queue; the
 * device fills the writable buffers of each chain from getrandom(). Every VM
 * gets one.
 */
#ifndef TABIQUE_VIRTIO_RNG_H
#define TABIQUE_VIRTIO_RNG_H

#include <stdint.h>

#include "virtio/device.h"

#define RNG_QUEUE_SIZE 256
/* Bytes given per chain at most: the spec lets the device use less than the buffer. */
#define RNG_MAX_CHAIN_BYTES (64u << 10)

struct rng;

/* A new entropy device, not yet on a transport; NULL when out of memory. */
struct rng *rng_create(void);
void rng_destroy(struct rng *rng);

/* What the transport drives (virtio_pci_create). */
struct virtio_device *rng_virtio(struct rng *rng);

/* Bytes handed to the guest so far (device thread; read it once the device is quiet). */
uint64_t rng_bytes_served(const struct rng *rng);

#endif
