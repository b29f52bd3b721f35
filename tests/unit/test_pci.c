/*
 * PCI bus 0 as a guest drives it: mechanism #1 on 0xCF8/0xCFC, ECAM, BAR
 * sizing and moves, the capability list, MSI-X with a fake interrupt sink.
 * Register layouts are written here from the PCI Local Bus spec 3.0.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "bus/bus.h"
#include "bus/pci.h"

#define ECAM	   LAYOUT_PCI_ECAM
#define MMIO64	   0x100000000ULL
#define MMIO64_END 0x1100000000ULL
#define DEV_SLOT   1
#define DEVFN	   (DEV_SLOT << 3)
#define NVEC	   4
#define TABLE	   0x2000
#define PBA	   0x3000

/* ---- a fake MSI sink: records routes and raised messages ---- */

struct sink {
	int next;
	int routes, raised, released;
	uint64_t addr[16];
	uint32_t data[16];
	int count[16];
	uint64_t refuse; /* route() fails for this address */
	uint64_t last_addr;
	uint32_t last_data;
};

static int sink_alloc(void *opaque)
{
	struct sink *s = opaque;

	return s->next < 16 ? s->next++ : -ENOSPC;
}

static int sink_route(void *opaque, int h, uint64_t addr, uint32_t data)
{
	struct sink *s = opaque;

	cr_assert(h >= 0 && h < s->next);
	s->routes++;
	if (addr == s->refuse)
		return -EINVAL;
	s->addr[h] = addr;
	s->data[h] = data;
	return 0;
}

static void sink_raise(void *opaque, int h)
{
	struct sink *s = opaque;

	cr_assert(h >= 0 && h < s->next);
	s->raised++;
	s->count[h]++;
	s->last_addr = s->addr[h];
	s->last_data = s->data[h];
}

static void sink_release(void *opaque, int h)
{
	struct sink *s = opaque;

	(void)h;
	s->released++;
}

static const struct pci_msi_ops sink_ops = {sink_alloc, sink_route, sink_raise, sink_release};

/* ---- a test device: BAR 0 32-bit 4 KiB, BAR 2 64-bit 16 KiB with MSI-X ---- */

struct tdev {
	struct pci_device pci;
	uint64_t last_off;
	unsigned last_bar;
	uint32_t last_len;
	int reads, writes;
	int maps, unmaps;
	uint64_t mapped_at[PCI_NUM_BARS];
	bool mapped[PCI_NUM_BARS];
};

static enum vm_action tdev_read(void *opaque, unsigned bar, uint64_t off, uint8_t *data,
				uint32_t len)
{
	struct tdev *t = opaque;

	t->reads++;
	t->last_bar = bar;
	t->last_off = off;
	t->last_len = len;
	memset(data, 0x5a, len);
	return VM_CONTINUE;
}

static enum vm_action tdev_write(void *opaque, unsigned bar, uint64_t off, const uint8_t *data,
				 uint32_t len)
{
	struct tdev *t = opaque;

	(void)data;
	t->writes++;
	t->last_bar = bar;
	t->last_off = off;
	t->last_len = len;
	return VM_CONTINUE;
}

static void tdev_map(void *opaque, unsigned bar, uint64_t addr, bool mapped)
{
	struct tdev *t = opaque;

	cr_assert(bar < PCI_NUM_BARS);
	cr_assert_neq(t->mapped[bar], mapped, "bar_map(%d) twice for BAR %u", mapped, bar);
	if (mapped)
		t->maps++;
	else
		t->unmaps++;
	t->mapped[bar] = mapped;
	t->mapped_at[bar] = addr;
}

static const struct pci_device_ops tdev_ops = {
    .bar_read = tdev_read, .bar_write = tdev_write, .bar_map = tdev_map};

static struct bus pio, mmio;
static struct pci_bus pb;
static struct sink sink;
static struct tdev *td;

static void setup(void)
{
	struct pci_bus_config cfg = {
	    .pio = &pio,
	    .mmio = &mmio,
	    .ecam_base = ECAM,
	    .mmio32_base = LAYOUT_PCI_MMIO,
	    .mmio32_end = LAYOUT_PCI_MMIO_END,
	    .mmio64_base = MMIO64,
	    .mmio64_end = MMIO64_END,
	    .msi = {&sink_ops, &sink},
	};
	struct pci_device_id id = {.vendor = 0x1234,
				   .device = 0x5678,
				   .subsystem_vendor = 0x1af4,
				   .subsystem = 0x0040,
				   .revision = 3,
				   .class_code = 0xff0000};

	memset(&sink, 0, sizeof(sink));
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	cr_assert_eq(pci_bus_init(&pb, &cfg), 0);
	td = calloc(1, sizeof(*td));
	pci_device_init(&td->pci, "test", &id, &tdev_ops, td);
	cr_assert_eq(pci_device_set_bar(&td->pci, 0, 0x1000, 0), 0);
	cr_assert_eq(pci_device_set_bar(&td->pci, 2, 0x4000, PCI_BAR_64), 0);
	cr_assert_eq(pci_device_add_cap(&td->pci, PCI_CAP_ID_VNDR, 8), PCI_CAP_START);
	cr_assert_eq(pci_device_add_msix(&td->pci, NVEC, 2, TABLE, PBA), 0);
	cr_assert_eq(pci_add_device(&pb, &td->pci), 0);
	cr_assert_eq(td->pci.slot, DEV_SLOT);
}

static void teardown(void)
{
	pci_bus_destroy(&pb);
	bus_destroy(&pio);
	bus_destroy(&mmio);
	free(td);
}

TestSuite(pci, .init = setup, .fini = teardown);

/* ---- the guest's accessors ---- */

static uint32_t le(const uint8_t *d, unsigned len)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void put(uint8_t *d, uint64_t v, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t inl(uint16_t port, unsigned len)
{
	uint8_t d[4];

	cr_assert_eq(bus_read(&pio, port, d, len), VM_CONTINUE);
	return le(d, len);
}

static void outl(uint16_t port, uint32_t v, unsigned len)
{
	uint8_t d[4];

	put(d, v, len);
	cr_assert_eq(bus_write(&pio, port, d, len), VM_CONTINUE);
}

static uint32_t ca(unsigned bus, unsigned devfn, unsigned reg)
{
	return 0x80000000u | bus << 16 | devfn << 8 | (reg & 0xfc);
}

/* Mechanism #1, as Linux's pci_conf1_read does it. */
static uint32_t cf8_read(unsigned devfn, unsigned reg, unsigned len)
{
	outl(0xcf8, ca(0, devfn, reg), 4);
	return inl((uint16_t)(0xcfc + (reg & 3)), len);
}

static void cf8_write(unsigned devfn, unsigned reg, uint32_t v, unsigned len)
{
	outl(0xcf8, ca(0, devfn, reg), 4);
	outl((uint16_t)(0xcfc + (reg & 3)), v, len);
}

static uint64_t mread(uint64_t addr, unsigned len)
{
	uint8_t d[8];
	uint64_t v = 0;

	cr_assert_eq(bus_read(&mmio, addr, d, len), VM_CONTINUE);
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void mwrite(uint64_t addr, uint64_t v, unsigned len)
{
	uint8_t d[8];

	put(d, v, len);
	cr_assert_eq(bus_write(&mmio, addr, d, len), VM_CONTINUE);
}

static uint32_t ecam_read(unsigned devfn, unsigned reg, unsigned len)
{
	return (uint32_t)mread(ECAM + ((uint64_t)devfn << 12) + reg, len);
}

static void ecam_write(unsigned devfn, unsigned reg, uint32_t v, unsigned len)
{
	mwrite(ECAM + ((uint64_t)devfn << 12) + reg, v, len);
}

static uint64_t bar_addr(unsigned bar)
{
	uint64_t lo = cf8_read(DEVFN, PCI_BAR0 + 4 * bar, 4) & ~0xfull;

	if (bar == 2)
		lo |= (uint64_t)cf8_read(DEVFN, PCI_BAR0 + 12, 4) << 32;
	return lo;
}

static void enable(uint16_t cmd)
{
	cf8_write(DEVFN, PCI_COMMAND, cmd, 2);
}

/* ---- mechanism #1 ---- */

Test(pci, host_bridge_is_device_0)
{
	uint32_t id = cf8_read(0, PCI_VENDOR_ID, 4);

	cr_assert_neq(id & 0xffff, 0xffff, "no host bridge");
	cr_assert_eq(cf8_read(0, 0x08, 4) >> 8, PCI_CLASS_BRIDGE_HOST, "class host bridge");
	cr_assert_eq(cf8_read(0, PCI_HEADER_TYPE, 1), 0, "type 0, single function");
	cr_assert_eq(ecam_read(0, PCI_VENDOR_ID, 4), id, "ECAM agrees");
}

Test(pci, config_address_register)
{
	outl(0xcf8, 0x80000000, 4);
	cr_assert_eq(inl(0xcf8, 4), 0x80000000, "what Linux's type-1 probe checks");
	outl(0xcf8, 0xffffffff, 4);
	cr_assert_eq(inl(0xcf8, 4), 0x80fffffc, "reserved bits read as zero");
	/* Narrow accesses to 0xCF8-0xCFB are not CONFIG_ADDRESS (Linux pokes 0xCFB). */
	outl(0xcfb, 0x01, 1);
	outl(0xcf8, 0x1234, 2);
	cr_assert_eq(inl(0xcf8, 4), 0x80fffffc);
	cr_assert_eq(inl(0xcf8, 1), 0xff);
	cr_assert_eq(inl(0xcfa, 2), 0xffff);
}

Test(pci, bus_device_function_and_register_decoding)
{
	cr_assert_eq(cf8_read(DEVFN, PCI_VENDOR_ID, 2), 0x1234);
	cr_assert_eq(cf8_read(DEVFN, PCI_DEVICE_ID, 2), 0x5678);
	cr_assert_eq(cf8_read(DEVFN, PCI_VENDOR_ID, 4), 0x56781234);
	cr_assert_eq(cf8_read(DEVFN, 0x08, 4), 0xff000003, "class and revision");
	cr_assert_eq(cf8_read(DEVFN, 0x0b, 1), 0xff, "byte 3 of dword 8 through port 0xCFF");
	cr_assert_eq(cf8_read(DEVFN, PCI_SUBSYSTEM_ID, 2), 0x0040);
	/* Another bus, an empty slot, another function: nothing there. */
	outl(0xcf8, ca(1, DEVFN, 0), 4);
	cr_assert_eq(inl(0xcfc, 4), 0xffffffff, "bus 1");
	cr_assert_eq(cf8_read(2 << 3, 0, 4), 0xffffffff, "slot 2");
	cr_assert_eq(cf8_read(DEVFN | 1, 0, 4), 0xffffffff, "function 1");
	cr_assert_eq(cf8_read(31 << 3, 0, 2), 0xffff, "slot 31");
}

Test(pci, disabled_config_address_reads_all_ones_and_drops_writes)
{
	outl(0xcf8, DEVFN << 8 | PCI_COMMAND, 4); /* enable bit clear */
	cr_assert_eq(inl(0xcfc, 4), 0xffffffff);
	outl(0xcfc, PCI_COMMAND_MEMORY, 2);
	cr_assert_eq(cf8_read(DEVFN, PCI_COMMAND, 2), 0, "the write went nowhere");
}

Test(pci, odd_widths_and_unaligned_accesses)
{
	outl(0xcf8, ca(0, DEVFN, 0), 4);
	cr_assert_eq(inl(0xcfd, 2), 0x7812, "bytes 1-2 of the dword");
	cr_assert_eq(inl(0xcfe, 2), 0x5678);
	cr_assert_eq(inl(0xcfd, 1), 0x12);
	cr_assert_eq(inl(0xcfe, 1), 0x78);
	cr_assert_eq(inl(0xcfd, 4), 0xffffffff, "past 0xCFF: not config data");
	/* ECAM: accesses must stay inside one dword. */
	cr_assert_eq(ecam_read(DEVFN, 1, 2), 0x7812);
	cr_assert_eq(ecam_read(DEVFN, 3, 2), 0xffff, "crosses a dword");
	cr_assert_eq(ecam_read(DEVFN, 2, 4), 0xffffffff, "unaligned dword");
	cr_assert_eq(mread(ECAM + (DEVFN << 12), 8), ~0ULL, "8-byte config access");
	ecam_write(DEVFN, 3, 0xffff, 2);
	ecam_write(DEVFN, PCI_COMMAND, 0xffff, 3 + 0); /* 3-byte access: dropped */
	cr_assert_eq(cf8_read(DEVFN, PCI_COMMAND, 2), 0);
}

Test(pci, ecam_reaches_extended_space)
{
	cr_assert_eq(ecam_read(DEVFN, PCI_VENDOR_ID, 4), 0x56781234);
	cr_assert_eq(ecam_read(DEVFN, 0x100, 4), 0, "no extended capabilities");
	ecam_write(DEVFN, 0x100, 0xffffffff, 4);
	cr_assert_eq(ecam_read(DEVFN, 0x100, 4), 0, "read-only");
	ecam_write(DEVFN, PCI_COMMAND, PCI_COMMAND_MASTER, 2);
	cr_assert_eq(cf8_read(DEVFN, PCI_COMMAND, 2), PCI_COMMAND_MASTER, "same registers");
	cr_assert_eq(ecam_read(2 << 3, 0, 4), 0xffffffff);
	cr_assert_eq(mread(ECAM + PCI_ECAM_BUS_SIZE, 4), 0xffffffff, "bus 1 is not ECAM");
}

/* ---- masks ---- */

Test(pci, read_only_fields_survive_writes_of_all_ones)
{
	uint32_t before[64];

	for (unsigned r = 0; r < 64; r++)
		before[r] = cf8_read(DEVFN, 4 * r, 4);
	for (unsigned r = 0; r < 64; r++)
		cf8_write(DEVFN, 4 * r, 0xffffffff, 4);
	cr_assert_eq(cf8_read(DEVFN, 0, 4), before[0], "ids");
	cr_assert_eq(cf8_read(DEVFN, 8, 4), before[2], "class, revision");
	cr_assert_eq(cf8_read(DEVFN, 0x2c, 4), before[11], "subsystem");
	cr_assert_eq(cf8_read(DEVFN, PCI_CAPABILITY_LIST, 1), before[13] & 0xff, "cap pointer");
	cr_assert_eq(cf8_read(DEVFN, PCI_HEADER_TYPE, 1), 0);
	cr_assert_eq(cf8_read(DEVFN, PCI_INTERRUPT_PIN, 1), 0, "no INTx pin");
	cr_assert_eq(cf8_read(DEVFN, PCI_COMMAND, 2),
		     PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE,
		     "only implemented command bits");
	cr_assert_eq(cf8_read(DEVFN, PCI_STATUS, 2), PCI_STATUS_CAP_LIST,
		     "capability bit kept, error bits cleared by writing 1");
	cr_assert_eq(cf8_read(DEVFN, PCI_INTERRUPT_LINE, 1), 0xff, "interrupt line is scratch");
	cr_assert_eq(cf8_read(DEVFN, 0x40, 2), before[16] & 0xffff, "capability header");
	for (unsigned r = 0; r < 64; r++)
		cf8_write(0, 4 * r, 0xffffffff, 4);
	cr_assert_eq(cf8_read(0, 8, 4) >> 8, PCI_CLASS_BRIDGE_HOST);
}

Test(pci, bar_sizing_returns_the_size_mask)
{
	uint32_t b0 = cf8_read(DEVFN, PCI_BAR0, 4), b2 = cf8_read(DEVFN, PCI_BAR0 + 8, 4);
	uint32_t b3 = cf8_read(DEVFN, PCI_BAR0 + 12, 4);

	cf8_write(DEVFN, PCI_BAR0, 0xffffffff, 4);
	cr_assert_eq(cf8_read(DEVFN, PCI_BAR0, 4), 0xfffff000, "32-bit, 4 KiB, non-prefetchable");
	cf8_write(DEVFN, PCI_BAR0 + 8, 0xffffffff, 4);
	cf8_write(DEVFN, PCI_BAR0 + 12, 0xffffffff, 4);
	cr_assert_eq(cf8_read(DEVFN, PCI_BAR0 + 8, 4), 0xffffc004, "64-bit, 16 KiB");
	cr_assert_eq(cf8_read(DEVFN, PCI_BAR0 + 12, 4), 0xffffffff);
	cf8_write(DEVFN, PCI_BAR0 + 4, 0xffffffff, 4);
	cr_assert_eq(cf8_read(DEVFN, PCI_BAR0 + 4, 4), 0, "BAR 1 not implemented");
	cf8_write(DEVFN, PCI_BAR0 + 20, 0xffffffff, 4);
	cr_assert_eq(cf8_read(DEVFN, PCI_BAR0 + 20, 4), 0);
	cf8_write(DEVFN, PCI_BAR0, b0, 4);
	cf8_write(DEVFN, PCI_BAR0 + 8, b2, 4);
	cf8_write(DEVFN, PCI_BAR0 + 12, b3, 4);
	cr_assert_eq(cf8_read(DEVFN, PCI_BAR0, 4), b0, "restored");
}

Test(pci, bars_are_assigned_naturally_aligned_in_their_windows)
{
	uint64_t a0 = bar_addr(0), a2 = bar_addr(2);

	cr_assert(a0 >= LAYOUT_PCI_MMIO && a0 + 0x1000 <= LAYOUT_PCI_MMIO_END);
	cr_assert_eq(a0 % 0x1000, 0);
	cr_assert(a2 >= MMIO64 && a2 + 0x4000 <= MMIO64_END, "64-bit BAR above 4 GiB");
	cr_assert_eq(a2 % 0x4000, 0);
}

Test(pci, bad_declarations_are_refused)
{
	struct pci_device *d = calloc(1, sizeof(*d));
	struct pci_device_id id = {.vendor = 1};

	pci_device_init(d, "bad", &id, NULL, NULL);
	cr_assert_eq(pci_device_set_bar(d, 6, 0x1000, 0), -EINVAL);
	cr_assert_eq(pci_device_set_bar(d, 0, 0x1800, 0), -EINVAL, "not a power of two");
	cr_assert_eq(pci_device_set_bar(d, 0, 0x800, 0), -EINVAL, "smaller than a page");
	cr_assert_eq(pci_device_set_bar(d, 5, 0x1000, PCI_BAR_64), -EINVAL, "no upper half");
	cr_assert_eq(pci_device_set_bar(d, 0, 0x1000, PCI_BAR_64), 0);
	cr_assert_eq(pci_device_set_bar(d, 1, 0x1000, 0), -EINVAL, "upper half taken");
	cr_assert_eq(pci_device_add_msix(d, 0, 0, 0, 0x800), -EINVAL);
	cr_assert_eq(pci_device_add_msix(d, 4, 0, 0x0, 0x20), -EINVAL, "table and PBA overlap");
	cr_assert_eq(pci_device_add_msix(d, 4, 0, 0xff8, 0x800), -EINVAL, "past the BAR");
	cr_assert_eq(pci_device_add_msix(d, 4, 2, 0, 0x800), -EINVAL, "no such BAR");
	free(d);
}

/* ---- BAR decoding ---- */

Test(pci, bars_decode_only_with_memory_enable)
{
	uint64_t a0 = bar_addr(0);

	cr_assert_eq(mread(a0, 4), 0xffffffff, "not decoding after reset");
	cr_assert_eq(td->reads, 0);
	enable(PCI_COMMAND_MEMORY);
	cr_assert_eq(mread(a0 + 0x10, 4), 0x5a5a5a5a);
	cr_assert_eq(td->last_bar, 0);
	cr_assert_eq(td->last_off, 0x10);
	cr_assert_eq(td->maps, 2, "both BARs");
	cr_assert_eq(td->mapped_at[0], a0);
	enable(0);
	cr_assert_eq(mread(a0, 4), 0xffffffff);
	cr_assert_eq(td->unmaps, 2);
}

Test(pci, moving_a_bar_moves_its_mmio_range)
{
	uint64_t a0 = bar_addr(0), to = LAYOUT_PCI_MMIO + 0x100000;

	enable(PCI_COMMAND_MEMORY);
	cf8_write(DEVFN, PCI_BAR0, (uint32_t)to, 4);
	cr_assert_eq(bar_addr(0), to);
	cr_assert_eq(mread(a0, 4), 0xffffffff, "the old address is free");
	cr_assert_eq(mread(to + 8, 2), 0x5a5a);
	cr_assert_eq(td->last_off, 8);
	cr_assert_eq(td->mapped_at[0], to);
	cr_assert(td->mapped[0]);
	/* The 64-bit BAR moves below 4 GiB in two halves, as a guest reprograms it. */
	cf8_write(DEVFN, PCI_BAR0 + 12, 0, 4);
	cf8_write(DEVFN, PCI_BAR0 + 8, (uint32_t)(to + 0x10000), 4);
	cr_assert_eq(bar_addr(2), to + 0x10000);
	mwrite(to + 0x10000 + 0x40, 1, 4);
	cr_assert_eq(td->last_bar, 2);
	cr_assert_eq(td->last_off, 0x40);
}

/* ECAM is on the MMIO bus itself: the move re-enters it (bus.c runs handlers unlocked). */
Test(pci, moving_a_bar_through_ecam, .timeout = 10)
{
	uint64_t to = LAYOUT_PCI_MMIO + 0x300000;

	ecam_write(DEVFN, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	ecam_write(DEVFN, PCI_BAR0, (uint32_t)to, 4);
	cr_assert_eq(ecam_read(DEVFN, PCI_BAR0, 4), (uint32_t)to);
	cr_assert_eq(mread(to + 4, 4), 0x5a5a5a5a);
	cr_assert_eq(td->mapped_at[0], to);
}

Test(pci, bars_outside_the_windows_or_over_others_do_not_decode)
{
	enable(PCI_COMMAND_MEMORY);
	cf8_write(DEVFN, PCI_BAR0, (uint32_t)ECAM, 4);
	cr_assert_not(td->mapped[0], "over the ECAM window");
	cr_assert_eq(ecam_read(DEVFN, 0, 2), 0x1234, "ECAM still works");
	cf8_write(DEVFN, PCI_BAR0, 0x1000, 4);
	cr_assert_not(td->mapped[0], "over RAM, outside the windows");
	cf8_write(DEVFN, PCI_BAR0, 0xfffff000, 4);
	cr_assert_not(td->mapped[0], "sizing value while decoding");
	/* Both BARs at the same place: the second one loses. */
	cf8_write(DEVFN, PCI_BAR0, (uint32_t)LAYOUT_PCI_MMIO, 4);
	cf8_write(DEVFN, PCI_BAR0 + 12, 0, 4);
	cf8_write(DEVFN, PCI_BAR0 + 8, (uint32_t)LAYOUT_PCI_MMIO, 4);
	cr_assert(td->mapped[0]);
	cr_assert_not(td->mapped[2]);
	cr_assert_eq(mread(LAYOUT_PCI_MMIO, 1), 0x5a);
	cr_assert_eq(td->last_bar, 0);
}

/* ---- the capability list ---- */

Test(pci, capability_list_is_well_formed)
{
	unsigned at = cf8_read(DEVFN, PCI_CAPABILITY_LIST, 1), seen = 0, msix = 0;

	cr_assert(cf8_read(DEVFN, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	while (at != 0) {
		cr_assert(at >= 0x40 && at <= 0xfc && at % 4 == 0, "capability at %#x", at);
		cr_assert(++seen < 48, "the list loops");
		if (cf8_read(DEVFN, at, 1) == PCI_CAP_ID_MSIX)
			msix = at;
		at = cf8_read(DEVFN, at + 1, 1);
	}
	cr_assert_eq(seen, 2);
	cr_assert_neq(msix, 0);
	cr_assert_eq(cf8_read(DEVFN, msix + 2, 2), NVEC - 1, "table size N-1, disabled");
	cr_assert_eq(cf8_read(DEVFN, msix + 4, 4), TABLE | 2, "table in BAR 2");
	cr_assert_eq(cf8_read(DEVFN, msix + 8, 4), PBA | 2, "PBA in BAR 2");
	cf8_write(DEVFN, msix + 2, 0xffff, 2);
	cr_assert_eq(cf8_read(DEVFN, msix + 2, 2), 0xc000 | (NVEC - 1), "only enable and mask");
	cf8_write(DEVFN, msix + 4, 0, 4);
	cr_assert_eq(cf8_read(DEVFN, msix + 4, 4), TABLE | 2, "read-only");
}

/* ---- MSI-X ---- */

static unsigned msix_cap(void)
{
	return td->pci.msix.cap;
}

static uint64_t table(unsigned v, unsigned field)
{
	return bar_addr(2) + TABLE + 16 * v + field;
}

static void program(unsigned v, uint64_t addr, uint32_t data)
{
	mwrite(table(v, 0), (uint32_t)addr, 4);
	mwrite(table(v, 4), addr >> 32, 4);
	mwrite(table(v, 8), data, 4);
}

static void set_control(uint16_t flags)
{
	cf8_write(DEVFN, msix_cap() + 2, flags, 2);
}

static uint64_t pba(void)
{
	return mread(bar_addr(2) + PBA, 8);
}

Test(pci, msix_table_reset_state_and_field_masks)
{
	enable(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	for (unsigned v = 0; v < NVEC; v++)
		cr_assert_eq(mread(table(v, 12), 4), 1, "vector %u masked after reset", v);
	mwrite(table(1, 12), 0xffffffff, 4);
	cr_assert_eq(mread(table(1, 12), 4), 1, "reserved control bits read 0");
	program(2, 0xfee01000, 0x4041);
	cr_assert_eq(mread(table(2, 0), 8), 0xfee01000, "qword access");
	cr_assert_eq(mread(table(2, 8), 4), 0x4041);
	mwrite(table(3, 0), 0x00000001fee00000ULL, 8);
	cr_assert_eq(mread(table(3, 4), 4), 1, "qword write");
	mwrite(bar_addr(2) + PBA, ~0ULL, 8);
	cr_assert_eq(pba(), 0, "the PBA is read-only");
	cr_assert_eq(mread(bar_addr(2) + TABLE + 16 * NVEC, 4), 0x5a5a5a5a,
		     "past the table: the device's own registers");
}

Test(pci, msix_disabled_drops_masked_sets_pending_unmask_delivers)
{
	enable(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	program(0, 0xfee00000, 0x30);
	pci_msix_raise(&td->pci, 0);
	cr_assert_eq(sink.raised, 0, "MSI-X disabled");
	cr_assert_eq(pba(), 0, "and nothing pending");

	set_control(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	pci_msix_raise(&td->pci, 0);
	cr_assert_eq(sink.raised, 0, "function masked");
	cr_assert_eq(pba(), 1);

	set_control(PCI_MSIX_FLAGS_ENABLE);
	cr_assert_eq(sink.raised, 0, "vector 0 itself is still masked");
	mwrite(table(0, 12), 0, 4);
	cr_assert_eq(sink.raised, 1, "unmasking delivers the pending message");
	cr_assert_eq(sink.last_addr, 0xfee00000);
	cr_assert_eq(sink.last_data, 0x30);
	cr_assert_eq(pba(), 0);

	pci_msix_raise(&td->pci, 0);
	cr_assert_eq(sink.raised, 2, "live vector: straight through");
	mwrite(table(0, 12), 1, 4);
	pci_msix_raise(&td->pci, 0);
	pci_msix_raise(&td->pci, 0);
	cr_assert_eq(sink.raised, 2);
	cr_assert_eq(pba(), 1, "pending once, however many times raised");
	mwrite(table(0, 12), 0, 4);
	cr_assert_eq(sink.raised, 3);
	pci_msix_raise(&td->pci, NVEC);
	pci_msix_raise(&td->pci, 1000);
	cr_assert_eq(sink.raised, 3, "vectors past the table");
}

Test(pci, msix_reroutes_when_the_message_changes)
{
	enable(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	set_control(PCI_MSIX_FLAGS_ENABLE);
	program(1, 0xfee00000, 0x41);
	mwrite(table(1, 12), 0, 4);
	cr_assert_eq(sink.routes, 1, "routed once when it went live");
	pci_msix_raise(&td->pci, 1);
	cr_assert_eq(sink.last_data, 0x41);
	pci_msix_raise(&td->pci, 1);
	cr_assert_eq(sink.routes, 1, "no reroute without a change");
	/* Linux masks around a rewrite; a rewrite while live must still take effect. */
	mwrite(table(1, 8), 0x42, 4);
	pci_msix_raise(&td->pci, 1);
	cr_assert_eq(sink.last_data, 0x42);
	cr_assert_eq(sink.raised, 3);
}

Test(pci, msix_needs_bus_master_and_survives_refused_messages)
{
	int routes;

	enable(PCI_COMMAND_MEMORY);
	set_control(PCI_MSIX_FLAGS_ENABLE);
	program(2, 0xfee00000, 0x50);
	mwrite(table(2, 12), 0, 4);
	pci_msix_raise(&td->pci, 2);
	cr_assert_eq(sink.raised, 0, "no bus mastering, no message");
	enable(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	sink.refuse = 0xdead0000;
	program(2, 0xdead0000, 0x51);
	routes = sink.routes;
	pci_msix_raise(&td->pci, 2);
	pci_msix_raise(&td->pci, 2);
	cr_assert_eq(sink.raised, 0, "refused message: dropped");
	cr_assert_eq(sink.routes, routes, "refused once, not retried on every raise");
	program(2, 0xfee00000, 0x52);
	pci_msix_raise(&td->pci, 2);
	cr_assert_eq(sink.raised, 1);
	cr_assert_eq(sink.last_data, 0x52);
}

Test(pci, destroy_releases_every_vector)
{
	cr_assert_eq(sink.next, NVEC);
	pci_bus_destroy(&pb);
	cr_assert_eq(sink.released, NVEC);
	sink.released = 0;
	pci_bus_init(&pb, &(struct pci_bus_config){.mmio = &mmio}); /* for teardown */
}

/* ---- snapshots ---- */

Test(pci, save_restore_round_trip_as_untrusted_input)
{
	struct pci_device_state *st = calloc(1, sizeof(*st));
	uint64_t to = LAYOUT_PCI_MMIO + 0x200000;

	enable(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cf8_write(DEVFN, PCI_BAR0, (uint32_t)to, 4);
	set_control(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	program(3, 0xfee00000, 0x63);
	mwrite(table(3, 12), 0, 4);
	pci_msix_raise(&td->pci, 3);
	pci_device_save(&td->pci, st);

	enable(0);
	cf8_write(DEVFN, PCI_BAR0, (uint32_t)LAYOUT_PCI_MMIO, 4);
	set_control(0);
	mwrite(table(3, 12), 1, 4);    /* not decoding: dropped anyway */
	st->cfg[PCI_VENDOR_ID] = 0x99; /* a hostile image */
	st->cfg[PCI_CAPABILITY_LIST] = 0x04;
	st->msix[0].ctrl = 0xfffffff0;
	pci_device_restore(&td->pci, st);

	cr_assert_eq(cf8_read(DEVFN, PCI_VENDOR_ID, 2), 0x1234, "read-only bytes not taken");
	cr_assert_eq(cf8_read(DEVFN, PCI_CAPABILITY_LIST, 1), PCI_CAP_START);
	cr_assert_eq(bar_addr(0), to);
	cr_assert(td->mapped[0]);
	cr_assert_eq(td->mapped_at[0], to);
	cr_assert_eq(mread(table(0, 12), 4), 0, "reserved bits dropped");
	cr_assert_eq(pba(), 1 << 3, "pending bit restored");
	set_control(PCI_MSIX_FLAGS_ENABLE);
	cr_assert_eq(sink.raised, 1, "and delivered when the function is unmasked");
	cr_assert_eq(sink.last_data, 0x63);
	free(st);
}

/* ---- hostile guest ---- */

static uint64_t rnd(void)
{
	return (uint64_t)random() << 31 ^ (uint64_t)random();
}

static void hostile_access(uint64_t base, uint64_t span, bool port)
{
	static const unsigned widths[] = {1, 2, 4, 8};
	unsigned len = widths[rnd() % (port ? 3 : 4)];
	uint64_t addr = base + rnd() % span;
	uint8_t d[8];

	put(d, rnd(), 8);
	if (rnd() % 2)
		(port ? bus_read(&pio, addr, d, len) : bus_read(&mmio, addr, d, len));
	else
		(port ? bus_write(&pio, addr, d, len) : bus_write(&mmio, addr, d, len));
}

Test(pci, hostile_guest_never_crashes_the_bus)
{
	srandom(20261121);
	for (int i = 0; i < 20000; i++) {
		switch (rnd() % 6) {
		case 0: /* a random CONFIG_ADDRESS, often a valid one */
			outl(0xcf8,
			     rnd() % 4 ? ca(0, (unsigned)(rnd() % 16), (unsigned)rnd() & 0xff)
				       : (uint32_t)rnd(),
			     4);
			break;
		case 1:
			hostile_access(0xcf8, 8, true);
			break;
		case 2:
			hostile_access(ECAM, rnd() % 2 ? 0x9000 : PCI_ECAM_BUS_SIZE, false);
			break;
		case 3:
			pci_msix_raise(&td->pci, (unsigned)(rnd() % (NVEC + 2)));
			break;
		default: /* wherever the BARs are now */
			hostile_access(td->pci.bars[rnd() % 2 ? 0 : 2].addr, 0x4000, false);
			break;
		}
	}
	cr_assert_eq(cf8_read(DEVFN, PCI_VENDOR_ID, 4), 0x56781234, "ids intact");
	cr_assert_eq(cf8_read(0, 8, 4) >> 8, PCI_CLASS_BRIDGE_HOST);
	cr_assert_eq(ecam_read(DEVFN, PCI_DEVICE_ID, 2), 0x5678, "ECAM still decodes");
	for (unsigned b = 0; b < PCI_NUM_BARS; b++)
		cr_assert_eq(td->mapped[b], td->pci.bars[b].mapped, "bar_map calls match BAR %u",
			     b);
}
