/*
 * The virtio-pci transport driven as Linux's virtio_pci_modern drives it
 * (tests/unit/vdriver.h), with a fake device behind it and a fake MSI sink:
 * discovery, the status machine, feature negotiation, queues,
 * notifications, interrupts, snapshots, and a hostile driver.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/pci.h"
#include "log_capture.h"
#include "util/log.h"
#include "vdriver.h"
#include "virtio/pci.h"

#define FDEV_ID	    42
#define FDEV_QUEUES 2
#define FDEV_QMAX   64
#define F_A	    (1ULL << 0)
#define F_B	    (1ULL << 5) /* needs F_A */
#define F_EVENT_IDX (1ULL << 29)
#define NVEC	    (1 + FDEV_QUEUES)

/* ---- a fake device ---- */

struct fdev {
	struct virtio_device vdev;
	uint8_t config[8];
	int notifies[FDEV_QUEUES];
	int popped;
	int resets;
	uint64_t features_seen;
};

static struct fdev *fdev_of(struct virtio_device *dev)
{
	return (struct fdev *)dev;
}

static void fdev_config_read(struct virtio_device *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	cr_assert_leq(off + len, sizeof(fdev_of(dev)->config), "transport did not clip");
	memcpy(data, fdev_of(dev)->config + off, len);
}

static void fdev_config_write(struct virtio_device *dev, uint32_t off, const uint8_t *data,
			      uint32_t len)
{
	cr_assert_leq(off + len, sizeof(fdev_of(dev)->config), "transport did not clip");
	memcpy(fdev_of(dev)->config + off, data, len);
}

static bool fdev_features_ok(struct virtio_device *dev, uint64_t f)
{
	fdev_of(dev)->features_seen = f;
	return !(f & F_B) || (f & F_A);
}

/* Consumes every chain, writes nothing, interrupts. */
static void fdev_queue_notify(struct virtio_device *dev, unsigned q)
{
	struct virtqueue *vq = virtio_queue(dev, q);
	struct iovec iov[8];
	struct vq_chain c = {.iov = iov};

	int n = 0;

	fdev_of(dev)->notifies[q]++;
	while (vq_pop(vq, &c, 8) == 1) {
		vq_push(vq, c.head, 0);
		n++;
	}
	fdev_of(dev)->popped += n;
	if (n > 0)
		virtio_queue_used(dev, q);
}

static void fdev_reset(struct virtio_device *dev)
{
	fdev_of(dev)->resets++;
}

static const struct virtio_device_ops fdev_ops = {
    .name = "virtio-test",
    .device_id = FDEV_ID,
    .features = F_A | F_B,
    .num_queues = FDEV_QUEUES,
    .queue_max_size = FDEV_QMAX,
    .config_size = sizeof(((struct fdev *)0)->config),
    .config_read = fdev_config_read,
    .config_write = fdev_config_write,
    .features_ok = fdev_features_ok,
    .queue_notify = fdev_queue_notify,
    .reset = fdev_reset,
};

/* ---- a fake MSI sink ---- */

struct sink {
	int next;
	int count[8];
	uint32_t data[8];
};

static int sink_alloc(void *o)
{
	struct sink *s = o;

	return s->next < 8 ? s->next++ : -1;
}

static int sink_route(void *o, int h, uint64_t addr, uint32_t data)
{
	struct sink *s = o;

	(void)addr;
	s->data[h] = data;
	return 0;
}

static void sink_raise(void *o, int h)
{
	struct sink *s = o;

	s->count[h]++;
}

static void sink_release(void *o, int h)
{
	(void)o;
	(void)h;
}

static const struct pci_msi_ops sink_ops = {sink_alloc, sink_route, sink_raise, sink_release};

/* ---- fixture ---- */

static struct guest_memory mem;
static struct bus pio, mmio;
static struct pci_bus pb;
static struct sink sink;
static struct fdev *fd;
static struct virtio_pci *vp;
static struct vdrv d;

static void setup(void)
{
	struct pci_bus_config cfg = {
	    .pio = &pio,
	    .mmio = &mmio,
	    .ecam_base = VD_ECAM,
	    .mmio32_base = LAYOUT_PCI_MMIO,
	    .mmio32_end = LAYOUT_PCI_MMIO_END,
	    .mmio64_base = 0x100000000ULL,
	    .mmio64_end = 0x200000000ULL,
	    .msi = {&sink_ops, &sink},
	};

	memset(&sink, 0, sizeof(sink));
	cr_assert_eq(memory_init(&mem, VD_MEM_SIZE), 0);
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	cr_assert_eq(pci_bus_init(&pb, &cfg), 0);
	fd = calloc(1, sizeof(*fd));
	fd->vdev.ops = &fdev_ops;
	cr_assert_eq(virtio_pci_create(&vp, &fd->vdev, &mem, -1), 0);
	cr_assert_eq(pci_add_device(&pb, virtio_pci_device(vp)), 0);
	vd_probe(&d, &mmio, &mem, 1 << 3);
}

static void teardown(void)
{
	pci_bus_destroy(&pb);
	virtio_pci_destroy(vp);
	free(fd);
	bus_destroy(&pio);
	bus_destroy(&mmio);
	memory_destroy(&mem);
}

TestSuite(virtio_pci, .init = setup, .fini = teardown);

/* A driver that got as far as DRIVER_OK with both queues and MSI-X. */
static void bring_up(void)
{
	vd_enable_msix(&d, NVEC);
	cr_assert(vd_negotiate(&d, VD_VERSION_1 | F_A) & VD_FEATURES_OK);
	vd_common_write(&d, VD_MSIX, 0, 2);
	vd_setup_queue(&d, 0, VD_QSIZE, 1);
	vd_setup_queue(&d, 1, VD_QSIZE, 2);
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	cr_assert_eq(vd_status(&d), VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	/* DRIVER_OK kicks every enabled queue once, for buffers posted before it. */
	virtio_pci_poll(vp);
	memset(fd->notifies, 0, sizeof(fd->notifies));
}

static void post(unsigned q)
{
	uint64_t gpa = VD_BUF;
	uint32_t len = 64;
	bool w = true;

	vd_add_chain(&d, q, &gpa, &len, &w, 1);
}

/* ---- discovery ---- */

Test(virtio_pci, pci_identity)
{
	cr_assert_eq(vd_cfg_read(&d, 0x02, 2), 0x1040 + FDEV_ID, "0x1040 + device type");
	cr_assert_geq(vd_cfg_read(&d, 0x08, 1), 1, "revision 1: non-transitional");
	cr_assert_geq(vd_cfg_read(&d, 0x2e, 2), 0x40, "subsystem id 0x40 or higher");
	cr_assert_eq(vd_cfg_read(&d, 0x3d, 1), 0, "no INTx pin");
	cr_assert_eq(vd_cfg_read(&d, 0x10, 4) & 0x7, 0x4, "BAR 0: 64-bit memory");
	vd_cfg_write(&d, 0x10, 0xffffffff, 4);
	cr_assert_eq(vd_cfg_read(&d, 0x10, 4), (uint32_t) ~(VIRTIO_PCI_BAR_SIZE - 1) | 4);
	vd_cfg_write(&d, 0x10, (uint32_t)d.bar, 4);
}

Test(virtio_pci, capabilities_describe_bar_0)
{
	unsigned c = vd_find_cap(&d, 1);

	cr_assert_eq(vd_cfg_read(&d, c + 2, 1), 16, "cap_len");
	cr_assert_eq(vd_cfg_read(&d, c + 4, 1), 0, "bar");
	cr_assert_geq(vd_cfg_read(&d, c + 12, 4), 0x38, "common cfg length");
	cr_assert_eq(d.common % 4, 0);
	c = vd_find_cap(&d, 2);
	cr_assert_eq(vd_cfg_read(&d, c + 2, 1), 20, "notify cap has the multiplier");
	cr_assert_eq(d.notify_mult, 4);
	cr_assert_geq(vd_cfg_read(&d, c + 12, 4), (FDEV_QUEUES - 1) * 4 + 2, "notify length");
	c = vd_find_cap(&d, 4);
	cr_assert_eq(vd_cfg_read(&d, c + 12, 4), 8, "device cfg length");
	cr_assert_eq(vd_cfg_read(&d, d.msix + 2, 2) & 0x7ff, NVEC - 1,
		     "one vector per queue + config");
	/* The capability fields are read-only, except the PCI access capability's. */
	vd_cfg_write(&d, vd_find_cap(&d, 1) + 8, 0x1234, 4);
	cr_assert_eq(vd_cfg_read(&d, vd_find_cap(&d, 1) + 8, 4), d.common);
}

/* ---- status machine and features ---- */

Test(virtio_pci, feature_negotiation_through_the_common_cfg)
{
	uint64_t f = vd_device_features(&d);

	cr_assert(f & VD_VERSION_1, "VIRTIO_F_VERSION_1 offered");
	cr_assert_eq(f & (F_A | F_B), F_A | F_B);
	cr_assert_eq(vd_common_read(&d, VD_NUMQ, 2), FDEV_QUEUES);
	vd_common_write(&d, VD_DFSELECT, 2, 4);
	cr_assert_eq(vd_common_read(&d, VD_DF, 4), 0, "no feature bits past 63");
	cr_assert(vd_negotiate(&d, VD_VERSION_1 | F_A | F_B) & VD_FEATURES_OK);
	cr_assert_eq(fd->features_seen, VD_VERSION_1 | F_A | F_B);
	cr_assert_eq(fd->vdev.features, VD_VERSION_1 | F_A | F_B);
	/* Features freeze at FEATURES_OK. */
	vd_write_features(&d, VD_VERSION_1);
	vd_common_write(&d, VD_GFSELECT, 0, 4);
	cr_assert_eq(vd_common_read(&d, VD_GF, 4), (uint32_t)(F_A | F_B));
}

Test(virtio_pci, features_ok_is_refused_for_bad_sets)
{
	cr_assert_not(vd_negotiate(&d, VD_VERSION_1 | (1ULL << 7)) & VD_FEATURES_OK,
		      "a feature that was not offered");
	cr_assert_not(vd_negotiate(&d, F_A) & VD_FEATURES_OK, "legacy: no VERSION_1");
	cr_assert_not(vd_negotiate(&d, VD_VERSION_1 | F_B) & VD_FEATURES_OK,
		      "the device's own dependency check");
	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	cr_assert_eq(vd_status(&d) & VD_NEEDS_RESET, 0, "refusing is not an error");
}

Test(virtio_pci, reset_by_writing_zero)
{
	int resets;

	bring_up();
	resets = fd->resets;

	vd_common_write(&d, VD_QSELECT, 1, 2);
	vd_set_status(&d, 0);
	cr_assert_eq(vd_status(&d), 0);
	cr_assert_eq(fd->resets, resets + 1, "the device heard of it");
	cr_assert_eq(fd->vdev.features, 0);
	vd_common_write(&d, VD_QSELECT, 1, 2);
	cr_assert_eq(vd_common_read(&d, VD_QENABLE, 2), 0, "queue_enable 0 after reset");
	cr_assert_eq(vd_common_read(&d, VD_QSIZE_R, 2), FDEV_QMAX, "maximum size again");
	cr_assert_eq(vd_common_read(&d, VD_QMSIX, 2), 0xffff, "vectors unmapped");
	cr_assert_eq(vd_common_read(&d, VD_MSIX, 2), 0xffff);
	cr_assert_eq(vd_common_read(&d, VD_QDESC, 4), 0);
	cr_assert_not(virtio_queue(&fd->vdev, 1)->ready);
	bring_up(); /* and it comes back */
}

Test(virtio_pci, driver_ok_without_features_ok_needs_reset)
{
	vd_enable_msix(&d, NVEC);
	vd_set_status(&d, VD_ACK | VD_DRIVER);
	vd_common_write(&d, VD_MSIX, 0, 2);
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_DRIVER_OK);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
	cr_assert_not(vd_status(&d) & VD_DRIVER_OK);
}

/*
 * A driver that breaks the device and resets it in a loop (two register
 * writes a round) must not fill the host's logs: the reports stop at the
 * budget. Without one, every round printed a line.
 */
Test(virtio_pci, needs_reset_reports_are_rate_limited)
{
	struct log_capture c;
	unsigned rounds = 10 * LOG_LIMIT_BURST;

	log_capture_begin(&c);
	for (unsigned i = 0; i < rounds; i++) {
		vd_set_status(&d, VD_ACK | VD_DRIVER | VD_DRIVER_OK); /* no FEATURES_OK */
		cr_assert(vd_status(&d) & VD_NEEDS_RESET);
		vd_set_status(&d, 0);
	}
	cr_assert_eq(log_capture_end(&c, "needs a reset"), LOG_LIMIT_BURST);
	bring_up(); /* the device still works */
}

Test(virtio_pci, needs_reset_sends_a_config_interrupt_after_driver_ok)
{
	bring_up();
	vd_set_status(&d, VD_ACK | VD_DRIVER); /* clears FEATURES_OK and DRIVER_OK */
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
	cr_assert_eq(sink.count[0], 1, "config vector 0");
	cr_assert_eq(sink.data[0], 0x40);
	cr_assert_eq(vd_mread(&d, d.bar + d.isr, 1), 2, "ISR: configuration change");
	cr_assert_eq(vd_mread(&d, d.bar + d.isr, 1), 0, "read clears the ISR");
	/* Nothing runs until the driver resets. */
	post(0);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert_eq(fd->notifies[0], 0);
	vd_set_status(&d, 0);
	cr_assert_eq(vd_status(&d), 0);
}

Test(virtio_pci, msix_vector_mapping_and_failures)
{
	vd_enable_msix(&d, NVEC);
	vd_common_write(&d, VD_MSIX, NVEC - 1, 2);
	cr_assert_eq(vd_common_read(&d, VD_MSIX, 2), NVEC - 1);
	vd_common_write(&d, VD_MSIX, NVEC, 2);
	cr_assert_eq(vd_common_read(&d, VD_MSIX, 2), 0xffff, "outside the table: NO_VECTOR");
	vd_common_write(&d, VD_QSELECT, 0, 2);
	vd_common_write(&d, VD_QMSIX, 0x7ff, 2);
	cr_assert_eq(vd_common_read(&d, VD_QMSIX, 2), 0xffff);
	vd_common_write(&d, VD_QMSIX, 1, 2);
	cr_assert_eq(vd_common_read(&d, VD_QMSIX, 2), 1);
}

/* ---- queues ---- */

Test(virtio_pci, queue_registers)
{
	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	vd_common_write(&d, VD_QSELECT, 0, 2);
	cr_assert_eq(vd_common_read(&d, VD_QSIZE_R, 2), FDEV_QMAX);
	cr_assert_eq(vd_common_read(&d, VD_QNOFF, 2), 0);
	vd_common_write(&d, VD_QSELECT, 1, 2);
	cr_assert_eq(vd_common_read(&d, VD_QNOFF, 2), 1);
	vd_common_write(&d, VD_QSELECT, FDEV_QUEUES, 2);
	cr_assert_eq(vd_common_read(&d, VD_QSIZE_R, 2), 0, "no such queue");
	vd_common_write(&d, VD_QENABLE, 1, 2); /* ignored */
	vd_setup_queue(&d, 0, 8, 0xffff);
	cr_assert(virtio_queue(&fd->vdev, 0)->ready);
	cr_assert_eq(virtio_queue(&fd->vdev, 0)->size, 8);
	cr_assert_eq(virtio_queue(&fd->vdev, 0)->desc_gpa, VD_DESC(0));
	cr_assert_eq(virtio_queue(&fd->vdev, 0)->used_gpa, VD_USED(0));
	/* Frozen once enabled. */
	vd_common_write(&d, VD_QSELECT, 0, 2);
	vd_common_write(&d, VD_QSIZE_R, 4, 2);
	vd_common_write(&d, VD_QDESC, 0x200000, 4);
	cr_assert_eq(vd_common_read(&d, VD_QSIZE_R, 2), 8);
	cr_assert_eq(vd_common_read(&d, VD_QDESC, 4), VD_DESC(0));
	cr_assert_eq(vd_common_read(&d, VD_QENABLE, 2), 1);
	/* A 64-bit register in one access. */
	vd_common_write(&d, VD_QSELECT, 1, 2);
	vd_common_write(&d, VD_QUSED, 0x0000000100002000ULL, 8);
	cr_assert_eq(vd_common_read(&d, VD_QUSED + 4, 4), 1);
}

Test(virtio_pci, bad_queues_need_reset)
{
	vd_common_write(&d, VD_QSELECT, 0, 2);
	vd_common_write(&d, VD_QENABLE, 1, 2);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET, "enabled before FEATURES_OK");

	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	vd_common_write(&d, VD_QSELECT, 0, 2);
	vd_common_write(&d, VD_QSIZE_R, 12, 2);
	vd_common_write(&d, VD_QENABLE, 1, 2);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET, "size not a power of two");

	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	vd_common_write(&d, VD_QSELECT, 0, 2);
	vd_common_write(&d, VD_QSIZE_R, 128, 2);
	vd_common_write(&d, VD_QDESC, VD_DESC(0), 4);
	vd_common_write(&d, VD_QENABLE, 1, 2);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET, "larger than the maximum");

	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	vd_common_write(&d, VD_QSELECT, 1, 2);
	vd_common_write(&d, VD_QDESC, 0xfffff000, 4); /* in the MMIO hole */
	vd_common_write(&d, VD_QENABLE, 1, 2);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET, "rings outside RAM");
	cr_assert_not(virtio_queue(&fd->vdev, 1)->ready);
}

Test(virtio_pci, notifications_wait_for_driver_ok)
{
	vd_enable_msix(&d, NVEC);
	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	vd_setup_queue(&d, 0, VD_QSIZE, 1);
	post(0);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert_eq(fd->notifies[0], 0, "no work before DRIVER_OK");
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	virtio_pci_poll(vp);
	cr_assert_eq(fd->notifies[0], 1, "served at DRIVER_OK");
	cr_assert_eq(fd->popped, 1);
	cr_assert_eq(vd_used_idx(&d, 0), 1);
	cr_assert_eq(sink.count[1], 1, "queue 0's vector");
}

Test(virtio_pci, notify_kicks_the_right_queue_and_interrupts)
{
	bring_up();
	post(1);
	vd_notify(&d, 1);
	virtio_pci_poll(vp);
	cr_assert_eq(fd->notifies[1], 1);
	cr_assert_eq(fd->notifies[0], 0);
	cr_assert_eq(vd_used_idx(&d, 1), 1);
	cr_assert_eq(sink.count[2], 1, "queue 1 -> vector 2");
	cr_assert_eq(sink.data[2], 0x42);
	cr_assert_eq(vd_mread(&d, d.bar + d.isr, 1), 0, "MSI-X on: the ISR stays clear");
	/* A 4-byte or byte write to the notify address works too. */
	post(0);
	vd_mwrite(&d, d.bar + d.notify, 0, 4);
	vd_mwrite(&d, d.bar + d.notify + 4, 1, 1);
	virtio_pci_poll(vp);
	cr_assert_eq(fd->notifies[0], 1);
	cr_assert_eq(fd->notifies[1], 2);
	/* Past the last queue: nothing. */
	vd_mwrite(&d, d.bar + d.notify + 4 * FDEV_QUEUES, 0, 2);
	virtio_pci_poll(vp);
	cr_assert_eq(fd->notifies[0] + fd->notifies[1], 3);
}

Test(virtio_pci, no_vector_means_no_interrupt)
{
	vd_enable_msix(&d, NVEC);
	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	vd_setup_queue(&d, 0, VD_QSIZE, 0xffff);
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	post(0);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert_eq(vd_used_idx(&d, 0), 1);
	for (int v = 0; v < NVEC; v++)
		cr_assert_eq(sink.count[v], 0);
}

Test(virtio_pci, without_msix_the_isr_tells)
{
	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	vd_setup_queue(&d, 0, VD_QSIZE, 0xffff);
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	post(0);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert_eq(vd_mread(&d, d.bar + d.isr, 1), 1, "queue interrupt bit");
	cr_assert_eq(vd_mread(&d, d.bar + d.isr, 1), 0);
}

/* ---- device configuration and the PCI access capability ---- */

Test(virtio_pci, device_config_is_clipped_to_its_size)
{
	vd_mwrite(&d, d.bar + d.device, 0x0807060504030201ULL, 8);
	cr_assert_eq(vd_mread(&d, d.bar + d.device + 4, 4), 0x08070605);
	cr_assert_eq(vd_mread(&d, d.bar + d.device + 6, 4), 0x0807, "past the end reads 0");
	vd_mwrite(&d, d.bar + d.device + 7, 0xffffffff, 4); /* clipped to one byte */
	cr_assert_eq(fd->config[7], 0xff);
	cr_assert_eq(vd_mread(&d, d.bar + d.device + 0x100, 4), 0);
}

Test(virtio_pci, pci_cfg_access_capability_reaches_the_bar)
{
	unsigned c = d.pcicfg;

	vd_cfg_write(&d, c + 4, 0, 1);			/* bar */
	vd_cfg_write(&d, c + 12, 2, 4);			/* length */
	vd_cfg_write(&d, c + 8, d.common + VD_NUMQ, 4); /* offset */
	cr_assert_eq(vd_cfg_read(&d, c + 16, 2), FDEV_QUEUES, "num_queues through config space");
	vd_cfg_write(&d, c + 12, 1, 4);
	vd_cfg_write(&d, c + 8, d.common + VD_STATUS, 4);
	vd_cfg_write(&d, c + 16, VD_ACK, 1);
	cr_assert_eq(vd_status(&d), VD_ACK, "a status write through config space");
	/* Bad windows do nothing. */
	vd_cfg_write(&d, c + 4, 3, 1);
	cr_assert_eq(vd_cfg_read(&d, c + 16, 4), VD_ACK, "other BAR: the data stays");
	vd_cfg_write(&d, c + 4, 0, 1);
	vd_cfg_write(&d, c + 12, 4, 4);
	vd_cfg_write(&d, c + 8, 2, 4);
	vd_cfg_read(&d, c + 16, 4);
	vd_cfg_write(&d, c + 8, 0xfffffff0, 4);
	vd_cfg_write(&d, c + 16, 0, 4);
	cr_assert_eq(vd_status(&d), VD_ACK);
}

/* ---- snapshots ---- */

Test(virtio_pci, save_restore_round_trip)
{
	struct virtio_pci_state *st = calloc(1, sizeof(*st));

	bring_up();
	post(0);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	virtio_pci_save(vp, st);
	vd_set_status(&d, 0);
	cr_assert_eq(virtio_pci_restore(vp, st), 0);
	cr_assert_eq(vd_status(&d), VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	cr_assert(virtio_queue(&fd->vdev, 0)->ready);
	cr_assert_eq(virtio_queue(&fd->vdev, 0)->last_avail, 1);
	post(0);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert_eq(vd_used_idx(&d, 0), 2, "carries on where it stopped");

	st->queues[0].vq.desc_gpa = st->queues[0].desc = 0xfffff000;
	cr_assert_eq(virtio_pci_restore(vp, st), -EINVAL, "rings outside RAM");
	cr_assert_eq(vd_status(&d), 0, "left reset");
	virtio_pci_save(vp, st);
	st->status = VD_FEATURES_OK;
	st->driver_features = 1ULL << 7;
	cr_assert_eq(virtio_pci_restore(vp, st), -EINVAL, "features never offered");
	virtio_pci_save(vp, st);
	st->config_vector = 77;
	cr_assert_eq(virtio_pci_restore(vp, st), -EINVAL, "vector past the table");
	virtio_pci_save(vp, st);
	st->device_id = 1;
	cr_assert_eq(virtio_pci_restore(vp, st), -EINVAL, "another device's state");
	free(st);
}

/* ---- a hostile driver ---- */

static uint64_t rnd(void)
{
	return (uint64_t)random() << 31 ^ (uint64_t)random();
}

Test(virtio_pci, hostile_driver_never_crashes_the_transport)
{
	static const unsigned widths[] = {1, 2, 4, 8};

	srandom(42);
	bring_up();
	for (int i = 0; i < 30000; i++) {
		unsigned len = widths[rnd() % 4];
		uint64_t v = rnd();
		uint64_t off;

		switch (rnd() % 8) {
		case 0: /* configuration space, capabilities included */
			off = rnd() % 0x100;
			if (rnd() % 2)
				vd_cfg_write(&d, (unsigned)off, (uint32_t)v, len > 4 ? 4 : len);
			else
				vd_cfg_read(&d, (unsigned)off, len > 4 ? 4 : len);
			d.bar = pb.slots[1]->bars[0].addr ? pb.slots[1]->bars[0].addr : d.bar;
			break;
		case 1: /* random guest memory: the rings are the guest's too */
			vd_put(&d, VD_RING(rnd() % 2) + rnd() % 0x3000, v, len);
			break;
		case 2:
			virtio_pci_poll(vp);
			break;
		case 3: /* common cfg, valid offsets and widths more often than not */
			off = rnd() % 0x40;
			if (rnd() % 2)
				vd_common_write(&d, (unsigned)off, v, len);
			else
				vd_common_read(&d, (unsigned)off, len);
			break;
		default: /* anywhere in BAR 0 */
			off = rnd() % VIRTIO_PCI_BAR_SIZE;
			if (rnd() % 2)
				vd_mwrite(&d, d.bar + off, v, len);
			else
				vd_mread(&d, d.bar + off, len);
			break;
		}
	}
	/* Whatever state it is in, a driver that starts over gets a working device. */
	vd_cfg_write(&d, 0x10, (uint32_t)LAYOUT_PCI_MMIO, 4);
	vd_cfg_write(&d, 0x14, 0, 4);
	vd_probe(&d, &mmio, &mem, 1 << 3);
	cr_assert_eq(d.bar, LAYOUT_PCI_MMIO);
	for (uint64_t a = VD_RING(0); a < VD_RING(2); a += 8)
		vd_put(&d, a, 0, 8);
	memset(sink.count, 0, sizeof(sink.count));
	bring_up();
	post(0);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert_eq(vd_used_idx(&d, 0), 1);
	cr_assert_eq(sink.count[1], 1);
}
