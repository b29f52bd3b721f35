/*
 * libFuzzer target for what a guest can do to a PCI function: type-1 config
 * cycles on 0xCF8/0xCFC, ECAM accesses, and MMIO to the BARs wherever the
 * guest moved them, against the host bridge and a virtio-pci entropy device
 * (transport, MSI-X table and PBA, common and device configuration, queue
 * set-up on rings in guest RAM, notifications served with virtio_pci_poll).
 *
 * Input: a sequence of 12-byte operations
 *   0      bits 0-1 space (0 port I/O, 1 ECAM, 2 BAR MMIO, 3 poll the device),
 *          bit 2 write, bits 3-5 width selector (1, 2, 4 or 8 bytes)
 *   1..3   offset within the space (little-endian, masked to the space)
 *   4..11  value to write
 * Guest RAM (the rings) is filled from the input too, so queue set-up meets
 * hostile descriptors. Nothing is checked but that nothing crashes, leaks or
 * trips a sanitizer: every access must be survivable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "bus/bus.h"
#include "bus/pci.h"
#include "virtio/pci.h"
#include "virtio/rng.h"
#include "vmm/memory.h"

#define OP_SIZE	  12
#define RAM_SIZE  (16u << 20)
#define MMIO64	  0x100000000ULL
#define MMIO64_END 0x200000000ULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct guest_memory mem;

static int sink_alloc(void *opaque)
{
	static int next;

	(void)opaque;
	return next++ & 0xff;
}

static int sink_route(void *opaque, int h, uint64_t addr, uint32_t value)
{
	(void)opaque;
	(void)h;
	(void)addr;
	(void)value;
	return 0;
}

static void sink_raise(void *opaque, int h)
{
	(void)opaque;
	(void)h;
}

static void sink_release(void *opaque, int h)
{
	(void)opaque;
	(void)h;
}

static const struct pci_msi_ops sink_ops = {sink_alloc, sink_route, sink_raise, sink_release};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return memory_init(&mem, RAM_SIZE) == 0 ? 0 : 1;
}

static uint64_t fuzz_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* BAR 0 as the guest left it: the MMIO space the third op kind aims at. */
static uint64_t fuzz_bar0(struct pci_bus *pb)
{
	uint64_t lo = pci_cfg_read(pb, 1 << 3, 0x10, 4), hi = pci_cfg_read(pb, 1 << 3, 0x14, 4);

	return ((hi << 32) | lo) & ~0xfULL;
}

static void fuzz_op(struct pci_bus *pb, struct bus *pio, struct bus *mmio, struct virtio_pci *vp,
		    const uint8_t *op)
{
	static const uint32_t widths[] = {1, 2, 4, 8, 1, 2, 4, 4};
	uint32_t width = widths[(op[0] >> 3) & 7], offset = (uint32_t)fuzz_le(op + 1, 3);
	bool write = op[0] & 4;
	uint8_t buf[8];

	memcpy(buf, op + 4, 8);
	switch (op[0] & 3) {
	case 0: /* mechanism #1: 0xCF8..0xCFF, 4-byte accesses at most */
		if (width > 4)
			width = 4;
		offset = PORT_PCI_CONFIG_ADDRESS + (offset & 7);
		write ? bus_write(pio, offset, buf, width) : bus_read(pio, offset, buf, width);
		break;
	case 1:
		offset = (uint32_t)LAYOUT_PCI_ECAM + (offset & 0xfffff);
		write ? bus_write(mmio, offset, buf, width) : bus_read(mmio, offset, buf, width);
		break;
	case 2: {
		uint64_t addr = fuzz_bar0(pb) + (offset & (VIRTIO_PCI_BAR_SIZE - 1));

		write ? bus_write(mmio, addr, buf, width) : bus_read(mmio, addr, buf, width);
		break;
	}
	default:
		virtio_pci_poll(vp);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pci_bus_config cfg = {
		.ecam_base = LAYOUT_PCI_ECAM,
		.mmio32_base = LAYOUT_PCI_MMIO,
		.mmio32_end = LAYOUT_PCI_MMIO_END,
		.mmio64_base = MMIO64,
		.mmio64_end = MMIO64_END,
		.msi = {&sink_ops, NULL},
	};
	struct bus pio, mmio;
	struct pci_bus pb;
	struct virtio_pci *vp = NULL;
	struct rng *rng = rng_create();

	/* The rings live wherever the guest says: give them fuzzed contents. */
	memset(mem.base, 0, 1 << 16);
	memcpy(mem.base, data, size < (1u << 16) ? size : (1u << 16));
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	cfg.pio = &pio;
	cfg.mmio = &mmio;
	if (rng == NULL || pci_bus_init(&pb, &cfg) != 0)
		abort();
	if (virtio_pci_create(&vp, rng_virtio(rng), &mem, -1) != 0 ||
	    pci_add_device(&pb, virtio_pci_device(vp)) != 0)
		abort();
	for (size_t at = 0; at + OP_SIZE <= size; at += OP_SIZE)
		fuzz_op(&pb, &pio, &mmio, vp, data + at);
	pci_bus_destroy(&pb);
	virtio_pci_destroy(vp);
	rng_destroy(rng);
	bus_destroy(&mmio);
	bus_destroy(&pio);
	return 0;
}
