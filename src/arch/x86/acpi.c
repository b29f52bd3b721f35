#include "arch/x86/acpi.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/aml.h"

/* Tables are copied byte for byte into the guest, which is little-endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "host must be little-endian");

#define ACPI_OEM_ID	  "TBQUE "
#define ACPI_OEM_TABLE_ID "TABIQUE "
#define ACPI_CREATOR_ID	  "TBQE"
#define ACPI_HYPERVISOR	  "TABIQUE"
#define ACPI_ALIGN	  16 /* RSDP must be 16-aligned; 8 is enough for the rest */

/* Table revisions we follow: ACPI 6.3. */
#define ACPI_RSDP_REV	2
#define ACPI_XSDT_REV	1
#define ACPI_FADT_REV	6
#define ACPI_FADT_MINOR 3
#define ACPI_MADT_REV	5
#define ACPI_DSDT_REV	2 /* 64-bit AML integers */
#define ACPI_SCI_IRQ	9 /* never raised with hardware-reduced ACPI */

#define ACPI_GAS_SYSTEM_IO 1
#define ACPI_GAS_ACCESS_8  1

/* FADT IAPC_BOOT_ARCH. */
#define ACPI_BOOT_8042	      (1u << 1)
#define ACPI_BOOT_NO_VGA      (1u << 2)
#define ACPI_BOOT_NO_MSI      (1u << 3) /* never set: virtio-pci uses MSI-X */
#define ACPI_BOOT_NO_CMOS_RTC (1u << 5)

/* FADT flags. */
#define ACPI_FADT_WBINVD	(1u << 0)
#define ACPI_FADT_PWR_BUTTON	(1u << 4) /* no fixed-feature power button */
#define ACPI_FADT_SLP_BUTTON	(1u << 5)
#define ACPI_FADT_RESET_REG_SUP (1u << 10)
#define ACPI_FADT_HW_REDUCED	(1u << 20)

/* PCI: the MCFG (PCI Firmware 3.2, 4.1.2) and mechanism #1's ports. */
#define ACPI_MCFG_REV	     1
#define ACPI_PCI_ECAM_SIZE   0x100000ULL /* one bus */
#define ACPI_PCI_CONFIG_PORT 0xcf8
#define ACPI_PCI_CONFIG_LEN  8

/* Notify value of a button press (ACPI 6.x, 4.8.3.1.1.1). */
#define ACPI_NOTIFY_BUTTON_PRESSED 0x80

#define ACPI_MADT_LAPIC	  0
#define ACPI_MADT_IOAPIC  1
#define ACPI_MADT_ENABLED 1u

struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* of the first 20 bytes (the ACPI 1.0 part) */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_addr;
	uint32_t length;
	uint64_t xsdt_addr;
	uint8_t ext_checksum; /* of all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

/* Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));

/* Fixed ACPI Description Table, revision 6 (ACPI 6.x, 5.2.9). */
struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
	uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl, x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control, sleep_status;
	char hypervisor_id[8];
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_addr;
	uint32_t flags; /* PCAT_COMPAT clear: there is no 8259 */
} __attribute__((packed));

struct acpi_madt_lapic {
	uint8_t type, length, processor_uid, apic_id;
	uint32_t flags;
} __attribute__((packed));

struct acpi_madt_ioapic {
	uint8_t type, length, id, reserved;
	uint32_t addr;
	uint32_t gsi_base;
} __attribute__((packed));

struct acpi_mcfg {
	struct acpi_header h;
	uint64_t reserved;
} __attribute__((packed));

/* One "configuration space base address allocation structure". */
struct acpi_mcfg_alloc {
	uint64_t base;
	uint16_t segment;
	uint8_t start_bus, end_bus;
	uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP layout");
_Static_assert(sizeof(struct acpi_mcfg) == 44, "MCFG layout");
_Static_assert(sizeof(struct acpi_mcfg_alloc) == 16, "MCFG allocation layout");
_Static_assert(sizeof(struct acpi_header) == 36, "SDT header layout");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6 layout");
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT layout");

/* The caller's buffer, filled front to back; every write goes through acpi_alloc(). */
struct acpi_out {
	uint8_t *buf;
	size_t cap;
	size_t len;
	uint64_t gpa;
};

uint8_t acpi_checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

/* Reserves size zeroed bytes; tables (align 16) or entries (align 1). */
static long acpi_alloc(struct acpi_out *o, size_t size, size_t align)
{
	size_t off = (o->len + align - 1) & ~(align - 1);

	if (off > o->cap || size > o->cap - off)
		return -ENOSPC;
	memset(o->buf + o->len, 0, off + size - o->len);
	o->len = off + size;
	return (long)off;
}

static void acpi_put(struct acpi_out *o, long off, const void *data, size_t len)
{
	memcpy(o->buf + off, data, len);
}

static struct acpi_header acpi_header(const char *sig, uint8_t rev)
{
	struct acpi_header h = {.revision = rev, .oem_revision = 1, .creator_revision = 1};

	memcpy(h.signature, sig, sizeof(h.signature));
	memcpy(h.oem_id, ACPI_OEM_ID, sizeof(h.oem_id));
	memcpy(h.oem_table_id, ACPI_OEM_TABLE_ID, sizeof(h.oem_table_id));
	memcpy(h.creator_id, ACPI_CREATOR_ID, sizeof(h.creator_id));
	return h;
}

/* Closes the table at off: its length runs to the end of the output so far. */
static void acpi_seal(struct acpi_out *o, long off)
{
	uint8_t *t = o->buf + off;
	uint32_t len = (uint32_t)(o->len - (size_t)off);

	memcpy(t + offsetof(struct acpi_header, length), &len, sizeof(len));
	t[offsetof(struct acpi_header, checksum)] = 0;
	t[offsetof(struct acpi_header, checksum)] = acpi_checksum(t, len);
}

/* An ISA device at a fixed I/O range, with an optional ISA IRQ. */
static void acpi_dsdt_isa(struct aml *a, const char *name, const char *hid, uint16_t port,
			  uint8_t nports, uint8_t irq)
{
	size_t dev = aml_device_begin(a, name);
	size_t crs;

	aml_name_eisaid(a, "_HID", hid);
	aml_name_decl(a, "_CRS");
	crs = aml_restemplate_begin(a);
	aml_res_io(a, port, port, 1, nports);
	if (irq)
		aml_res_irq(a, irq, AML_IRQ_ISA);
	aml_restemplate_end(a, crs);
	aml_end(a, dev);
}

/* Linux's pvpanic-mmio driver binds to QEMU0001 and takes its I/O port. */
static void acpi_dsdt_pvpanic(struct aml *a, uint16_t port)
{
	size_t dev = aml_device_begin(a, "PVPN");
	size_t crs, sta;

	aml_name_string(a, "_HID", "QEMU0001");
	aml_name_decl(a, "_CRS");
	crs = aml_restemplate_begin(a);
	aml_res_io(a, port, port, 1, 1);
	aml_restemplate_end(a, crs);
	sta = aml_method_begin(a, "_STA", 0, false);
	aml_return(a);
	aml_int(a, 0x0f); /* present, enabled, shown, functioning */
	aml_end(a, sta);
	aml_end(a, dev);
}

/* The power button as a control-method device: the GED notifies it. */
static void acpi_dsdt_power_button(struct aml *a)
{
	size_t dev = aml_device_begin(a, "PWRB");

	aml_name_eisaid(a, "_HID", "PNP0C0C");
	aml_name_int(a, "_UID", 0);
	aml_end(a, dev);
}

/*
 * _EVT(gsi): Local0 = ESEL; If (Local0 & POWER_BUTTON) { Notify(PWRB, 0x80) }.
 * The selector clears on read, so it is read once and every bit tested on
 * Local0.
 */
static void acpi_dsdt_ged_evt(struct aml *a)
{
	size_t evt = aml_method_begin(a, "_EVT", 1, true);
	size_t branch;

	aml_store(a);
	aml_name(a, "ESEL");
	aml_local(a, 0);
	branch = aml_if_begin(a);
	aml_and(a);
	aml_local(a, 0);
	aml_int(a, ACPI_GED_POWER_BUTTON);
	aml_null_target(a);
	aml_notify(a);
	aml_name(a, "PWRB");
	aml_int(a, ACPI_NOTIFY_BUTTON_PRESSED);
	aml_end(a, branch);
	aml_end(a, evt);
}

/* Hardware-reduced ACPI's way to raise events (ACPI 6.x, 5.6.9): Linux's evged. */
static void acpi_dsdt_ged(struct aml *a, const struct acpi_config *cfg)
{
	size_t dev, crs, field;

	acpi_dsdt_power_button(a);
	dev = aml_device_begin(a, "GED_");
	aml_name_string(a, "_HID", "ACPI0013");
	aml_name_int(a, "_UID", 0);
	aml_name_decl(a, "_CRS");
	crs = aml_restemplate_begin(a);
	aml_res_ext_irq(a, cfg->ged_gsi, AML_IRQ_EDGE);
	aml_restemplate_end(a, crs);
	aml_opregion(a, "EREG", AML_REGION_SYSTEM_IO, cfg->ged_port, 1);
	field = aml_field_begin(a, "EREG", AML_FIELD_BYTE_ACC | AML_FIELD_WRITE_AS_ZEROS);
	aml_field_unit(a, "ESEL", 8);
	aml_end(a, field);
	acpi_dsdt_ged_evt(a);
	aml_end(a, dev);
}

/*
 * The PCI root bridge (PCI Firmware 3.2, 4.1.5): bus 0 only, the config
 * ports it consumes and the MMIO windows its BARs live in. No _PRT: every
 * device uses MSI-X and has no INTx pin, so no routing is better than a
 * wrong one.
 */
static void acpi_dsdt_pci(struct aml *a, const struct acpi_config *cfg)
{
	size_t dev = aml_device_begin(a, "PCI0");
	size_t crs;

	aml_name_eisaid(a, "_HID", "PNP0A08"); /* PCI Express root bridge */
	aml_name_eisaid(a, "_CID", "PNP0A03"); /* PCI root bridge */
	aml_name_int(a, "_SEG", 0);
	aml_name_int(a, "_BBN", 0);
	aml_name_int(a, "_UID", 0);
	aml_name_decl(a, "_CRS");
	crs = aml_restemplate_begin(a);
	aml_res_word_bus(a, 0, 0);
	aml_res_io(a, ACPI_PCI_CONFIG_PORT, ACPI_PCI_CONFIG_PORT, 1, ACPI_PCI_CONFIG_LEN);
	aml_res_dword_mem(a, (uint32_t)cfg->pci_mmio32_base,
			  (uint32_t)(cfg->pci_mmio32_base + cfg->pci_mmio32_size - 1), false);
	if (cfg->pci_mmio64_size)
		aml_res_qword_mem(a, cfg->pci_mmio64_base,
				  cfg->pci_mmio64_base + cfg->pci_mmio64_size - 1, false);
	aml_restemplate_end(a, crs);
	aml_end(a, dev);
}

/*
 * The PCI Firmware spec wants the ECAM reserved by a motherboard resource;
 * Linux ignores the MCFG otherwise ("not reserved in ACPI motherboard
 * resources").
 */
static void acpi_dsdt_ecam(struct aml *a, const struct acpi_config *cfg)
{
	size_t dev = aml_device_begin(a, "ECAM");
	size_t crs;

	aml_name_eisaid(a, "_HID", "PNP0C02");
	aml_name_int(a, "_UID", 0);
	aml_name_decl(a, "_CRS");
	crs = aml_restemplate_begin(a);
	aml_res_mem32_fixed(a, (uint32_t)cfg->pci_ecam_base, ACPI_PCI_ECAM_SIZE, true);
	aml_restemplate_end(a, crs);
	aml_end(a, dev);
}

static void acpi_dsdt_body(struct aml *a, const struct acpi_config *cfg)
{
	size_t pkg, sb;

	/* SLP_TYPa, SLP_TYPb, reserved, reserved. */
	aml_name_decl(a, "\\_S5_");
	pkg = aml_package_begin(a, 4);
	aml_int(a, ACPI_S5_SLP_TYP);
	aml_int(a, ACPI_S5_SLP_TYP);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_end(a, pkg);

	sb = aml_scope_begin(a, "\\_SB_");
	if (cfg->com1_port)
		acpi_dsdt_isa(a, "COM1", "PNP0501", cfg->com1_port, 8, cfg->com1_irq);
	if (cfg->rtc_port)
		acpi_dsdt_isa(a, "RTC_", "PNP0B00", cfg->rtc_port, 2, cfg->rtc_irq);
	if (cfg->pvpanic_port)
		acpi_dsdt_pvpanic(a, cfg->pvpanic_port);
	if (cfg->ged_port)
		acpi_dsdt_ged(a, cfg);
	if (cfg->pci_ecam_base) {
		acpi_dsdt_pci(a, cfg);
		acpi_dsdt_ecam(a, cfg);
	}
	aml_end(a, sb);
}

static long acpi_dsdt(struct acpi_out *o, const struct acpi_config *cfg)
{
	struct acpi_header h = acpi_header("DSDT", ACPI_DSDT_REV);
	long off = acpi_alloc(o, sizeof(h), ACPI_ALIGN);
	struct aml a;

	if (off < 0)
		return off;
	acpi_put(o, off, &h, sizeof(h));
	aml_init(&a, o->buf + o->len, o->cap - o->len);
	acpi_dsdt_body(&a, cfg);
	if (aml_result(&a) < 0)
		return aml_result(&a);
	o->len += a.len;
	acpi_seal(o, off);
	return off;
}

static struct acpi_gas acpi_gas_io8(uint16_t port)
{
	return (struct acpi_gas){
	    .space_id = ACPI_GAS_SYSTEM_IO,
	    .bit_width = 8,
	    .access_size = ACPI_GAS_ACCESS_8,
	    .address = port,
	};
}

static long acpi_fadt(struct acpi_out *o, const struct acpi_config *cfg, long dsdt)
{
	struct acpi_fadt f = {.h = acpi_header("FACP", ACPI_FADT_REV)};
	uint64_t dsdt_gpa = o->gpa + (uint64_t)dsdt;
	long off = acpi_alloc(o, sizeof(f), ACPI_ALIGN);

	if (off < 0)
		return off;
	/* Both DSDT pointers agree; the 32-bit one only if it fits. */
	f.dsdt = dsdt_gpa <= UINT32_MAX ? (uint32_t)dsdt_gpa : 0;
	f.x_dsdt = dsdt_gpa;
	f.sci_int = ACPI_SCI_IRQ;
	f.iapc_boot_arch = ACPI_BOOT_8042 | ACPI_BOOT_NO_VGA;
	if (!cfg->rtc_port)
		f.iapc_boot_arch |= ACPI_BOOT_NO_CMOS_RTC;
	f.flags =
	    ACPI_FADT_WBINVD | ACPI_FADT_PWR_BUTTON | ACPI_FADT_SLP_BUTTON | ACPI_FADT_HW_REDUCED;
	if (cfg->reset_port) {
		f.flags |= ACPI_FADT_RESET_REG_SUP;
		f.reset_reg = acpi_gas_io8(cfg->reset_port);
		f.reset_value = cfg->reset_value;
	}
	f.minor_version = ACPI_FADT_MINOR;
	f.sleep_control = acpi_gas_io8(cfg->sleep_ctl_port);
	f.sleep_status = acpi_gas_io8(cfg->sleep_sts_port);
	memcpy(f.hypervisor_id, ACPI_HYPERVISOR, sizeof(ACPI_HYPERVISOR));
	acpi_put(o, off, &f, sizeof(f));
	acpi_seal(o, off);
	return off;
}

static long acpi_madt(struct acpi_out *o, const struct acpi_config *cfg)
{
	struct acpi_madt m = {.h = acpi_header("APIC", ACPI_MADT_REV),
			      .lapic_addr = (uint32_t)cfg->lapic_addr};
	struct acpi_madt_ioapic io = {.type = ACPI_MADT_IOAPIC,
				      .length = sizeof(io),
				      .id = (uint8_t)cfg->ncpus, /* after the LAPIC ids */
				      .addr = (uint32_t)cfg->ioapic_addr,
				      .gsi_base = cfg->ioapic_gsi_base};
	size_t size = sizeof(m) + cfg->ncpus * sizeof(struct acpi_madt_lapic) + sizeof(io);
	long off = acpi_alloc(o, size, ACPI_ALIGN);
	long at = off + (long)sizeof(m);

	if (off < 0)
		return off;
	acpi_put(o, off, &m, sizeof(m));
	for (unsigned i = 0; i < cfg->ncpus; i++) {
		struct acpi_madt_lapic l = {.type = ACPI_MADT_LAPIC,
					    .length = sizeof(l),
					    .processor_uid = (uint8_t)i,
					    .apic_id = (uint8_t)i,
					    .flags = ACPI_MADT_ENABLED};

		acpi_put(o, at, &l, sizeof(l));
		at += (long)sizeof(l);
	}
	acpi_put(o, at, &io, sizeof(io));
	acpi_seal(o, off);
	return off;
}

/* MCFG: bus 0 of segment 0 through ECAM at pci_ecam_base. */
static long acpi_mcfg(struct acpi_out *o, const struct acpi_config *cfg)
{
	struct acpi_mcfg m = {.h = acpi_header("MCFG", ACPI_MCFG_REV)};
	struct acpi_mcfg_alloc e = {.base = cfg->pci_ecam_base, .start_bus = 0, .end_bus = 0};
	long off = acpi_alloc(o, sizeof(m) + sizeof(e), ACPI_ALIGN);

	if (off < 0)
		return off;
	acpi_put(o, off, &m, sizeof(m));
	acpi_put(o, off + (long)sizeof(m), &e, sizeof(e));
	acpi_seal(o, off);
	return off;
}

static long acpi_xsdt(struct acpi_out *o, const long *tables, unsigned n)
{
	struct acpi_header h = acpi_header("XSDT", ACPI_XSDT_REV);
	long off = acpi_alloc(o, sizeof(h) + n * sizeof(uint64_t), ACPI_ALIGN);

	if (off < 0)
		return off;
	acpi_put(o, off, &h, sizeof(h));
	for (unsigned i = 0; i < n; i++) {
		uint64_t addr = o->gpa + (uint64_t)tables[i];

		acpi_put(o, off + (long)(sizeof(h) + i * sizeof(addr)), &addr, sizeof(addr));
	}
	acpi_seal(o, off);
	return off;
}

static void acpi_rsdp(struct acpi_out *o, long off, long xsdt)
{
	struct acpi_rsdp r = {
	    .revision = ACPI_RSDP_REV, .length = sizeof(r), .xsdt_addr = o->gpa + (uint64_t)xsdt};

	/* No RSDT: a 64-bit guest reads the XSDT. */
	memcpy(r.signature, "RSD PTR ", sizeof(r.signature));
	memcpy(r.oem_id, ACPI_OEM_ID, sizeof(r.oem_id));
	r.checksum = acpi_checksum(&r, offsetof(struct acpi_rsdp, length));
	r.ext_checksum = acpi_checksum(&r, sizeof(r));
	acpi_put(o, off, &r, sizeof(r));
}

static bool acpi_window_ok(uint64_t base, uint64_t size, uint64_t limit)
{
	return size != 0 && base <= limit && size - 1 <= limit - base;
}

static int acpi_check_pci(const struct acpi_config *cfg)
{
	if (cfg->pci_ecam_base % ACPI_PCI_ECAM_SIZE ||
	    !acpi_window_ok(cfg->pci_ecam_base, ACPI_PCI_ECAM_SIZE, UINT32_MAX))
		return -EINVAL;
	if (!acpi_window_ok(cfg->pci_mmio32_base, cfg->pci_mmio32_size, UINT32_MAX))
		return -EINVAL;
	if (cfg->pci_mmio64_size &&
	    !acpi_window_ok(cfg->pci_mmio64_base, cfg->pci_mmio64_size, UINT64_MAX))
		return -EINVAL;
	return 0;
}

static int acpi_check(uint64_t gpa, const struct acpi_config *cfg)
{
	if (cfg->ncpus == 0 || cfg->ncpus > ACPI_MAX_CPUS || gpa % ACPI_ALIGN)
		return -EINVAL;
	if (cfg->lapic_addr > UINT32_MAX || cfg->ioapic_addr > UINT32_MAX)
		return -EINVAL;
	if (!cfg->sleep_ctl_port || !cfg->sleep_sts_port)
		return -EINVAL;
	if (cfg->com1_irq > 15 || cfg->rtc_irq > 15)
		return -EINVAL;
	return cfg->pci_ecam_base ? acpi_check_pci(cfg) : 0;
}

long acpi_build(uint8_t *buf, size_t cap, uint64_t gpa, const struct acpi_config *cfg)
{
	struct acpi_out o = {.buf = buf, .cap = cap, .gpa = gpa};
	long rsdp, tables[3], xsdt, dsdt;
	unsigned ntables = 2;
	int err = acpi_check(gpa, cfg);

	if (err)
		return err;
	/* The RSDP goes first (at gpa) but is filled last, once the XSDT is placed. */
	rsdp = acpi_alloc(&o, sizeof(struct acpi_rsdp), ACPI_ALIGN);
	if (rsdp < 0)
		return rsdp;
	dsdt = acpi_dsdt(&o, cfg);
	if (dsdt < 0)
		return dsdt;
	tables[0] = acpi_fadt(&o, cfg, dsdt);
	if (tables[0] < 0)
		return tables[0];
	tables[1] = acpi_madt(&o, cfg);
	if (tables[1] < 0)
		return tables[1];
	if (cfg->pci_ecam_base) {
		tables[ntables] = acpi_mcfg(&o, cfg);
		if (tables[ntables] < 0)
			return tables[ntables];
		ntables++;
	}
	xsdt = acpi_xsdt(&o, tables, ntables);
	if (xsdt < 0)
		return xsdt;
	acpi_rsdp(&o, rsdp, xsdt);
	return (long)o.len;
}
