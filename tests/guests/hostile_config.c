/*
 * hostile_config: attacks the registers rather than the rings. Garbage of
 * every width at every offset of the common configuration, device
 * configuration beyond its size, the gaps of BAR 0, the PCI configuration
 * access capability set up wrong, read-only PCI registers, BARs moved over
 * RAM, over another device, over ECAM and out of the windows, decoding off,
 * and MSI-X tables full of garbage. Nothing of it may hurt the VMM or another
 * device; read-only registers keep their values; after a reset the device
 * works.
 */
#include "gdrv.h"

#include "arch/x86/layout.h"

#define CA(slot, reg) (0x80000000u | (slot) << 11 | (reg))
#define ALL_OK	      (GD_ACK | GD_DRIVER | GD_FEATURES_OK | GD_DRIVER_OK)
#define RAM_PROBE     GD_SCRATCH /* 32 KiB aligned, in RAM, used by nothing else */
#define MSIX_TABLE    0x4000
#define MSIX_PBA      0x5000
#define MSIX_ENABLE   0x8000
#define MSIX_MASKALL  0x4000
#define GARBAGE	      0xa5a5a5a5a5a5a5a5ULL
/*
 * MSI-X garbage: an address outside the LAPIC's, fixed delivery of vector
 * 0xff. Not any garbage: an INIT, SMI or NMI message would stop this very
 * vCPU, which proves nothing about the VMM.
 */
#define MSIX_GARBAGE	0xfffff8fffffff8ffULL
#define BLK_FEATURE_SEG 0x4 /* VIRTIO_BLK_F_SEG_MAX: rng offers no such bit */

static struct gdev rng, blk, blk_ro, net, vsock;

static void wr(uint64_t a, unsigned len, uint64_t v)
{
	if (len == 1)
		gd_w8(a, (uint8_t)v);
	else if (len == 2)
		gd_w16(a, (uint16_t)v);
	else if (len == 4)
		gd_w32(a, (uint32_t)v);
	else
		gd_w64(a, v);
}

static uint64_t rd(uint64_t a, unsigned len)
{
	if (len == 1)
		return gd_r8(a);
	if (len == 2)
		return gd_r16(a);
	if (len == 4)
		return gd_r32(a);
	return gd_r64(a);
}

/* 100: every width at every offset of common config and past its end, but the status byte. */
static uint32_t common_garbage(void)
{
	uint64_t df;

	gd_step(100, 0);
	gd_reset(&rng);
	gd_w32(rng.common + GD_DFSELECT, 0);
	df = gd_r32(rng.common + GD_DF);
	for (unsigned len = 1; len <= 8; len *= 2)
		for (unsigned off = 0; off < GD_COMMON_LEN + 8; off++)
			if (len != 1 || off != GD_STATUS)
				wr(rng.common + off, len, GARBAGE);
	if (gd_r16(rng.common + GD_NUMQ) != 1)
		return HOSTILE_FAIL(100, 1);
	if (gd_status(&rng) != 0)
		return HOSTILE_FAIL(100, 2);
	gd_w32(rng.common + GD_DFSELECT, 0);
	if (gd_r32(rng.common + GD_DF) != df)
		return HOSTILE_FAIL(100, 3);
	gd_w16(rng.common + GD_QSELECT, 0);
	if (gd_r16(rng.common + GD_QNOFF) != 0 || gd_r16(rng.common + GD_QENABLE) != 0)
		return HOSTILE_FAIL(100, 4);
	if (rd(rng.common + GD_COMMON_LEN, 4) != 0 || rd(rng.common + 0x3c, 8) != 0)
		return HOSTILE_FAIL(100, 5);
	return gd_good(&rng) == 0 ? 0 : HOSTILE_FAIL(100, 6);
}

/* 101: a status byte of garbage (DRIVER_OK without FEATURES_OK among it). */
static uint32_t status_garbage(void)
{
	gd_step(101, HOSTILE_RNG);
	gd_reset(&rng);
	gd_set_status(&rng, 0xa5);
	if (!(gd_status(&rng) & GD_NEEDS_RESET))
		return HOSTILE_FAIL(101, 1);
	gd_set_status(&rng, 0xff); /* more of it: logged once */
	return gd_good(&rng) == 0 ? 0 : HOSTILE_FAIL(101, 2);
}

/* 102: device configuration read and written beyond its size, at every width. */
static uint32_t device_config(void)
{
	gd_step(102, 0);
	for (unsigned len = 1; len <= 8; len *= 2) {
		wr(blk.device + 56, len, GARBAGE);
		wr(blk.device + 60, len, GARBAGE);
		wr(blk.device + 0x1000 - len, len, GARBAGE);
		wr(rng.bar + 0x2000, len, GARBAGE); /* rng has no device configuration */
		if (rd(rng.bar + 0x2000, len) != 0 || rd(blk.device + 60, len) != 0)
			return HOSTILE_FAIL(102, 1);
	}
	if (gd_r64(blk.device) != HOSTILE_BLK_SECTORS ||
	    gd_r64(blk_ro.device) != HOSTILE_BLK_RO_SECTORS)
		return HOSTILE_FAIL(102, 2);
	if (gd_r64(blk.device + 56) != 1) /* write_zeroes_may_unmap, then nothing */
		return HOSTILE_FAIL(102, 3);
	if (gd_r64(net.device + 8) != 1 || gd_r64(vsock.device) != HOSTILE_GUEST_CID)
		return HOSTILE_FAIL(102, 4);
	return gd_works(&blk) == 0 ? 0 : HOSTILE_FAIL(102, 5);
}

/* 103: the ISR, the notification area at odd widths, and the gaps of BAR 0. */
static uint32_t bar_gaps(void)
{
	static const uint32_t gaps[] = {0x40,	0x1004, 0x2000, 0x3004,
					0x3ff8, 0x4020, 0x5008, 0x7ff8};

	gd_step(103, 0);
	if (gd_good(&rng) != 0)
		return HOSTILE_FAIL(103, 1);
	for (unsigned len = 1; len <= 8; len *= 2) {
		wr(rng.isr, len, GARBAGE);
		wr(rng.notify_base + 1, len, GARBAGE); /* kicks through the slow path */
		wr(rng.notify_base, len, 0);
		for (unsigned i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
			wr(rng.bar + gaps[i], len, GARBAGE);
			if (rd(rng.bar + gaps[i], len) != 0)
				return HOSTILE_FAIL(103, 2);
		}
	}
	if (gd_r8(rng.isr + 1) != 0 || gd_status(&rng) != ALL_OK)
		return HOSTILE_FAIL(103, 3);
	return gd_works(&rng) == 0 ? 0 : HOSTILE_FAIL(103, 4);
}

/* 104, 105, 106, 107: registers of queues that do not exist, bad vectors, frozen queues. */
static uint32_t queue_registers(void)
{
	gd_step(104, 0);
	gd_negotiate(&rng, 0);
	for (unsigned sel = 1; sel < 0x10000; sel = sel * 3 + 1) {
		gd_w16(rng.common + GD_QSELECT, (uint16_t)sel);
		gd_w16(rng.common + GD_QSIZE, 16);
		gd_w64(rng.common + GD_QDESC, 0x4000);
		gd_w16(rng.common + GD_QENABLE, 1);
		if (gd_r16(rng.common + GD_QSIZE) != 0 || gd_r64(rng.common + GD_QDESC) != 0)
			return HOSTILE_FAIL(104, 1);
	}
	if (gd_status(&rng) & GD_NEEDS_RESET)
		return HOSTILE_FAIL(104, 2);
	gd_step(105, 0);
	gd_w16(rng.common + GD_MSIX, 99);
	gd_w16(rng.common + GD_QSELECT, 0);
	gd_w16(rng.common + GD_QMSIX, 0xfffe);
	if (gd_r16(rng.common + GD_MSIX) != GD_NO_VECTOR ||
	    gd_r16(rng.common + GD_QMSIX) != GD_NO_VECTOR)
		return HOSTILE_FAIL(105, 1);
	gd_step(106, 0);
	if (gd_setup(&rng) != 0)
		return HOSTILE_FAIL(106, 1);
	gd_w16(rng.common + GD_QSELECT, 0);
	gd_w16(rng.common + GD_QSIZE, 2);
	gd_w64(rng.common + GD_QDESC, 0xfffffffffffff000ULL);
	if (gd_r16(rng.common + GD_QSIZE) != rng.q[0].size ||
	    gd_r64(rng.common + GD_QDESC) != rng.q[0].desc || gd_works(&rng) != 0)
		return HOSTILE_FAIL(106, 2);
	gd_step(107, 0);
	gd_w32(rng.common + GD_DFSELECT, 0xffffffff);
	gd_w32(rng.common + GD_GFSELECT, 7);
	gd_w32(rng.common + GD_GF, 0xffffffff);
	if (gd_r32(rng.common + GD_DF) != 0 || gd_r32(rng.common + GD_GF) != 0)
		return HOSTILE_FAIL(107, 1);
	return gd_works(&rng) == 0 ? 0 : HOSTILE_FAIL(107, 2);
}

/* The PCI configuration access capability: bar, offset, length, then data. */
static void cap_window(uint8_t bar, uint32_t off, uint32_t len)
{
	gd_cfg_write(rng.slot, rng.cfg_cap + 4u, bar, 1);
	gd_cfg_write(rng.slot, rng.cfg_cap + 8u, off, 4);
	gd_cfg_write(rng.slot, rng.cfg_cap + 12u, len, 4);
}

/* 108: the window read right, then set up wrong: nothing may be reached through it. */
static uint32_t cfg_cap(void)
{
	static const uint32_t bad[][3] = {
	    {5, 0x12, 2},   {0, 0x12, 3},	{0, 0x13, 2}, {0, 0x7ffe, 4},
	    {0, 0x8000, 4}, {0, 0xfffffffc, 4}, {0, 0x12, 0}, {0, 0x12, 0xffffffff},
	};

	gd_step(108, 0);
	cap_window(0, GD_NUMQ, 2);
	gd_cfg_write(rng.slot, rng.cfg_cap + 16u, 0, 4);
	if (gd_cfg_read(rng.slot, rng.cfg_cap + 16u, 2) != 1)
		return HOSTILE_FAIL(108, 1);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cap_window((uint8_t)bad[i][0], bad[i][1], bad[i][2]);
		gd_cfg_write(rng.slot, rng.cfg_cap + 16u, 0x5a5a5a5a, 4);
		if (gd_cfg_read(rng.slot, rng.cfg_cap + 16u, 4) != 0x5a5a5a5a)
			return HOSTILE_FAIL(108, 2 + i);
	}
	/* Through a right window, a write reaches the register: select a queue that is not. */
	cap_window(0, GD_QSELECT, 2);
	gd_cfg_write(rng.slot, rng.cfg_cap + 16u, 7, 4);
	if (gd_r16(rng.common + GD_QSELECT) != 7)
		return HOSTILE_FAIL(108, 20);
	return gd_good(&rng) == 0 ? 0 : HOSTILE_FAIL(108, 21);
}

/* 109: read-only configuration registers stay; odd widths and bad addresses on 0xCF8/0xCFC. */
static uint32_t pci_readonly(void)
{
	uint32_t id = gd_cfg_read(rng.slot, 0, 4), class = gd_cfg_read(rng.slot, 8, 4);
	uint32_t caps = gd_cfg_read(rng.slot, 0x34, 4), hdr = gd_cfg_read(rng.slot, 0x0c, 4);

	gd_step(109, 0);
	for (unsigned reg = 0; reg < 0x10; reg += 4)
		if (reg != 4) /* the command register is writable; it is checked below */
			gd_cfg_write(rng.slot, reg, 0xffffffff, 4);
	gd_cfg_write(rng.slot, 0x34, 0, 4);
	gd_cfg_write(rng.slot, 0x3c, 0xffffffff, 4);
	if (gd_cfg_read(rng.slot, 0, 4) != id || gd_cfg_read(rng.slot, 8, 4) != class ||
	    gd_cfg_read(rng.slot, 0x34, 4) != caps ||
	    (gd_cfg_read(rng.slot, 0x0c, 4) & 0xffffff00) != (hdr & 0xffffff00))
		return HOSTILE_FAIL(109, 1);
	if ((gd_cfg_read(rng.slot, 0x3c, 4) >> 8) != 0) /* interrupt pin 0: no INTx */
		return HOSTILE_FAIL(109, 2);
	gd_outl(PORT_PCI_CONFIG_ADDRESS, CA(rng.slot, 0) | 1u << 16); /* bus 1 */
	if (gd_inl(PORT_PCI_CONFIG_DATA) != 0xffffffff)
		return HOSTILE_FAIL(109, 3);
	gd_outl(PORT_PCI_CONFIG_ADDRESS, CA(rng.slot, 0) | 3u << 8); /* function 3 */
	gd_outl(PORT_PCI_CONFIG_DATA, 0);
	if (gd_inl(PORT_PCI_CONFIG_DATA) != 0xffffffff)
		return HOSTILE_FAIL(109, 4);
	gd_outl(PORT_PCI_CONFIG_ADDRESS, CA(rng.slot, 0));
	gd_outw(PORT_PCI_CONFIG_DATA + 3, 0); /* straddles the data port: nobody takes it */
	gd_outl(PORT_PCI_CONFIG_DATA + 2, 0);
	gd_outb(PORT_PCI_CONFIG_ADDRESS + 1, 0xff); /* narrow: not CONFIG_ADDRESS */
	if (gd_inl(PORT_PCI_CONFIG_DATA) != id || gd_inw(PORT_PCI_CONFIG_DATA + 3) != 0xffff)
		return HOSTILE_FAIL(109, 5);
	/* Extended configuration space, through ECAM only: nothing there. */
	gd_w32(GUEST_PCI_ECAM + (rng.slot << 15) + 0x100, 0xffffffff);
	gd_w32(GUEST_PCI_ECAM + (rng.slot << 15) + 0xffc, 0xffffffff);
	gd_w64(GUEST_PCI_ECAM + (rng.slot << 15) + 0x200, GARBAGE);
	if (gd_r32(GUEST_PCI_ECAM + (rng.slot << 15) + 0x100) != 0 ||
	    gd_r32(GUEST_PCI_ECAM + (rng.slot << 15) + 0xffc) != 0)
		return HOSTILE_FAIL(109, 6);
	return gd_works(&rng) == 0 ? 0 : HOSTILE_FAIL(109, 7);
}

static void bar_set(const struct gdev *d, uint64_t addr)
{
	gd_cfg_write(d->slot, 0x10, (uint32_t)addr, 4);
	gd_cfg_write(d->slot, 0x14, (uint32_t)(addr >> 32), 4);
}

static uint64_t bar_get(const struct gdev *d)
{
	return (gd_cfg_read(d->slot, 0x10, 4) & ~0xfULL) | (uint64_t)gd_cfg_read(d->slot, 0x14, 4)
							       << 32;
}

/* The rng's BAR back where it was: it decodes, its ioeventfd follows, it works. */
static uint32_t bar_back(unsigned id, uint64_t home)
{
	bar_set(&rng, home);
	if (bar_get(&rng) != home || gd_rescan(&rng) != 0 || gd_r16(rng.common + GD_NUMQ) != 1)
		return HOSTILE_FAIL(id, 10);
	return gd_good(&rng) == 0 ? 0 : HOSTILE_FAIL(id, 11);
}

/* 110: the BAR over RAM: RAM stays RAM, the device stops decoding. */
static uint32_t bar_over_ram(uint64_t home)
{
	gd_step(110, 0);
	gd_w64(RAM_PROBE + 0x100, GARBAGE);
	gd_w64(RAM_PROBE + GD_NUMQ, GARBAGE);
	bar_set(&rng, RAM_PROBE);
	if (gd_r64(RAM_PROBE + GD_NUMQ) != GARBAGE || gd_r32(home + GD_NUMQ) != 0xffffffff)
		return HOSTILE_FAIL(110, 1);
	/* A "notification" and a "reset": plain stores into RAM now. */
	gd_w16(RAM_PROBE + 0x3000, 0x1234);
	gd_w8(RAM_PROBE + GD_STATUS, 0);
	if (gd_r16(RAM_PROBE + 0x3000) != 0x1234 || gd_r8(RAM_PROBE + GD_STATUS) != 0 ||
	    gd_r64(RAM_PROBE + 0x100) != GARBAGE)
		return HOSTILE_FAIL(110, 2);
	return bar_back(110, home);
}

/* 111: the BAR over another device's: that one keeps its registers and works. */
static uint32_t bar_over_blk(uint64_t home)
{
	gd_step(111, 0);
	bar_set(&rng, blk.bar);
	gd_w32(blk.common + GD_DFSELECT, 0);
	if (!(gd_r32(blk.common + GD_DF) & BLK_FEATURE_SEG) || gd_works(&blk) != 0)
		return HOSTILE_FAIL(111, 1);
	if (gd_r64(blk.device) != HOSTILE_BLK_SECTORS)
		return HOSTILE_FAIL(111, 2);
	return bar_back(111, home);
}

/* 112: over ECAM, the LAPIC, out of the 32-bit window, in the upper half: nothing decodes. */
static uint32_t bar_elsewhere(uint64_t home)
{
	static const uint64_t where[] = {GUEST_PCI_ECAM, 0xfee00000ULL, 0xfffe0000ULL,
					 0x1c0000000ULL, 0x8000000000000000ULL};

	gd_step(112, 0);
	for (unsigned i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		bar_set(&rng, where[i]);
		if (bar_get(&rng) != where[i] || gd_r32(home + GD_NUMQ) != 0xffffffff)
			return HOSTILE_FAIL(112, 1 + i);
		if (gd_r32(GUEST_PCI_ECAM) != 0x00081b36) /* the host bridge still answers */
			return HOSTILE_FAIL(112, 10 + i);
	}
	bar_set(&rng, 0xffffffffffffffffULL); /* sizing */
	if (bar_get(&rng) != ~0x7fffULL)
		return HOSTILE_FAIL(112, 20);
	return bar_back(112, home);
}

/* 113: decoding off: the registers vanish and kicks go nowhere; on again, all is back. */
static uint32_t decode_off(uint64_t home)
{
	gd_step(113, 0);
	if (gd_setup(&rng) != 0)
		return HOSTILE_FAIL(113, 1);
	gd_cfg_write(rng.slot, 4, 0, 2);
	gd_kick(&rng, 0);
	if (gd_r32(home + GD_NUMQ) != 0xffffffff)
		return HOSTILE_FAIL(113, 2);
	gd_cfg_write(rng.slot, 4, 6, 2);
	if (gd_status(&rng) != ALL_OK || gd_works(&rng) != 0)
		return HOSTILE_FAIL(113, 3);
	return 0;
}

static void msix_control(uint16_t v)
{
	gd_cfg_write(rng.slot, rng.msix_cap + 2u, v, 2);
}

/* 114: garbage in the MSI-X table, writes to the PBA and past the table. */
static uint32_t msix_garbage(void)
{
	uint64_t t = rng.bar + MSIX_TABLE;

	gd_step(114, 0);
	for (unsigned len = 1; len <= 8; len *= 2)
		for (unsigned off = 0; off < 0x30; off += len)
			wr(t + off, len, MSIX_GARBAGE);
	gd_w64(t + 12, MSIX_GARBAGE); /* straddles entries 0 and 1 */
	gd_w64(rng.bar + MSIX_PBA, GARBAGE);
	if (gd_r32(t + 12) != 1 || gd_r32(t + 28) != 1) /* vector control: the mask bit only */
		return HOSTILE_FAIL(114, 1);
	if (gd_r64(rng.bar + MSIX_PBA) != 0 || gd_r32(t + 0x20) != 0)
		return HOSTILE_FAIL(114, 2);
	/* Masked, enabled: a queue interrupt lands in the PBA. */
	gd_w32(t + 28, 1);
	msix_control(MSIX_ENABLE);
	if (gd_setup(&rng) != 0)
		return HOSTILE_FAIL(114, 3);
	gd_w16(rng.common + GD_QSELECT, 0);
	gd_w16(rng.common + GD_QMSIX, 1);
	gd_w16(rng.common + GD_MSIX, 0);
	if (gd_works(&rng) != 0)
		return HOSTILE_FAIL(114, 4);
	/* The device thread raises the vector just after the used entry: wait a little. */
	for (unsigned i = 0; i < 100000; i++)
		if (gd_r64(rng.bar + MSIX_PBA) & 2)
			return 0;
	return HOSTILE_FAIL(114, 5);
}

/* 115: unmasked garbage messages fire (queue and configuration interrupts) into nowhere. */
static uint32_t msix_fire(void)
{
	uint64_t t = rng.bar + MSIX_TABLE;

	gd_step(115, HOSTILE_RNG);
	gd_w32(t + 12, 0);
	gd_w32(t + 28, 0); /* the pending one goes out now */
	if (gd_r64(rng.bar + MSIX_PBA) != 0 || gd_works(&rng) != 0)
		return HOSTILE_FAIL(115, 1);
	msix_control(MSIX_ENABLE | MSIX_MASKALL);
	msix_control(MSIX_ENABLE);
	gd_set_status(&rng, GD_ACK); /* NEEDS_RESET, and a configuration interrupt */
	/* 4.1.4.5: the configuration bit is set in the ISR, MSI-X or not. */
	if (!gd_wait_needs_reset(&rng) || !(gd_r8(rng.isr) & 2))
		return HOSTILE_FAIL(115, 2);
	msix_control(0);
	gd_w32(t + 12, 1);
	gd_w32(t + 28, 1);
	return gd_good(&rng) == 0 ? 0 : HOSTILE_FAIL(115, 3);
}

/*
 * 116: break and reset the device in a loop, two register writes a round: the
 * runner checks the host's log stops at the device's budget.
 */
static uint32_t log_flood(void)
{
	gd_step(116, HOSTILE_STEP_UNCHECKED);
	for (unsigned i = 0; i < HOSTILE_FLOOD_ROUNDS; i++) {
		gd_set_status(&rng, 0xa5); /* DRIVER_OK without FEATURES_OK */
		if (!(gd_status(&rng) & GD_NEEDS_RESET))
			return HOSTILE_FAIL(116, 1);
		gd_set_status(&rng, 0);
	}
	return gd_good(&rng) == 0 ? 0 : HOSTILE_FAIL(116, 2);
}

static uint32_t find_devices(void)
{
	if (gd_find(&rng, HOSTILE_RNG, 0, GD_DEV_BASE) != 0 ||
	    gd_find(&blk, HOSTILE_BLK, 0, GD_DEV_BASE + GD_DEV_SIZE) != 0 ||
	    gd_find(&blk_ro, HOSTILE_BLK, 1, GD_DEV_BASE + 2 * GD_DEV_SIZE) != 0 ||
	    gd_find(&net, HOSTILE_NET, 0, GD_DEV_BASE + 3 * GD_DEV_SIZE) != 0 ||
	    gd_find(&vsock, HOSTILE_VSOCK, 0, GD_DEV_BASE + 4 * GD_DEV_SIZE) != 0)
		return HOSTILE_FAIL(0, 1);
	if (rng.cfg_cap == 0 || rng.msix_cap == 0 || blk.device == 0)
		return HOSTILE_FAIL(0, 2);
	return gd_good(&blk) == 0 ? 0 : HOSTILE_FAIL(0, 3);
}

/* One vCPU: cpu is 0. */
uint32_t guest_main(__attribute__((unused)) uint64_t cpu)
{
	uint32_t (*const plain[])(void) = {common_garbage,  status_garbage, device_config, bar_gaps,
					   queue_registers, cfg_cap,	    pci_readonly};
	uint32_t (*const moves[])(uint64_t) = {bar_over_ram, bar_over_blk, bar_elsewhere,
					       decode_off};
	uint32_t r = find_devices();
	uint64_t home = rng.bar;

	for (unsigned i = 0; r == 0 && i < sizeof(plain) / sizeof(plain[0]); i++)
		r = plain[i]();
	for (unsigned i = 0; r == 0 && i < sizeof(moves) / sizeof(moves[0]); i++)
		r = moves[i](home);
	if (r == 0)
		r = msix_garbage();
	if (r == 0)
		r = msix_fire();
	return r != 0 ? r : log_flood();
}
