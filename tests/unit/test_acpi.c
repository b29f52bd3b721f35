#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"

#define GPA    LAYOUT_ACPI
#define CANARY 0xa5

static uint8_t buf[LAYOUT_ACPI_MAX];
static long total;

static struct acpi_config config(unsigned ncpus)
{
	return (struct acpi_config){
	    .ncpus = ncpus,
	    .ioapic_addr = LAYOUT_IOAPIC,
	    .ioapic_gsi_base = 0,
	    .lapic_addr = LAYOUT_LAPIC,
	    .sleep_ctl_port = PORT_ACPI_SLEEP_CTL,
	    .sleep_sts_port = PORT_ACPI_SLEEP_STS,
	    .reset_port = PORT_ACPI_RESET,
	    .reset_value = ACPI_RESET_VALUE,
	    .pvpanic_port = PORT_PVPANIC,
	    .com1_port = PORT_COM1,
	    .com1_irq = IRQ_COM1,
	    .rtc_port = PORT_RTC,
	    .rtc_irq = IRQ_RTC,
	};
}

static long build_cfg(const struct acpi_config *cfg)
{
	memset(buf, CANARY, sizeof(buf));
	total = acpi_build(buf, sizeof(buf), GPA, cfg);
	cr_assert_gt(total, 0, "acpi_build: %ld", total);
	return total;
}

static long build(unsigned ncpus)
{
	struct acpi_config cfg = config(ncpus);

	return build_cfg(&cfg);
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* A guest-physical pointer the way the guest follows it: inside what was built. */
static const uint8_t *at(uint64_t addr, size_t len)
{
	cr_assert(addr >= GPA && addr - GPA + len <= (uint64_t)total,
		  "pointer %#llx+%zu outside the tables", (unsigned long long)addr, len);
	return buf + (addr - GPA);
}

/* A whole table at addr, its length and checksum verified. */
static const uint8_t *table_at(uint64_t addr, const char *sig)
{
	const uint8_t *t = at(addr, 36);

	cr_assert(memcmp(t, sig, 4) == 0, "expected %s at %#llx", sig, (unsigned long long)addr);
	at(addr, rd32(t + 4));
	cr_assert_eq(sum(t, rd32(t + 4)), 0, "%s checksum", sig);
	cr_assert_eq(addr % 8, 0, "%s is not 8-byte aligned", sig);
	cr_assert(memcmp(t + 10, "TBQUE ", 6) == 0 && memcmp(t + 16, "TABIQUE ", 8) == 0);
	return t;
}

static const uint8_t *xsdt(void)
{
	return table_at(rd64(buf + 24), "XSDT");
}

/* Finds a table through RSDP -> XSDT, as Linux does. */
static const uint8_t *find(const char *sig)
{
	const uint8_t *x = xsdt();
	unsigned n = (rd32(x + 4) - 36) / 8;

	for (unsigned i = 0; i < n; i++) {
		const uint8_t *t = at(rd64(x + 36 + 8 * i), 36);

		if (memcmp(t, sig, 4) == 0)
			return table_at(rd64(x + 36 + 8 * i), sig);
	}
	cr_assert_fail("%s not in the XSDT", sig);
	return NULL;
}

static const uint8_t *dsdt(void)
{
	return table_at(rd64(find("FACP") + 140), "DSDT");
}

static bool contains(const uint8_t *hay, size_t n, const void *needle, size_t len)
{
	return memmem(hay, n, needle, len) != NULL;
}

Test(acpi, checksum_helper)
{
	uint8_t t[4] = {1, 2, 3, 0};

	cr_assert_eq(acpi_checksum(t, 3), 0xfa);
	t[3] = acpi_checksum(t, 3);
	cr_assert_eq(acpi_checksum(t, 4), 0);
	cr_assert_eq(sum(t, 4), 0);
}

Test(acpi, rsdp)
{
	build(1);
	cr_assert(memcmp(buf, "RSD PTR ", 8) == 0);
	cr_assert_eq(buf[15], 2, "revision");
	cr_assert_eq(sum(buf, 20), 0, "ACPI 1.0 checksum");
	cr_assert_eq(rd32(buf + 20), 36, "length");
	cr_assert_eq(sum(buf, 36), 0, "extended checksum");
	cr_assert(memcmp(buf + 9, "TBQUE ", 6) == 0);
	xsdt();
}

Test(acpi, xsdt_points_at_fadt_and_madt)
{
	const uint8_t *x;

	build(2);
	x = xsdt();
	cr_assert_eq(rd32(x + 4), 36 + 2 * 8);
	table_at(rd64(x + 36), "FACP");
	table_at(rd64(x + 44), "APIC");
	dsdt();
}

Test(acpi, fadt)
{
	const uint8_t *f, *d;

	build(1);
	f = find("FACP");
	d = dsdt();
	cr_assert_eq(rd32(f + 4), 276, "FADT revision 6 is 276 bytes");
	cr_assert_eq(f[8], 6);
	cr_assert_eq(rd32(f + 40), (uint32_t)(GPA + (uint64_t)(d - buf)), "DSDT");
	cr_assert_eq(rd64(f + 140), GPA + (uint64_t)(d - buf), "X_DSDT");
	cr_assert_eq(rd32(f + 36) | rd64(f + 132), 0, "no FACS");

	uint32_t flags = rd32(f + 112);
	cr_assert(flags & (1u << 20), "HW_REDUCED_ACPI");
	cr_assert(flags & (1u << 10), "RESET_REG_SUP");

	uint16_t boot = rd16(f + 109);
	cr_assert(boot & (1u << 1), "8042 present");
	cr_assert_eq(boot & (1u << 3), 0, "MSI must be allowed");
	cr_assert_eq(boot & (1u << 5), 0, "the CMOS RTC is present");

	/* RESET_REG and the sleep registers: SystemIO, 8 bits, byte access. */
	static const uint8_t io8[4] = {1, 8, 0, 1};
	cr_assert_arr_eq(f + 116, io8, 4);
	cr_assert_eq(rd64(f + 120), PORT_ACPI_RESET);
	cr_assert_eq(f[128], ACPI_RESET_VALUE);
	cr_assert_arr_eq(f + 244, io8, 4);
	cr_assert_eq(rd64(f + 248), PORT_ACPI_SLEEP_CTL);
	cr_assert_arr_eq(f + 256, io8, 4);
	cr_assert_eq(rd64(f + 260), PORT_ACPI_SLEEP_STS);
	cr_assert(memcmp(f + 268, "TABIQUE", 7) == 0, "hypervisor vendor identity");
}

static void check_madt(unsigned n)
{
	const uint8_t *m, *e, *end;
	unsigned lapics = 0, ioapics = 0;

	build(n);
	m = find("APIC");
	cr_assert_eq(rd32(m + 36), LAYOUT_LAPIC);
	cr_assert_eq(rd32(m + 40) & 1, 0, "PCAT_COMPAT: no 8259");
	end = m + rd32(m + 4);
	for (e = m + 44; e < end; e += e[1]) {
		cr_assert(e[1] >= 2 && e + e[1] <= end, "n=%u: bad entry length", n);
		if (e[0] == 0) {
			cr_assert_eq(e[1], 8);
			cr_assert_eq(e[3], lapics, "n=%u: APIC id %u in slot %u", n, e[3], lapics);
			cr_assert_eq(rd32(e + 4) & 1, 1, "n=%u: cpu %u disabled", n, lapics);
			lapics++;
		} else if (e[0] == 1) {
			cr_assert_eq(e[1], 12);
			cr_assert_eq(rd32(e + 4), LAYOUT_IOAPIC);
			cr_assert_eq(rd32(e + 8), 0, "GSI base");
			ioapics++;
		} else {
			cr_assert_fail("n=%u: unexpected MADT entry type %u", n, e[0]);
		}
	}
	cr_assert_eq(e, end);
	cr_assert_eq(lapics, n);
	cr_assert_eq(ioapics, 1);
}

Test(acpi, madt_has_one_enabled_lapic_per_vcpu)
{
	static const unsigned counts[] = {1, 2, 64, ACPI_MAX_CPUS};

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		check_madt(counts[i]);
	cr_assert_eq(ACPI_MAX_CPUS, 255);
	cr_assert_leq(total, (long)LAYOUT_ACPI_MAX);
}

Test(acpi, dsdt_devices)
{
	/* Name(\_S5_, Package(4) {5, 5, 0, 0}) */
	static const uint8_t s5[] = "\x08\\_S5_\x12\x08\x04\x0a\x05\x0a\x05\x00"; /* + NUL: Zero */
	static const uint8_t hid_pvpanic[] = "_HID\x0dQEMU0001";
	static const uint8_t hid_com1[] = {'_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01};
	static const uint8_t hid_rtc[] = {'_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0b, 0x00};
	static const uint8_t io_com1[] = {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08};
	static const uint8_t irq4[] = {0x23, 0x10, 0x00, 0x01};
	static const uint8_t io_pvpanic[] = {0x47, 0x01, 0x05, 0x05, 0x05, 0x05, 0x01, 0x01};
	const uint8_t *d;
	size_t n;

	build(1);
	d = dsdt();
	n = rd32(d + 4);
	cr_assert_eq(d[8], 2, "revision 2: 64-bit integers");
	cr_assert_eq(ACPI_S5_SLP_TYP, 5);
	cr_assert(contains(d, n, s5, sizeof(s5)), "\\_S5_ package");
	cr_assert(contains(d, n, hid_pvpanic, sizeof(hid_pvpanic)), "QEMU0001");
	cr_assert(contains(d, n, io_pvpanic, sizeof(io_pvpanic)), "pvpanic port");
	cr_assert(contains(d, n, hid_com1, sizeof(hid_com1)), "PNP0501");
	cr_assert(contains(d, n, io_com1, sizeof(io_com1)), "COM1 ports");
	cr_assert(contains(d, n, irq4, sizeof(irq4)), "COM1 IRQ");
	cr_assert(contains(d, n, hid_rtc, sizeof(hid_rtc)), "PNP0B00");
}

Test(acpi, unconfigured_devices_are_left_out)
{
	struct acpi_config cfg = config(1);
	const uint8_t *d;

	cfg.pvpanic_port = 0;
	cfg.rtc_port = 0;
	cfg.com1_irq = 0;
	build_cfg(&cfg);
	d = dsdt();
	cr_assert_not(contains(d, rd32(d + 4), "QEMU0001", 8));
	cr_assert_not(contains(d, rd32(d + 4), "RTC_", 4));
	cr_assert_not(contains(d, rd32(d + 4), "\x23\x10\x00", 3), "COM1 IRQ");
	cr_assert(contains(d, rd32(d + 4), "COM1", 4));
	cr_assert(rd16(find("FACP") + 109) & (1u << 5), "CMOS RTC not present");
}

static void check_enospc(unsigned ncpus)
{
	struct acpi_config cfg = config(ncpus);
	long need = build(ncpus);
	uint8_t *b = malloc((size_t)need + 64);

	for (long cap = 0; cap < need; cap++) {
		memset(b, CANARY, (size_t)need + 64);
		cr_assert_eq(acpi_build(b, (size_t)cap, GPA, &cfg), -ENOSPC, "cap %ld", cap);
		for (long i = cap; i < need + 64; i++)
			cr_assert_eq(b[i], CANARY, "cap %ld: wrote byte %ld", cap, i);
	}
	cr_assert_eq(acpi_build(b, (size_t)need, GPA, &cfg), need);
	cr_assert_eq(b[need], CANARY);
	free(b);
}

Test(acpi, enospc_never_writes_past_cap)
{
	check_enospc(1);
	check_enospc(ACPI_MAX_CPUS);
}

Test(acpi, bad_config)
{
	struct acpi_config cfg = config(0);

	cr_assert_eq(acpi_build(buf, sizeof(buf), GPA, &cfg), -EINVAL);
	cfg = config(ACPI_MAX_CPUS + 1);
	cr_assert_eq(acpi_build(buf, sizeof(buf), GPA, &cfg), -EINVAL);
	cfg = config(1);
	cr_assert_eq(acpi_build(buf, sizeof(buf), GPA + 8, &cfg), -EINVAL, "RSDP misaligned");
	cfg.com1_irq = 16;
	cr_assert_eq(acpi_build(buf, sizeof(buf), GPA, &cfg), -EINVAL);
	cfg = config(1);
	cfg.sleep_ctl_port = 0;
	cr_assert_eq(acpi_build(buf, sizeof(buf), GPA, &cfg), -EINVAL);
}

/*
 * Cross-check against ACPICA, the interpreter Linux runs: every table must
 * disassemble without a warning, the DSDT must recompile to the same AML, and
 * acpiexec must load it and evaluate \_S5_ and _STA.
 */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Evaluates \\_S5_ and every device's _CRS; there is no _SRS to set them back. */
#define ACPIEXEC_CMDS                                                                              \
	"evaluate \\_S5; evaluate \\_SB.PVPN._STA; resources \\_SB.COM1; "                         \
	"resources \\_SB.RTC; resources \\_SB.PVPN"

static void dump(const char *dir, const char *name, const uint8_t *t)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(t, 1, rd32(t + 4), f), rd32(t + 4));
	fclose(f);
}

Test(acpi_iasl, tables_pass_acpica)
{
	char dir[] = "/tmp/tabique-acpi-XXXXXX";

	if (sh("command -v iasl >/dev/null && command -v acpiexec >/dev/null") != 0) {
		/* Said twice: Criterion shows skips only with --verbose. */
		cr_log_warn("SKIPPED: iasl/acpiexec missing (apt-get install acpica-tools)");
		cr_skip_test("iasl/acpiexec missing: the AML was NOT cross-checked");
	}
	build(4);
	cr_assert_not_null(mkdtemp(dir));
	dump(dir, "dsdt.dat", dsdt());
	dump(dir, "facp.dat", find("FACP"));
	dump(dir, "apic.dat", find("APIC"));
	dump(dir, "xsdt.dat", xsdt());
	cr_expect_eq(sh("cd %s && iasl -d dsdt.dat facp.dat apic.dat xsdt.dat >log 2>&1"
			" || { cat log; false; }",
			dir),
		     0, "iasl -d failed");
	cr_expect_neq(sh("cd %s && grep -i -e warning -e error -e incorrect log *.dsl", dir), 0,
		      "iasl -d complained (lines above)");
	/* -oa: no optimizations, so the AML must be byte-identical past the header. */
	cr_expect_eq(sh("cd %s && iasl -oa -p re dsdt.dsl >relog 2>&1 &&"
			" grep -q '0 Errors, 0 Warnings, 0 Remarks' relog &&"
			" cmp -s -i 36 re.aml dsdt.dat || { cat relog; false; }",
			dir),
		     0, "the DSDT does not recompile to itself");
	/* iasl shows a malformed descriptor as a plain Buffer: count the templates. */
	cr_expect_eq(sh("cd %s && test $(grep -c 'ResourceTemplate ()' dsdt.dsl) -eq 3", dir), 0,
		     "the three _CRS do not disassemble as ResourceTemplates");
	cr_expect_eq(sh("cd %s && acpiexec -b '%s' dsdt.dat >exec 2>&1 &&"
			" grep -q 'Contains 4 Elements' exec &&"
			" grep -q 'Integer] = 000000000000000F' exec &&"
			" grep -q 'Address Minimum : 0505' exec &&"
			" ! grep AE_ exec | grep -v 'SetCurrentResources failed: AE_NOT_FOUND'"
			" || { cat exec; false; }",
			dir, ACPIEXEC_CMDS),
		     0, "acpiexec could not evaluate the DSDT");
	sh("rm -rf -- %s", dir);
}

/* ---- PCI: the MCFG and \_SB_.PCI0 ---- */

#define PCI_MMIO64 0x140000000ULL

static struct acpi_config pci_config(unsigned ncpus)
{
	struct acpi_config cfg = config(ncpus);

	cfg.pci_ecam_base = LAYOUT_PCI_ECAM;
	cfg.pci_mmio32_base = LAYOUT_PCI_MMIO;
	cfg.pci_mmio32_size = LAYOUT_PCI_MMIO_END - LAYOUT_PCI_MMIO;
	cfg.pci_mmio64_base = PCI_MMIO64;
	cfg.pci_mmio64_size = LAYOUT_PCI_MMIO64_SIZE;
	return cfg;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A producer memory window as ACPI 6.4.3.5 lays it out: DWord (width 4) or QWord (8). */
static size_t mem_window(uint8_t *d, unsigned width, uint64_t min, uint64_t max)
{
	d[0] = width == 4 ? 0x87 : 0x8a;
	put_le(d + 1, 3 + 5 * width, 2);
	d[3] = 0;					 /* memory */
	d[4] = 0x0c;					 /* MinFixed, MaxFixed, producer */
	d[5] = 0x01;					 /* read-write, non-cacheable */
	put_le(d + 6, 0, width);			 /* granularity */
	put_le(d + 6 + width, min, width);		 /* minimum */
	put_le(d + 6 + 2 * width, max, width);		 /* maximum */
	put_le(d + 6 + 3 * width, 0, width);		 /* translation */
	put_le(d + 6 + 4 * width, max - min + 1, width); /* length */
	return 6 + 5 * width;
}

Test(acpi_pci, no_pci_no_mcfg)
{
	const uint8_t *d;

	build(1);
	cr_assert_eq(rd32(xsdt() + 4), 36 + 2 * 8);
	d = dsdt();
	cr_assert_not(contains(d, rd32(d + 4), "PCI0", 4));
}

Test(acpi_pci, mcfg_describes_bus_0_ecam)
{
	struct acpi_config cfg = pci_config(2);
	const uint8_t *m;

	build_cfg(&cfg);
	cr_assert_eq(rd32(xsdt() + 4), 36 + 3 * 8, "FACP, APIC, MCFG");
	m = find("MCFG");
	cr_assert_eq(rd32(m + 4), 44 + 16, "one allocation structure");
	cr_assert_eq(m[8], 1, "revision");
	cr_assert_eq(rd64(m + 36), 0, "reserved");
	cr_assert_eq(rd64(m + 44), LAYOUT_PCI_ECAM);
	cr_assert_eq(rd16(m + 52), 0, "segment");
	cr_assert_eq(m[54], 0, "start bus");
	cr_assert_eq(m[55], 0, "end bus");
	cr_assert_eq(rd32(m + 56), 0);
}

Test(acpi_pci, pci0_crs_has_bus_config_ports_and_windows)
{
	struct acpi_config cfg = pci_config(1);
	static const uint8_t hid[] = {'_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08};
	static const uint8_t cid[] = {'_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03};
	static const uint8_t pnp0c02[] = {'_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x02};
	/* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1) */
	static const uint8_t bus[] = {0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00,
				      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00};
	static const uint8_t io[] = {0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08};
	/* Memory32Fixed (ReadWrite, 0xE0000000, 0x00100000) */
	static const uint8_t ecam[] = {0x86, 0x09, 0x00, 0x01, 0x00, 0x00,
				       0x00, 0xe0, 0x00, 0x00, 0x10, 0x00};
	uint8_t w32[32], w64[64];
	size_t n32 = mem_window(w32, 4, LAYOUT_PCI_MMIO, LAYOUT_PCI_MMIO_END - 1);
	size_t n64 = mem_window(w64, 8, PCI_MMIO64, PCI_MMIO64 + LAYOUT_PCI_MMIO64_SIZE - 1);
	const uint8_t *d;
	size_t n;

	build_cfg(&cfg);
	d = dsdt();
	n = rd32(d + 4);
	cr_assert(contains(d, n, "PCI0", 4));
	cr_assert(contains(d, n, hid, sizeof(hid)), "_HID PNP0A08");
	cr_assert(contains(d, n, cid, sizeof(cid)), "_CID PNP0A03");
	cr_assert(contains(d, n, "_SEG", 4) && contains(d, n, "_BBN", 4));
	cr_assert(contains(d, n, bus, sizeof(bus)), "bus 0 only");
	cr_assert(contains(d, n, io, sizeof(io)), "IO 0xCF8-0xCFF");
	cr_assert(contains(d, n, w32, n32), "32-bit window");
	cr_assert(contains(d, n, w64, n64), "64-bit window");
	cr_assert(contains(d, n, pnp0c02, sizeof(pnp0c02)), "ECAM motherboard resource");
	cr_assert(contains(d, n, ecam, sizeof(ecam)), "ECAM range reserved");
	cr_assert_not(contains(d, n, "_PRT", 4), "no INTx routing");

	cfg.pci_mmio64_size = 0;
	build_cfg(&cfg);
	d = dsdt();
	cr_assert_not(contains(d, rd32(d + 4), "\x8a\x2b", 2),
		      "no QWordMemory without a 64-bit window");
}

Test(acpi_pci, bad_pci_config)
{
	struct acpi_config cfg = pci_config(1);

	cfg.pci_ecam_base = LAYOUT_PCI_ECAM + 0x1000;
	cr_assert_eq(acpi_build(buf, sizeof(buf), GPA, &cfg), -EINVAL, "ECAM misaligned");
	cfg = pci_config(1);
	cfg.pci_ecam_base = 1ULL << 32;
	cr_assert_eq(acpi_build(buf, sizeof(buf), GPA, &cfg), -EINVAL, "ECAM above 4 GiB");
	cfg = pci_config(1);
	cfg.pci_mmio32_size = 0;
	cr_assert_eq(acpi_build(buf, sizeof(buf), GPA, &cfg), -EINVAL, "empty 32-bit window");
	cfg = pci_config(1);
	cfg.pci_mmio32_base = 0xf0000000;
	cfg.pci_mmio32_size = 0x20000000;
	cr_assert_eq(acpi_build(buf, sizeof(buf), GPA, &cfg), -EINVAL, "32-bit window past 4 GiB");
	cfg = pci_config(1);
	cfg.pci_mmio64_base = UINT64_MAX - 0xfff;
	cr_assert_eq(acpi_build(buf, sizeof(buf), GPA, &cfg), -EINVAL, "64-bit window wraps");
}

Test(acpi_pci, enospc_never_writes_past_cap)
{
	struct acpi_config cfg = pci_config(2);
	long need = build_cfg(&cfg);
	static uint8_t b[LAYOUT_ACPI_MAX + 64];

	for (long cap = 0; cap < need; cap++) {
		memset(b, CANARY, (size_t)need + 64);
		cr_assert_eq(acpi_build(b, (size_t)cap, GPA, &cfg), -ENOSPC, "cap %ld", cap);
		for (long i = cap; i < need + 64; i++)
			cr_assert_eq(b[i], CANARY, "cap %ld: wrote byte %ld", cap, i);
	}
}

#define ACPIEXEC_PCI_CMDS "resources \\_SB.PCI0; resources \\_SB.ECAM"

Test(acpi_iasl, pci_tables_pass_acpica)
{
	struct acpi_config cfg = pci_config(2);
	char dir[] = "/tmp/tabique-acpi-XXXXXX";

	if (sh("command -v iasl >/dev/null && command -v acpiexec >/dev/null") != 0) {
		cr_log_warn("SKIPPED: iasl/acpiexec missing (apt-get install acpica-tools)");
		cr_skip_test("iasl/acpiexec missing: the AML was NOT cross-checked");
	}
	build_cfg(&cfg);
	cr_assert_not_null(mkdtemp(dir));
	dump(dir, "dsdt.dat", dsdt());
	dump(dir, "mcfg.dat", find("MCFG"));
	dump(dir, "xsdt.dat", xsdt());
	cr_expect_eq(
	    sh("cd %s && iasl -d dsdt.dat mcfg.dat xsdt.dat >log 2>&1 || { cat log; false; }", dir),
	    0, "iasl -d failed");
	cr_expect_neq(sh("cd %s && grep -i -e warning -e error -e incorrect log *.dsl", dir), 0,
		      "iasl -d complained (lines above)");
	cr_expect_eq(sh("cd %s && grep -q 'Base Address : 00000000E0000000' mcfg.dsl &&"
			" grep -q 'End Bus Number : 00' mcfg.dsl || { cat mcfg.dsl; false; }",
			dir),
		     0, "the MCFG does not describe bus 0 at the ECAM base");
	cr_expect_eq(sh("cd %s && iasl -oa -p re dsdt.dsl >relog 2>&1 &&"
			" grep -q '0 Errors, 0 Warnings, 0 Remarks' relog &&"
			" cmp -s -i 36 re.aml dsdt.dat || { cat relog; false; }",
			dir),
		     0, "the DSDT does not recompile to itself");
	cr_expect_eq(sh("cd %s && test $(grep -c 'ResourceTemplate ()' dsdt.dsl) -eq 5", dir), 0,
		     "the five _CRS do not disassemble as ResourceTemplates");
	cr_expect_eq(sh("cd %s && acpiexec -b '%s' dsdt.dat >exec 2>&1 &&"
			" grep -q 'Address Minimum : C0000000' exec &&"
			" grep -q 'Address Maximum : DFFFFFFF' exec &&"
			" grep -q 'Address Minimum : 0000000140000000' exec &&"
			" grep -q 'Address Maximum : 000000113FFFFFFF' exec &&"
			" grep -q 'Address : E0000000' exec &&"
			" ! grep AE_ exec | grep -v 'SetCurrentResources failed: AE_NOT_FOUND'"
			" || { cat exec; false; }",
			dir, ACPIEXEC_PCI_CMDS),
		     0, "acpiexec could not evaluate the PCI root bridge");
	sh("rm -rf -- %s", dir);
}

/* ---- the Generic Event Device and the power button ---- */

static struct acpi_config ged_config(void)
{
	struct acpi_config cfg = config(1);

	cfg.ged_port = PORT_ACPI_GED;
	cfg.ged_gsi = IRQ_ACPI_GED;
	return cfg;
}

Test(acpi_ged, left_out_unless_configured)
{
	const uint8_t *d;

	build(1);
	d = dsdt();
	cr_assert_not(contains(d, rd32(d + 4), "ACPI0013", 8));
	cr_assert_not(contains(d, rd32(d + 4), "PWRB", 4));
}

/*
 * What iasl 20200925 -oa compiles from, inside Scope (\_SB):
 *   Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) Name (_UID, Zero) }
 *   Device (GED) {
 *     Name (_HID, "ACPI0013") Name (_UID, Zero)
 *     Name (_CRS, ResourceTemplate () {
 *       Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) {16} })
 *     OperationRegion (EREG, SystemIO, 0x03C8, One)
 *     Field (EREG, ByteAcc, NoLock, WriteAsZeros) { ESEL, 8 }
 *     Method (_EVT, 1, Serialized) {
 *       Local0 = ESEL
 *       If ((Local0 & One)) { Notify (PWRB, 0x80) } } }
 */
static const uint8_t ged_iasl[] = {
    0x5b, 0x82, 0x15, 'P',  'W',  'R',	'B',  0x08, '_',  'H',	'I',  'D',  0x0c, 0x41, 0xd0, 0x0c,
    0x0c, 0x08, '_',  'U',  'I',  'D',	0x00, 0x5b, 0x82, 0x41, 0x06, 'G',  'E',  'D',	'_',  0x08,
    '_',  'H',	'I',  'D',  0x0d, 'A',	'C',  'P',  'I',  '0',	'0',  '1',  '3',  0x00, 0x08, '_',
    'U',  'I',	'D',  0x00, 0x08, '_',	'C',  'R',  'S',  0x11, 0x0e, 0x0a, 0x0b, 0x89, 0x06, 0x00,
    0x03, 0x01, 0x10, 0x00, 0x00, 0x00, 0x79, 0x00, 0x5b, 0x80, 'E',  'R',  'E',  'G',	0x01, 0x0b,
    0xc8, 0x03, 0x01, 0x5b, 0x81, 0x0b, 'E',  'R',  'E',  'G',	0x41, 'E',  'S',  'E',	'L',  0x08,
    0x14, 0x19, '_',  'E',  'V',  'T',	0x09, 0x70, 'E',  'S',	'E',  'L',  0x60, 0xa0, 0x0c, 0x7b,
    0x60, 0x01, 0x00, 0x86, 'P',  'W',	'R',  'B',  0x0a, 0x80,
};

Test(acpi_ged, power_button_and_ged_match_iasl)
{
	struct acpi_config cfg = ged_config();
	const uint8_t *d;

	cr_assert_eq(ACPI_GED_POWER_BUTTON, 0x01, "the bit the bytes above test");
	cr_assert_eq(PORT_ACPI_GED, 0x3c8);
	cr_assert_eq(IRQ_ACPI_GED, 16);
	build_cfg(&cfg);
	d = dsdt();
	cr_assert(contains(d, rd32(d + 4), ged_iasl, sizeof(ged_iasl)),
		  "\\_SB_.PWRB and \\_SB_.GED_ differ from what iasl makes of their ASL");
}

Test(acpi_ged, enospc_never_writes_past_cap)
{
	struct acpi_config cfg = ged_config();
	long need = build_cfg(&cfg);
	uint8_t *b = malloc((size_t)need + 16);

	for (long cap = need - 160; cap < need; cap++) {
		memset(b, CANARY, (size_t)need + 16);
		cr_assert_eq(acpi_build(b, (size_t)cap, GPA, &cfg), -ENOSPC, "cap %ld", cap);
		for (long i = cap; i < need + 16; i++)
			cr_assert_eq(b[i], CANARY, "cap %ld: wrote byte %ld", cap, i);
	}
	free(b);
}

#define ACPIEXEC_GED_CMDS                                                                          \
	"evaluate \\_SB.PWRB._HID; resources \\_SB.GED; evaluate \\_SB.GED._EVT 16"

Test(acpi_iasl, ged_passes_acpica)
{
	struct acpi_config cfg = ged_config();
	char dir[] = "/tmp/tabique-acpi-XXXXXX";

	if (sh("command -v iasl >/dev/null && command -v acpiexec >/dev/null") != 0) {
		cr_log_warn("SKIPPED: iasl/acpiexec missing (apt-get install acpica-tools)");
		cr_skip_test("iasl/acpiexec missing: the AML was NOT cross-checked");
	}
	build_cfg(&cfg);
	cr_assert_not_null(mkdtemp(dir));
	dump(dir, "dsdt.dat", dsdt());
	cr_expect_eq(sh("cd %s && iasl -d dsdt.dat >log 2>&1 || { cat log; false; }", dir), 0,
		     "iasl -d failed");
	cr_expect_neq(sh("cd %s && grep -i -e warning -e error -e incorrect log *.dsl", dir), 0,
		      "iasl -d complained (lines above)");
	cr_expect_eq(sh("cd %s && iasl -oa -p re dsdt.dsl >relog 2>&1 &&"
			" grep -q '0 Errors, 0 Warnings, 0 Remarks' relog &&"
			" cmp -s -i 36 re.aml dsdt.dat || { cat relog; false; }",
			dir),
		     0, "the DSDT does not recompile to itself");
	cr_expect_eq(sh("cd %s && grep -q 'Notify (PWRB, 0x80)' dsdt.dsl &&"
			" grep -q 'Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )'"
			" dsdt.dsl || { cat dsdt.dsl; false; }",
			dir),
		     0, "the GED's interrupt or notify is not what was meant");
	cr_expect_eq(sh("cd %s && acpiexec -b '%s' dsdt.dat >exec 2>&1 &&"
			" grep -q 'Integer] = 000000000C0CD041' exec &&"
			" grep -q 'Dword00 : 00000010' exec &&"
			" grep -q 'Evaluating .*GED._EVT' exec &&"
			" ! grep AE_ exec | grep -v 'SetCurrentResources failed: AE_NOT_FOUND'"
			" || { cat exec; false; }",
			dir, ACPIEXEC_GED_CMDS),
		     0, "acpiexec could not evaluate the GED");
	sh("rm -rf -- %s", dir);
}
