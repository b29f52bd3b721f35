/*
 * The modern virtio-pci transport (VIRTIO 1.2, 4.1), virtio 1.x only: a PCI
 * function with vendor 0x1AF4, device 0x1040 + the device type, and one
 * 64-bit memory BAR holding every structure:
 *
 *   0x0000  common configuration      0x3000  notifications, 4 bytes per queue
 *   0x1000  ISR status                0x4000  MSI-X table (1 + queues vectors)
 *   0x2000  device configuration      0x5000  MSI-X PBA
 *
 * plus the PCI configuration access capability. Queue notifications are
 * KVM ioeventfds on the notify addresses (they never exit to userspace when
 * the guest writes 16 bits, as drivers do) feeding one device thread per
 * device, which runs the device's queue_notify. Interrupts are MSI-X only:
 * the function has no INTx pin, so without MSI-X the driver can only poll
 * the ISR.
 *
 * Guest misbehaviour (a status bit cleared, DRIVER_OK without FEATURES_OK,
 * a queue enabled on rings outside RAM, a broken ring) sets
 * DEVICE_NEEDS_RESET and sends a configuration interrupt; the device then
 * does nothing until the driver resets it.
 */
#ifndef TABIQUE_VIRTIO_PCI_H
#define TABIQUE_VIRTIO_PCI_H

#include <stdint.h>

#include "bus/pci.h"
#include "virtio/device.h"
#include "virtio/queue.h"

#define VIRTIO_PCI_VENDOR      0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040

/* BAR 0 layout. */
#define VIRTIO_PCI_BAR	       0
#define VIRTIO_PCI_BAR_SIZE    0x8000
#define VIRTIO_PCI_COMMON_OFF  0x0000
#define VIRTIO_PCI_COMMON_LEN  0x40
#define VIRTIO_PCI_ISR_OFF     0x1000
#define VIRTIO_PCI_ISR_LEN     4
#define VIRTIO_PCI_DEVICE_OFF  0x2000
#define VIRTIO_PCI_DEVICE_MAX  0x1000
#define VIRTIO_PCI_NOTIFY_OFF  0x3000
#define VIRTIO_PCI_NOTIFY_MULT 4
#define VIRTIO_PCI_MSIX_TABLE  0x4000
#define VIRTIO_PCI_MSIX_PBA    0x5000

/* Vendor capability types (4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG	  3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG	  5

/* struct virtio_pci_common_cfg (4.1.4.3). */
#define VIRTIO_PCI_COMMON_DFSELECT	0x00
#define VIRTIO_PCI_COMMON_DF		0x04
#define VIRTIO_PCI_COMMON_GFSELECT	0x08
#define VIRTIO_PCI_COMMON_GF		0x0c
#define VIRTIO_PCI_COMMON_MSIX		0x10
#define VIRTIO_PCI_COMMON_NUMQ		0x12
#define VIRTIO_PCI_COMMON_STATUS	0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT	0x16
#define VIRTIO_PCI_COMMON_Q_SIZE	0x18
#define VIRTIO_PCI_COMMON_Q_MSIX	0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE	0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF	0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO	0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI	0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO	0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI	0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO	0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI	0x34
#define VIRTIO_PCI_COMMON_Q_NDATA	0x38
#define VIRTIO_PCI_COMMON_Q_RESET	0x3a

#define VIRTIO_MSI_NO_VECTOR 0xffff
#define VIRTIO_ISR_QUEUE     0x1
#define VIRTIO_ISR_CONFIG    0x2

struct virtio_pci;

/*
 * Wraps dev (its ops set, the rest filled here) in a virtio-pci function.
 * vm_fd >= 0 registers ioeventfds with KVM; -1 (unit tests) leaves every
 * notification to MMIO exits. Plug virtio_pci_device() into the bus with
 * pci_add_device(), then virtio_pci_start(). Returns 0 or -errno.
 */
int virtio_pci_create(struct virtio_pci **out, struct virtio_device *dev,
		      const struct guest_memory *mem, int vm_fd);
/* Stops the thread, closes the eventfds and frees; after pci_bus_destroy(). */
void virtio_pci_destroy(struct virtio_pci *vp);

struct pci_device *virtio_pci_device(struct virtio_pci *vp);

/* Starts and stops the device thread. Return 0 or -errno; stop is idempotent. */
int virtio_pci_start(struct virtio_pci *vp);
void virtio_pci_stop(struct virtio_pci *vp);

/* Serves pending notifications on the calling thread: for tests without a device thread. */
void virtio_pci_poll(struct virtio_pci *vp);

/* Queue notifications that came through MMIO exits instead of ioeventfds (diagnostics). */
uint64_t virtio_pci_slow_notifies(struct virtio_pci *vp);

/* The transport's state, for snapshots and migration: fixed layout, little-endian host. */
struct virtio_pci_queue_state {
	uint64_t desc, driver, device;
	uint16_t size, vector;
	uint8_t enabled;
	uint8_t pad[3];
	struct vq_state vq;
};

struct virtio_pci_state {
	uint32_t device_id;
	uint32_t num_queues;
	uint64_t driver_features;
	uint32_t dev_feature_sel, drv_feature_sel;
	uint16_t config_vector, queue_sel;
	uint8_t status, config_generation, isr;
	uint8_t pad[5];
	struct virtio_pci_queue_state queues[VIRTIO_MAX_QUEUES];
	struct pci_device_state pci;
};

/* Call with the VM paused. */
void virtio_pci_save(struct virtio_pci *vp, struct virtio_pci_state *st);
/*
 * Loads saved state as untrusted input (ids, status bits, features, vectors,
 * queue sizes and rings are all checked). Returns 0, or -EINVAL and leaves
 * the device reset. Call with the VM paused.
 */
int virtio_pci_restore(struct virtio_pci *vp, const struct virtio_pci_state *st);

#endif
