/*
 * A virtio-pci driver for unit tests, written from the VIRTIO 1.2 spec
 * (4.1 and 2.7), independently of src/virtio: it finds the device through
 * ECAM, walks the vendor capabilities, negotiates through the common
 * configuration and lays out split rings in a real guest_memory.
 *
 * Everything is static inline so that each test uses what it needs.
 */
#ifndef TABIQUE_TESTS_VDRIVER_H
#define TABIQUE_TESTS_VDRIVER_H

#include <criterion/criterion.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "bus/bus.h"
#include "bus/pci.h"
#include "vmm/memory.h"

#define VD_ECAM	    LAYOUT_PCI_ECAM
#define VD_MEM_SIZE (16ULL << 20)

/* Split ring layout (2.7). */
#define VD_F_NEXT   1
#define VD_F_WRITE  2
#define VD_QSIZE    16
#define VD_RING(q)  (0x100000ULL + (uint64_t)(q)*0x10000) /* desc; avail +0x1000; used +0x2000 */
#define VD_DESC(q)  VD_RING(q)
#define VD_AVAIL(q) (VD_RING(q) + 0x1000)
#define VD_USED(q)  (VD_RING(q) + 0x2000)
#define VD_BUF	    0x400000ULL

/* Common configuration offsets (4.1.4.3), spelled out here on purpose. */
#define VD_DFSELECT 0x00
#define VD_DF	    0x04
#define VD_GFSELECT 0x08
#define VD_GF	    0x0c
#define VD_MSIX	    0x10
#define VD_NUMQ	    0x12
#define VD_STATUS   0x14
#define VD_GEN	    0x15
#define VD_QSELECT  0x16
#define VD_QSIZE_R  0x18
#define VD_QMSIX    0x1a
#define VD_QENABLE  0x1c
#define VD_QNOFF    0x1e
#define VD_QDESC    0x20
#define VD_QAVAIL   0x28
#define VD_QUSED    0x30

#define VD_ACK	       1
#define VD_DRIVER      2
#define VD_DRIVER_OK   4
#define VD_FEATURES_OK 8
#define VD_NEEDS_RESET 0x40
#define VD_VERSION_1   (1ULL << 32)

struct vdrv {
	struct bus *mmio;
	struct guest_memory *mem;
	unsigned devfn;
	uint64_t bar;
	uint32_t common, notify, isr, device; /* offsets in the BAR */
	uint32_t notify_mult;
	unsigned pcicfg; /* configuration offset of the PCI access capability */
	unsigned msix;	 /* configuration offset of the MSI-X capability */
	uint16_t avail_idx[8];
	uint16_t next_desc[8];
};

static inline uint64_t vd_mread(struct vdrv *d, uint64_t addr, unsigned len)
{
	uint8_t b[8];
	uint64_t v = 0;

	bus_read(d->mmio, addr, b, len);
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static inline void vd_mwrite(struct vdrv *d, uint64_t addr, uint64_t v, unsigned len)
{
	uint8_t b[8];

	for (unsigned i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	bus_write(d->mmio, addr, b, len);
}

static inline uint32_t vd_cfg_read(struct vdrv *d, unsigned reg, unsigned len)
{
	return (uint32_t)vd_mread(d, VD_ECAM + ((uint64_t)d->devfn << 12) + reg, len);
}

static inline void vd_cfg_write(struct vdrv *d, unsigned reg, uint32_t v, unsigned len)
{
	vd_mwrite(d, VD_ECAM + ((uint64_t)d->devfn << 12) + reg, v, len);
}

/* The first vendor capability of cfg_type type (4.1.4), or 0. */
static inline unsigned vd_find_cap(struct vdrv *d, uint8_t type)
{
	unsigned at = vd_cfg_read(d, 0x34, 1), guard = 0;

	while (at != 0 && guard++ < 48) {
		if (vd_cfg_read(d, at, 1) == 0x09 && vd_cfg_read(d, at + 3, 1) == type)
			return at;
		at = vd_cfg_read(d, at + 1, 1);
	}
	return 0;
}

static inline unsigned vd_find_msix(struct vdrv *d)
{
	unsigned at = vd_cfg_read(d, 0x34, 1), guard = 0;

	while (at != 0 && guard++ < 48) {
		if (vd_cfg_read(d, at, 1) == 0x11)
			return at;
		at = vd_cfg_read(d, at + 1, 1);
	}
	return 0;
}

/* Enables decoding and bus mastering and finds every structure, as virtio_pci_modern does. */
static inline void vd_probe(struct vdrv *d, struct bus *mmio, struct guest_memory *mem,
			    unsigned devfn)
{
	unsigned c;

	memset(d, 0, sizeof(*d));
	d->mmio = mmio;
	d->mem = mem;
	d->devfn = devfn;
	cr_assert_eq(vd_cfg_read(d, 0, 2), 0x1af4, "virtio vendor id");
	d->bar = vd_cfg_read(d, 0x10, 4) & ~0xfull;
	d->bar |= (uint64_t)vd_cfg_read(d, 0x14, 4) << 32;
	vd_cfg_write(d, 0x04, 0x0006, 2); /* memory space, bus master */
	cr_assert_neq(c = vd_find_cap(d, 1), 0, "common cfg");
	d->common = vd_cfg_read(d, c + 8, 4);
	cr_assert_neq(c = vd_find_cap(d, 2), 0, "notify cfg");
	d->notify = vd_cfg_read(d, c + 8, 4);
	d->notify_mult = vd_cfg_read(d, c + 16, 4);
	cr_assert_neq(c = vd_find_cap(d, 3), 0, "isr cfg");
	d->isr = vd_cfg_read(d, c + 8, 4);
	if ((c = vd_find_cap(d, 4)) != 0)
		d->device = vd_cfg_read(d, c + 8, 4);
	cr_assert_neq(d->pcicfg = vd_find_cap(d, 5), 0, "pci cfg access cap");
	cr_assert_neq(d->msix = vd_find_msix(d), 0, "MSI-X");
}

static inline uint64_t vd_common_read(struct vdrv *d, unsigned off, unsigned len)
{
	return vd_mread(d, d->bar + d->common + off, len);
}

static inline void vd_common_write(struct vdrv *d, unsigned off, uint64_t v, unsigned len)
{
	vd_mwrite(d, d->bar + d->common + off, v, len);
}

static inline uint8_t vd_status(struct vdrv *d)
{
	return (uint8_t)vd_common_read(d, VD_STATUS, 1);
}

static inline void vd_set_status(struct vdrv *d, uint8_t s)
{
	vd_common_write(d, VD_STATUS, s, 1);
}

static inline uint64_t vd_device_features(struct vdrv *d)
{
	vd_common_write(d, VD_DFSELECT, 0, 4);
	uint64_t lo = vd_common_read(d, VD_DF, 4);
	vd_common_write(d, VD_DFSELECT, 1, 4);
	return lo | vd_common_read(d, VD_DF, 4) << 32;
}

static inline void vd_write_features(struct vdrv *d, uint64_t f)
{
	vd_common_write(d, VD_GFSELECT, 0, 4);
	vd_common_write(d, VD_GF, (uint32_t)f, 4);
	vd_common_write(d, VD_GFSELECT, 1, 4);
	vd_common_write(d, VD_GF, f >> 32, 4);
}

/* 3.1.1 steps 1-6; returns the status read back after FEATURES_OK. */
static inline uint8_t vd_negotiate(struct vdrv *d, uint64_t features)
{
	vd_set_status(d, 0);
	vd_set_status(d, VD_ACK);
	vd_set_status(d, VD_ACK | VD_DRIVER);
	vd_write_features(d, features);
	vd_set_status(d, VD_ACK | VD_DRIVER | VD_FEATURES_OK);
	return vd_status(d);
}

/* MSI-X on, every vector unmasked and aimed at the LAPIC with data = 0x40 + vector. */
static inline void vd_enable_msix(struct vdrv *d, unsigned nvec)
{
	uint32_t table = vd_cfg_read(d, d->msix + 4, 4);
	uint64_t base = d->bar + (table & ~7u);

	vd_cfg_write(d, d->msix + 2, 0x8000, 2);
	for (unsigned v = 0; v < nvec; v++) {
		vd_mwrite(d, base + 16 * v, 0xfee00000, 4);
		vd_mwrite(d, base + 16 * v + 4, 0, 4);
		vd_mwrite(d, base + 16 * v + 8, 0x40 + v, 4);
		vd_mwrite(d, base + 16 * v + 12, 0, 4);
	}
}

static inline void vd_put(struct vdrv *d, uint64_t gpa, uint64_t v, unsigned len)
{
	cr_assert_eq(memory_write(d->mem, gpa, &v, len), 0);
}

static inline uint64_t vd_get(struct vdrv *d, uint64_t gpa, unsigned len)
{
	uint64_t v = 0;

	cr_assert_eq(memory_read(d->mem, gpa, &v, len), 0);
	return v;
}

/* 4.1.5.1.3: select, size, vector, rings, enable. */
static inline void vd_setup_queue(struct vdrv *d, unsigned q, uint16_t size, uint16_t vector)
{
	vd_common_write(d, VD_QSELECT, q, 2);
	cr_assert_geq(vd_common_read(d, VD_QSIZE_R, 2), size, "queue %u too small", q);
	vd_common_write(d, VD_QSIZE_R, size, 2);
	vd_common_write(d, VD_QMSIX, vector, 2);
	vd_common_write(d, VD_QDESC, VD_DESC(q), 4);
	vd_common_write(d, VD_QDESC + 4, 0, 4);
	vd_common_write(d, VD_QAVAIL, VD_AVAIL(q), 4);
	vd_common_write(d, VD_QAVAIL + 4, 0, 4);
	vd_common_write(d, VD_QUSED, VD_USED(q), 4);
	vd_common_write(d, VD_QUSED + 4, 0, 4);
	vd_common_write(d, VD_QENABLE, 1, 2);
	d->avail_idx[q] = 0;
	d->next_desc[q] = 0;
}

/* Puts a chain of n buffers (gpa, len, writable) on queue q's available ring; no notify. */
static inline uint16_t vd_add_chain(struct vdrv *d, unsigned q, const uint64_t *gpa,
				    const uint32_t *len, const bool *writable, unsigned n)
{
	uint16_t head = d->next_desc[q];

	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % VD_QSIZE);
		uint64_t desc = VD_DESC(q) + 16ULL * idx;
		uint16_t flags =
		    (uint16_t)((i + 1 < n ? VD_F_NEXT : 0) | (writable[i] ? VD_F_WRITE : 0));

		vd_put(d, desc, gpa[i], 8);
		vd_put(d, desc + 8, len[i], 4);
		vd_put(d, desc + 12, flags, 2);
		vd_put(d, desc + 14, (head + i + 1) % VD_QSIZE, 2);
	}
	d->next_desc[q] = (uint16_t)((head + n) % VD_QSIZE);
	vd_put(d, VD_AVAIL(q) + 4 + 2ULL * (d->avail_idx[q] % VD_QSIZE), head, 2);
	d->avail_idx[q]++;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	vd_put(d, VD_AVAIL(q) + 2, d->avail_idx[q], 2);
	return head;
}

static inline void vd_notify(struct vdrv *d, unsigned q)
{
	uint16_t off;

	vd_common_write(d, VD_QSELECT, q, 2);
	off = (uint16_t)vd_common_read(d, VD_QNOFF, 2);
	vd_mwrite(d, d->bar + d->notify + (uint64_t)off * d->notify_mult, q, 2);
}

static inline uint16_t vd_used_idx(struct vdrv *d, unsigned q)
{
	return (uint16_t)vd_get(d, VD_USED(q) + 2, 2);
}

/* Used ring element i: id and len. */
static inline void vd_used_elem(struct vdrv *d, unsigned q, unsigned i, uint32_t *id, uint32_t *len)
{
	uint64_t e = VD_USED(q) + 4 + 8ULL * (i % VD_QSIZE);

	*id = (uint32_t)vd_get(d, e, 4);
	*len = (uint32_t)vd_get(d, e + 4, 4);
}

#endif
