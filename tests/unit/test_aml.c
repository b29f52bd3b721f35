#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/aml.h"

#define CANARY 0xa5

static uint8_t buf[4096];
static struct aml a;

static void setup(void)
{
	memset(buf, CANARY, sizeof(buf));
	aml_init(&a, buf, sizeof(buf));
}

TestSuite(aml, .init = setup);

static void expect_bytes(const void *want, size_t n)
{
	cr_assert_eq(aml_result(&a), (long)n, "wrote %ld bytes, want %zu", aml_result(&a), n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(buf[i], ((const uint8_t *)want)[i], "byte %zu: %#x, want %#x", i,
			     buf[i], ((const uint8_t *)want)[i]);
}

#define EXPECT(...)                                                                                \
	do {                                                                                       \
		const uint8_t want_[] = {__VA_ARGS__};                                             \
		expect_bytes(want_, sizeof(want_));                                                \
	} while (0)

/* Decodes a PkgLength independently of the encoder; returns its byte count. */
static int pkglen_decode(const uint8_t *p, uint32_t *value)
{
	int extra = p[0] >> 6;

	if (extra == 0) {
		*value = p[0] & 0x3f;
		return 1;
	}
	*value = p[0] & 0x0f;
	for (int i = 0; i < extra; i++)
		*value |= (uint32_t)p[1 + i] << (4 + 8 * i);
	return extra + 1;
}

Test(aml, pkglen_encode_at_width_boundaries)
{
	static const struct {
		uint32_t value;
		int len;
		uint8_t bytes[4];
	} cases[] = {
	    {0, 1, {0x00}},
	    {63, 1, {0x3f}},
	    {64, 2, {0x40, 0x04}},
	    {4095, 2, {0x4f, 0xff}},
	    {4096, 3, {0x80, 0x00, 0x01}},
	    {1048575, 3, {0x8f, 0xff, 0xff}},
	    {1048576, 4, {0xc0, 0x00, 0x00, 0x01}},
	    {AML_PKGLEN_MAX, 4, {0xcf, 0xff, 0xff, 0xff}},
	};
	uint8_t out[4];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(aml_pkglen_encode(out, cases[i].value), cases[i].len, "value %u",
			     cases[i].value);
		cr_assert_arr_eq(out, cases[i].bytes, (size_t)cases[i].len, "value %u",
				 cases[i].value);
	}
	cr_assert_eq(aml_pkglen_encode(out, AML_PKGLEN_MAX + 1), -EINVAL);
}

/* A Package whose body (count byte + filler) is n bytes. */
static void package_of(struct aml *p, size_t n)
{
	size_t mark = aml_package_begin(p, 0);
	uint8_t *fill = calloc(1, n);

	aml_raw(p, fill, n - 1);
	free(fill);
	aml_end(p, mark);
}

/* clang-format off: byte tables laid out by meaning */
Test(aml, end_picks_the_shortest_pkglen)
{
	/* PkgLength counts itself: a 62-byte body fits one byte, 63 needs two. */
	static const struct {
		size_t body;
		int width;
	} cases[] = {
	    {1, 1},    {62, 1},	     {63, 2},	   {4093, 2},
	    {4094, 3}, {0xffffc, 3}, {0xffffd, 4}, {0x200000, 4},
	};
	size_t cap = 0x200000 + 16;
	uint8_t *big = malloc(cap);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aml p;
		uint32_t value;
		int width;

		aml_init(&p, big, cap);
		package_of(&p, cases[i].body);
		cr_assert_eq(aml_result(&p), (long)(1 + cases[i].width + cases[i].body));
		cr_assert_eq(big[0], 0x12);
		width = pkglen_decode(big + 1, &value);
		cr_assert_eq(width, cases[i].width, "body %zu", cases[i].body);
		cr_assert_eq(value, cases[i].body + (size_t)width, "body %zu", cases[i].body);
	}
	free(big);
}
/* clang-format on */

Test(aml, integers_use_the_shortest_form)
{
	aml_int(&a, 0);
	aml_int(&a, 1);
	aml_int(&a, 2);
	aml_int(&a, 0xff);
	aml_int(&a, 0x100);
	aml_int(&a, 0xffff);
	aml_int(&a, 0x10000);
	aml_int(&a, 0xffffffff);
	aml_int(&a, 0x100000000);
	aml_dword(&a, 5);
	EXPECT(0x00, 0x01, 0x0a, 0x02, 0x0a, 0xff, 0x0b, 0x00, 0x01, 0x0b, 0xff, 0xff, 0x0c, 0x00,
	       0x00, 0x01, 0x00, 0x0c, 0xff, 0xff, 0xff, 0xff, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x01,
	       0x00, 0x00, 0x00, 0x0c, 0x05, 0x00, 0x00, 0x00);
}

Test(aml, string)
{
	aml_string(&a, "QEMU0001");
	EXPECT(0x0d, 'Q', 'E', 'M', 'U', '0', '0', '0', '1', 0x00);
}

Test(aml, string_rejects_non_ascii)
{
	aml_string(&a, "caf\xc3\xa9");
	cr_assert_eq(aml_result(&a), -EINVAL);
	cr_assert_eq(buf[0], CANARY);
}

/* clang-format off: byte tables laid out by meaning */
Test(aml, name_paths)
{
	aml_name(&a, "_SB_");
	aml_name(&a, "\\_SB.PCI0");
	aml_name(&a, "\\_SB.PCI0.ISA");
	aml_name(&a, "^^S5");
	aml_name(&a, "\\");
	EXPECT('_', 'S', 'B', '_', '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', '\\', 0x2f,
	       3, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'I', 'S', 'A', '_', '^', '^', 'S', '5',
	       '_', '_', '\\', 0x00);
}
/* clang-format on */

Test(aml, bad_names_are_rejected_and_sticky)
{
	static const char *bad[] = {"_SB_X", "1ABC", "\\_SB..PCI0", "_SB.", "pci0", "\\^A", "A-B"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setup();
		aml_name(&a, bad[i]);
		cr_assert_eq(aml_result(&a), -EINVAL, "%s accepted", bad[i]);
		cr_assert_eq(buf[0], CANARY, "%s wrote bytes", bad[i]);
		aml_int(&a, 7);
		cr_assert_eq(a.len, 0, "error is not sticky");
	}
}

Test(aml, eisaid)
{
	cr_assert_eq(aml_eisaid("PNP0501"), 0x0105D041);
	cr_assert_eq(aml_eisaid("PNP0A03"), 0x030AD041);
	cr_assert_eq(aml_eisaid("PNP0B00"), 0x000BD041);
	cr_assert_eq(aml_eisaid("pnp0501"), 0);
	cr_assert_eq(aml_eisaid("PNP050"), 0);
	cr_assert_eq(aml_eisaid("PNP05011"), 0);
	cr_assert_eq(aml_eisaid("PNP050G"), 0);
	aml_name_eisaid(&a, "_HID", "PNP0B00");
	/* Always a DWordConst, as iasl emits EisaId(). */
	EXPECT(0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0b, 0x00);
}

Test(aml, s5_package)
{
	size_t pkg;

	aml_name_decl(&a, "\\_S5_");
	pkg = aml_package_begin(&a, 4);
	aml_int(&a, 5);
	aml_int(&a, 5);
	aml_int(&a, 0);
	aml_int(&a, 0);
	aml_end(&a, pkg);
	EXPECT(0x08, '\\', '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00,
	       0x00);
}

/* clang-format off: byte tables laid out by meaning */
Test(aml, device_method_scope)
{
	size_t scope = aml_scope_begin(&a, "\\_SB_");
	size_t dev = aml_device_begin(&a, "PVPN");
	size_t sta = aml_method_begin(&a, "_STA", 0, false);

	aml_return(&a);
	aml_int(&a, 0x0f);
	aml_end(&a, sta);
	aml_end(&a, dev);
	aml_end(&a, scope);
	EXPECT(0x10, 0x17, '\\', '_', 'S', 'B', '_', 0x5b, 0x82, 0x0f, 'P', 'V', 'P', 'N', 0x14,
	       0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f);
}
/* clang-format on */

Test(aml, method_flags)
{
	size_t m = aml_method_begin(&a, "_OSC", 4, true);

	aml_end(&a, m);
	EXPECT(0x14, 0x06, '_', 'O', 'S', 'C', 0x0c);
	setup();
	aml_method_begin(&a, "_OSC", 8, false);
	cr_assert_eq(aml_result(&a), -EINVAL);
}

Test(aml, empty_resource_template)
{
	size_t r = aml_restemplate_begin(&a);

	aml_restemplate_end(&a, r);
	EXPECT(0x11, 0x05, 0x0a, 0x02, 0x79, 0x00);
}

Test(aml, large_buffer_gets_word_size_and_two_byte_pkglen)
{
	uint8_t fill[300] = {0};
	size_t b = aml_buffer_begin(&a);

	aml_raw(&a, fill, sizeof(fill));
	aml_buffer_end(&a, b);
	/* Body = WordConst (3) + 300 bytes; PkgLength = 303 + 2 = 0x131. */
	cr_assert_eq(aml_result(&a), 1 + 2 + 3 + 300);
	cr_assert_eq(buf[0], 0x11);
	cr_assert_eq(buf[1], 0x41);
	cr_assert_eq(buf[2], 0x13);
	cr_assert_eq(buf[3], 0x0b);
	cr_assert_eq(buf[4], 0x2c);
	cr_assert_eq(buf[5], 0x01);
}

/*
 * The expected bytes below were compiled by iasl 20200925 (-oa) from the ASL
 * in each comment, so the builder matches the reference compiler.
 */
/* clang-format off: byte tables laid out by meaning */
Test(aml, small_descriptors_match_iasl)
{
	/* IO (Decode16, 0x3F8, 0x3F8, 1, 8) */
	aml_res_io(&a, 0x3f8, 0x3f8, 1, 8);
	/* IRQ (Edge, ActiveHigh, Exclusive) {4} */
	aml_res_irq(&a, 4, AML_IRQ_ISA);
	/* IRQ (Level, ActiveLow, Shared) {5} */
	aml_res_irq(&a, 5, AML_IRQ_ACTIVE_LOW | AML_IRQ_SHARED);
	EXPECT(0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x23, 0x10, 0x00, 0x01, 0x23, 0x20,
	       0x00, 0x18);
	aml_res_irq(&a, 16, 0);
	cr_assert_eq(aml_result(&a), -EINVAL);
}
/* clang-format on */

/* clang-format off: byte tables laid out by meaning */
Test(aml, large_descriptors_match_iasl)
{
	/* Memory32Fixed (ReadWrite, 0xE0000000, 0x10000000) */
	aml_res_mem32_fixed(&a, 0xe0000000, 0x10000000, true);
	/* Interrupt (ResourceConsumer, Level, ActiveLow, Shared) {16} */
	aml_res_ext_irq(&a, 16, AML_IRQ_ACTIVE_LOW | AML_IRQ_SHARED);
	EXPECT(0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x00, 0x10, 0x89, 0x06,
	       0x00, 0x0d, 0x01, 0x10, 0x00, 0x00, 0x00);
}
/* clang-format on */

/* clang-format off: byte tables laid out by meaning */
Test(aml, pci_root_bridge_windows_match_iasl)
{
	/* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xFF, 0, 0x100) */
	aml_res_word_bus(&a, 0, 0xff);
	/* WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
	 *         0, 0, 0xCF7, 0, 0xCF8) */
	aml_res_word_io(&a, 0, 0xcf7);
	/* DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable,
	 *              ReadWrite, 0, 0xC0000000, 0xFEBFFFFF, 0, 0x3EC00000) */
	aml_res_dword_mem(&a, 0xc0000000, 0xfebfffff, false);
	/* QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable,
	 *              ReadWrite, 0, 0x8000000000, 0xFFFFFFFFFF, 0, 0x8000000000) */
	aml_res_qword_mem(&a, 0x8000000000, 0xffffffffff, true);
	EXPECT(0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00,
	       0x00, 0x01, 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0xf7, 0x0c,
	       0x00, 0x00, 0xf8, 0x0c, 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00,
	       0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xbf, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	       0xc0, 0x3e, 0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	       0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
	       0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	       0x00, 0x00, 0x80, 0x00, 0x00, 0x00);
}
/* clang-format on */

Test(aml, windows_that_cannot_be_encoded)
{
	aml_res_word_io(&a, 0, 0xffff); /* length 0x10000 does not fit a Word */
	cr_assert_eq(aml_result(&a), -EINVAL);
	setup();
	aml_res_dword_mem(&a, 0x2000, 0x1000, false);
	cr_assert_eq(aml_result(&a), -EINVAL);
	cr_assert_eq(buf[0], CANARY);
}

Test(aml, overflow_never_writes_past_cap)
{
	uint8_t small[16 + 8];

	for (size_t cap = 0; cap < 16; cap++) {
		struct aml p;
		size_t r;

		memset(small, CANARY, sizeof(small));
		aml_init(&p, small, cap);
		aml_name_decl(&p, "_CRS");
		r = aml_restemplate_begin(&p);
		aml_res_io(&p, 0x505, 0x505, 1, 1);
		aml_restemplate_end(&p, r);
		/* The whole object is 5 + 4 + 8 + 2 = 19 bytes. */
		cr_assert_eq(aml_result(&p), -ENOSPC, "cap %zu", cap);
		cr_assert(p.len <= cap);
		for (size_t i = cap; i < sizeof(small); i++)
			cr_assert_eq(small[i], CANARY, "cap %zu: byte %zu overwritten", cap, i);
	}
}

Test(aml, overflow_when_closing)
{
	uint8_t small[5];
	struct aml p;
	size_t mark;

	/* The body fits exactly; the PkgLength inserted at close does not. */
	aml_init(&p, small, sizeof(small));
	mark = aml_package_begin(&p, 1);
	aml_int(&p, 0x1234);
	cr_assert_eq(aml_result(&p), 5);
	aml_end(&p, mark);
	cr_assert_eq(aml_result(&p), -ENOSPC);
	aml_init(&p, small, sizeof(small));
	mark = aml_package_begin(&p, 1);
	aml_int(&p, 0x12);
	aml_end(&p, mark);
	cr_assert_eq(aml_result(&p), 5);
	cr_assert_eq(small[1], 0x04); /* PkgLength: count, ByteConst (2), itself */
}

/* ---- operation regions, fields and method bodies (the GED's _EVT) ---- */

/* OperationRegion (EREG, SystemIO, 0x03C8, One), as iasl -oa compiles it. */
Test(aml, opregion_matches_iasl)
{
	aml_opregion(&a, "EREG", AML_REGION_SYSTEM_IO, 0x3c8, 1);
	EXPECT(0x5b, 0x80, 'E', 'R', 'E', 'G', 0x01, 0x0b, 0xc8, 0x03, 0x01);
}

/* Field (EREG, ByteAcc, NoLock, WriteAsZeros) { ESEL, 8 } */
Test(aml, field_matches_iasl)
{
	size_t f = aml_field_begin(&a, "EREG", AML_FIELD_BYTE_ACC | AML_FIELD_WRITE_AS_ZEROS);

	aml_field_unit(&a, "ESEL", 8);
	aml_end(&a, f);
	EXPECT(0x5b, 0x81, 0x0b, 'E', 'R', 'E', 'G', 0x41, 'E', 'S', 'E', 'L', 0x08);
}

Test(aml, field_unit_widths_use_pkglen_encoding)
{
	aml_field_unit(&a, "A", 0x40);
	EXPECT('A', '_', '_', '_', 0x40, 0x04);
}

Test(aml, bad_field_units_are_rejected)
{
	aml_field_unit(&a, "TOOLONG", 8);
	cr_assert_eq(aml_result(&a), -EINVAL);
	setup();
	aml_field_unit(&a, "A.B", 8);
	cr_assert_eq(aml_result(&a), -EINVAL, "a path is not a field name");
	setup();
	aml_field_unit(&a, "ESEL", 0);
	cr_assert_eq(aml_result(&a), -EINVAL, "zero bits");
	setup();
	aml_field_unit(&a, "ESEL", AML_PKGLEN_MAX + 1);
	cr_assert_eq(aml_result(&a), -EINVAL);
}

/* Local0 = ESEL; If ((Local0 & One)) { Notify (PWRB, 0x80) } */
Test(aml, store_if_and_notify_match_iasl)
{
	size_t branch;

	aml_store(&a);
	aml_name(&a, "ESEL");
	aml_local(&a, 0);
	branch = aml_if_begin(&a);
	aml_and(&a);
	aml_local(&a, 0);
	aml_int(&a, 1);
	aml_null_target(&a);
	aml_notify(&a);
	aml_name(&a, "PWRB");
	aml_int(&a, 0x80);
	aml_end(&a, branch);
	EXPECT(0x70, 'E', 'S', 'E', 'L', 0x60, 0xa0, 0x0c, 0x7b, 0x60, 0x01, 0x00, 0x86, 'P', 'W',
	       'R', 'B', 0x0a, 0x80);
}

Test(aml, locals_and_args)
{
	aml_local(&a, 7);
	aml_arg(&a, 0);
	aml_arg(&a, 6);
	EXPECT(0x67, 0x68, 0x6e);
	aml_local(&a, 8);
	cr_assert_eq(aml_result(&a), -EINVAL);
	setup();
	aml_arg(&a, 7);
	cr_assert_eq(aml_result(&a), -EINVAL);
}
