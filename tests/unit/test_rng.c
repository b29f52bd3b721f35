/*
 * virtio-rng behind the real virtio-pci transport, driven by the test driver
 * (tests/unit/vdriver.h) in a real guest_memory: chains get random bytes,
 * device-readable buffers are refused, the device thread serves kicks.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/pci.h"
#include "msi_sink.h"
#include "vdriver.h"
#include "virtio/pci.h"
#include "virtio/rng.h"


static struct guest_memory mem;
static struct bus mmio;
static struct pci_bus pb;
static struct rng *rng;
static struct virtio_pci *vp;
static struct vdrv d;

static void setup(void)
{
	struct pci_bus_config cfg = {
	    .mmio = &mmio,
	    .ecam_base = VD_ECAM,
	    .mmio32_base = LAYOUT_PCI_MMIO,
	    .mmio32_end = LAYOUT_PCI_MMIO_END,
	    .msi = {&sink_ops, &sink},
	};

	memset(&sink, 0, sizeof(sink));
	cr_assert_eq(memory_init(&mem, VD_MEM_SIZE), 0);
	bus_init(&mmio, "mmio");
	cr_assert_eq(pci_bus_init(&pb, &cfg), 0);
	rng = rng_create();
	cr_assert_not_null(rng);
	cr_assert_eq(virtio_pci_create(&vp, rng_virtio(rng), &mem, -1), 0);
	cr_assert_eq(pci_add_device(&pb, virtio_pci_device(vp)), 0);
	vd_probe(&d, &mmio, &mem, 1 << 3);
	vd_enable_msix(&d, 2);
	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	vd_common_write(&d, VD_MSIX, 0, 2);
	vd_setup_queue(&d, 0, VD_QSIZE, 1);
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	virtio_pci_poll(vp);
}

static void teardown(void)
{
	pci_bus_destroy(&pb);
	virtio_pci_destroy(vp);
	rng_destroy(rng);
	bus_destroy(&mmio);
	memory_destroy(&mem);
}

TestSuite(rng, .init = setup, .fini = teardown);

static bool all_bytes(uint64_t gpa, size_t len, uint8_t value)
{
	const uint8_t *p = gpa_to_hva(&mem, gpa, len);

	cr_assert_not_null(p);
	for (size_t i = 0; i < len; i++)
		if (p[i] != value)
			return false;
	return true;
}

Test(rng, identity)
{
	cr_assert_eq(vd_cfg_read(&d, 0x02, 2), 0x1044, "virtio entropy: 0x1040 + 4");
	cr_assert_eq(vd_common_read(&d, VD_NUMQ, 2), 1);
	cr_assert_eq(vd_device_features(&d), VD_VERSION_1 | (1u << 28) | (1u << 29),
		     "no device feature bits, transport ones only");
}

Test(rng, fills_every_writable_buffer_of_a_chain)
{
	uint64_t gpa[2] = {VD_BUF, VD_BUF + 0x10000};
	uint32_t len[2] = {100, 5000}, id, used;
	bool w[2] = {true, true};
	uint16_t head;

	memset(gpa_to_hva(&mem, VD_BUF, 0x20000), 0, 0x20000);
	head = vd_add_chain(&d, 0, gpa, len, w, 2);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert_eq(vd_used_idx(&d, 0), 1);
	vd_used_elem(&d, 0, 0, &id, &used);
	cr_assert_eq(id, head);
	cr_assert_eq(used, 5100, "both buffers, whole");
	cr_assert_not(all_bytes(VD_BUF, 100, 0), "first buffer got entropy");
	cr_assert_not(all_bytes(VD_BUF + 0x10000, 5000, 0), "second buffer got entropy");
	cr_assert(all_bytes(VD_BUF + 100, 0x10000 - 100, 0), "nothing past the first buffer");
	cr_assert(all_bytes(VD_BUF + 0x10000 + 5000, 0x1000, 0), "nothing past the second");
	cr_assert_eq(rng_bytes_served(rng), 5100);
	cr_assert_eq(sink.count[1], 1, "queue interrupt on vector 1");
}

Test(rng, large_buffers_get_at_most_the_cap)
{
	uint64_t gpa = VD_BUF;
	uint32_t len = 1u << 20, id, used;
	bool w = true;

	vd_add_chain(&d, 0, &gpa, &len, &w, 1);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	vd_used_elem(&d, 0, 0, &id, &used);
	cr_assert_eq(used, RNG_MAX_CHAIN_BYTES, "the device may use less than the buffer");
}

Test(rng, readable_buffers_need_reset)
{
	uint64_t gpa[2] = {VD_BUF, VD_BUF + 0x1000};
	uint32_t len[2] = {16, 16};
	bool w[2] = {false, true};

	vd_add_chain(&d, 0, gpa, len, w, 2);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
	cr_assert_eq(vd_used_idx(&d, 0), 0, "the chain is not consumed");
	cr_assert_eq(sink.count[0], 1, "configuration interrupt");
	/* And a reset brings it back. */
	vd_set_status(&d, 0);
	cr_assert(vd_negotiate(&d, VD_VERSION_1) & VD_FEATURES_OK);
	vd_setup_queue(&d, 0, VD_QSIZE, 1);
	vd_set_status(&d, VD_ACK | VD_DRIVER | VD_FEATURES_OK | VD_DRIVER_OK);
	memset(gpa_to_hva(&mem, VD_RING(0), 0x3000), 0, 0x3000);
	gpa[0] = VD_BUF;
	len[0] = 32;
	w[0] = true;
	vd_add_chain(&d, 0, gpa, len, w, 1);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert_eq(vd_used_idx(&d, 0), 1);
}

Test(rng, empty_chains_need_reset)
{
	uint64_t gpa = VD_BUF;
	uint32_t len = 0;
	bool w = true;

	vd_add_chain(&d, 0, &gpa, &len, &w, 1);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET, "no room for even one byte");
}

Test(rng, buffers_outside_ram_break_the_queue)
{
	uint64_t gpa = 0xfffff000;
	uint32_t len = 64;
	bool w = true;

	vd_add_chain(&d, 0, &gpa, &len, &w, 1);
	vd_notify(&d, 0);
	virtio_pci_poll(vp);
	cr_assert(vd_status(&d) & VD_NEEDS_RESET);
	cr_assert_eq(rng_bytes_served(rng), 0);
}

Test(rng, the_device_thread_serves_kicks)
{
	uint64_t gpa = VD_BUF;
	uint32_t len = 256;
	bool w = true;
	struct timespec ms = {0, 1000000};

	cr_assert_eq(virtio_pci_start(vp), 0);
	/* Batches of 8 on a ring of 16: never more outstanding than the ring holds. */
	for (int b = 1; b <= 5; b++) {
		for (int i = 0; i < 8; i++) {
			vd_add_chain(&d, 0, &gpa, &len, &w, 1);
			vd_notify(&d, 0);
		}
		for (int i = 0; i < 5000 && vd_used_idx(&d, 0) != 8 * b; i++)
			nanosleep(&ms, NULL);
	}
	virtio_pci_stop(vp);
	cr_assert_eq(vd_used_idx(&d, 0), 40, "every chain served");
	cr_assert_eq(rng_bytes_served(rng), 40 * 256);
	cr_assert_geq(__atomic_load_n(&sink.count[1], __ATOMIC_SEQ_CST), 1);
}
