#include "arch/x86/aml.h"

#include <errno.h>
#include <string.h>

/* Opcodes and prefixes (ACPI 6.x, 20.2). */
#define AML_ZERO_OP	  0x00
#define AML_ONE_OP	  0x01
#define AML_NAME_OP	  0x08
#define AML_BYTE_PREFIX	  0x0a
#define AML_WORD_PREFIX	  0x0b
#define AML_DWORD_PREFIX  0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX  0x0e
#define AML_SCOPE_OP	  0x10
#define AML_BUFFER_OP	  0x11
#define AML_PACKAGE_OP	  0x12
#define AML_METHOD_OP	  0x14
#define AML_DUAL_NAME	  0x2e
#define AML_MULTI_NAME	  0x2f
#define AML_EXT_OP	  0x5b
#define AML_DEVICE_OP	  0x82 /* after AML_EXT_OP */
#define AML_OPREGION_OP	  0x80 /* after AML_EXT_OP */
#define AML_FIELD_OP	  0x81 /* after AML_EXT_OP */
#define AML_LOCAL0_OP	  0x60
#define AML_ARG0_OP	  0x68
#define AML_STORE_OP	  0x70
#define AML_AND_OP	  0x7b
#define AML_NOTIFY_OP	  0x86
#define AML_IF_OP	  0xa0
#define AML_ROOT_CHAR	  '\\'
#define AML_PARENT_CHAR	  '^'
#define AML_RETURN_OP	  0xa4

/* Resource descriptor tags (ACPI 6.x, 6.4). */
#define AML_RES_IRQ	   0x23 /* small, 3 bytes of data */
#define AML_RES_IO	   0x47 /* small, 7 bytes of data */
#define AML_RES_END	   0x79 /* small, 1 byte: checksum */
#define AML_RES_MEM32FIXED 0x86
#define AML_RES_DWORD_ADDR 0x87
#define AML_RES_WORD_ADDR  0x88
#define AML_RES_EXT_IRQ	   0x89
#define AML_RES_QWORD_ADDR 0x8a

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	a->buf = buf;
	a->cap = cap;
	a->len = 0;
	a->err = 0;
}

long aml_result(const struct aml *a)
{
	return a->err ? a->err : (long)a->len;
}

static void aml_fail(struct aml *a, int err)
{
	if (a->err == 0)
		a->err = err;
}

void aml_raw(struct aml *a, const void *data, size_t n)
{
	if (a->err)
		return;
	if (n > a->cap - a->len) {
		aml_fail(a, -ENOSPC);
		return;
	}
	memcpy(a->buf + a->len, data, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_raw(a, &b, 1);
}

/* Inserts data at off, shifting what follows: lengths are known only at close. */
static void aml_insert(struct aml *a, size_t off, const uint8_t *data, size_t n)
{
	if (a->err)
		return;
	if (off > a->len) {
		aml_fail(a, -EINVAL);
		return;
	}
	if (n > a->cap - a->len) {
		aml_fail(a, -ENOSPC);
		return;
	}
	memmove(a->buf + off + n, a->buf + off, a->len - off);
	memcpy(a->buf + off, data, n);
	a->len += n;
}

static void aml_le(uint8_t *out, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

int aml_pkglen_encode(uint8_t out[4], uint32_t value)
{
	if (value <= 0x3f) {
		out[0] = (uint8_t)value;
		return 1;
	}
	if (value > AML_PKGLEN_MAX)
		return -EINVAL;
	/* Lead byte: count of extra bytes in bits 7-6, low nibble in bits 3-0. */
	int extra = value <= 0xfff ? 1 : value <= 0xfffff ? 2 : 3;

	out[0] = (uint8_t)((extra << 6) | (value & 0x0f));
	aml_le(out + 1, value >> 4, (unsigned)extra);
	return extra + 1;
}

void aml_end(struct aml *a, size_t mark)
{
	uint8_t enc[4];
	size_t body;
	int n;

	if (a->err)
		return;
	if (mark > a->len) {
		aml_fail(a, -EINVAL);
		return;
	}
	body = a->len - mark;
	/* PkgLength counts its own bytes, so try each width in turn. */
	for (n = 1; n <= 4; n++) {
		if (body + (size_t)n <= AML_PKGLEN_MAX &&
		    aml_pkglen_encode(enc, (uint32_t)(body + (size_t)n)) == n)
			break;
	}
	if (n > 4) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_insert(a, mark, enc, (size_t)n);
}

static unsigned aml_int_encode(uint8_t out[9], uint64_t v)
{
	if (v <= 1) {
		out[0] = v ? AML_ONE_OP : AML_ZERO_OP;
		return 1;
	}
	unsigned n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffff ? 4 : 8;

	out[0] = n == 1	  ? AML_BYTE_PREFIX
		 : n == 2 ? AML_WORD_PREFIX
		 : n == 4 ? AML_DWORD_PREFIX
			  : AML_QWORD_PREFIX;
	aml_le(out + 1, v, n);
	return n + 1;
}

void aml_int(struct aml *a, uint64_t v)
{
	uint8_t enc[9];

	aml_raw(a, enc, aml_int_encode(enc, v));
}

void aml_dword(struct aml *a, uint32_t v)
{
	uint8_t enc[5] = {AML_DWORD_PREFIX};

	aml_le(enc + 1, v, 4);
	aml_raw(a, enc, sizeof(enc));
}

void aml_string(struct aml *a, const char *s)
{
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p > 0x7f) {
			aml_fail(a, -EINVAL);
			return;
		}
	}
	aml_byte(a, AML_STRING_PREFIX);
	aml_raw(a, s, strlen(s) + 1);
}

static int aml_eisaid_letter(char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 1 : -1;
}

static int aml_eisaid_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

uint32_t aml_eisaid(const char *id)
{
	uint32_t v = 0;
	int i;

	if (strlen(id) != 7)
		return 0;
	/* Three 5-bit letters then four nibbles, most significant first... */
	for (i = 0; i < 3; i++) {
		if (aml_eisaid_letter(id[i]) < 0)
			return 0;
		v = (v << 5) | (uint32_t)aml_eisaid_letter(id[i]);
	}
	for (; i < 7; i++) {
		if (aml_eisaid_hex(id[i]) < 0)
			return 0;
		v = (v << 4) | (uint32_t)aml_eisaid_hex(id[i]);
	}
	/* ...stored big-endian, so the little-endian DWord is byte-swapped. */
	return __builtin_bswap32(v);
}

void aml_eisaid_const(struct aml *a, const char *id)
{
	uint32_t v = aml_eisaid(id);

	if (v == 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_dword(a, v);
}

static bool aml_seg_char(char c, bool lead)
{
	if ((c >= 'A' && c <= 'Z') || c == '_')
		return true;
	return !lead && c >= '0' && c <= '9';
}

/* Validates the segment at s (up to '.' or NUL) into seg; returns its length or -EINVAL. */
static int aml_seg(const char *s, uint8_t seg[4])
{
	int n = 0;

	while (s[n] && s[n] != '.') {
		if (n == 4 || !aml_seg_char(s[n], n == 0))
			return -EINVAL;
		seg[n] = (uint8_t)s[n];
		n++;
	}
	if (n == 0)
		return -EINVAL;
	for (int i = n; i < 4; i++)
		seg[i] = '_';
	return n;
}

/* Number of valid segments in path (no prefix), or -EINVAL. */
static int aml_path_count(const char *path)
{
	uint8_t seg[4];
	int count = 0, n;

	if (*path == '\0')
		return 0;
	for (;;) {
		n = aml_seg(path, seg);
		if (n < 0 || ++count > 255)
			return -EINVAL;
		path += n;
		if (*path == '\0')
			return count;
		path++; /* '.' */
	}
}

void aml_name(struct aml *a, const char *path)
{
	const char *rest = path[0] == AML_ROOT_CHAR ? path + 1 : path + strspn(path, "^");
	int count = aml_path_count(rest);
	uint8_t seg[4];

	if (count < 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_raw(a, path, (size_t)(rest - path));
	if (count == 0)
		aml_byte(a, AML_ZERO_OP); /* NullName */
	else if (count == 2)
		aml_byte(a, AML_DUAL_NAME);
	else if (count > 2) {
		aml_byte(a, AML_MULTI_NAME);
		aml_byte(a, (uint8_t)count);
	}
	for (int i = 0; i < count; i++) {
		rest += aml_seg(rest, seg) + 1;
		aml_raw(a, seg, sizeof(seg));
	}
}

void aml_name_decl(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME_OP);
	aml_name(a, path);
}

void aml_name_int(struct aml *a, const char *path, uint64_t v)
{
	aml_name_decl(a, path);
	aml_int(a, v);
}

void aml_name_string(struct aml *a, const char *path, const char *s)
{
	aml_name_decl(a, path);
	aml_string(a, s);
}

void aml_name_eisaid(struct aml *a, const char *path, const char *id)
{
	aml_name_decl(a, path);
	aml_eisaid_const(a, id);
}

void aml_return(struct aml *a)
{
	aml_byte(a, AML_RETURN_OP);
}

size_t aml_scope_begin(struct aml *a, const char *path)
{
	size_t mark;

	aml_byte(a, AML_SCOPE_OP);
	mark = a->len;
	aml_name(a, path);
	return mark;
}

size_t aml_device_begin(struct aml *a, const char *path)
{
	size_t mark;

	aml_byte(a, AML_EXT_OP);
	aml_byte(a, AML_DEVICE_OP);
	mark = a->len;
	aml_name(a, path);
	return mark;
}

size_t aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized)
{
	size_t mark;

	if (nargs > 7)
		aml_fail(a, -EINVAL);
	aml_byte(a, AML_METHOD_OP);
	mark = a->len;
	aml_name(a, path);
	/* MethodFlags: ArgCount in bits 2-0, SerializeFlag in bit 3, SyncLevel 0. */
	aml_byte(a, (uint8_t)((nargs & 7) | (serialized ? 0x08 : 0)));
	return mark;
}

size_t aml_package_begin(struct aml *a, uint8_t nelem)
{
	size_t mark;

	aml_byte(a, AML_PACKAGE_OP);
	mark = a->len;
	aml_byte(a, nelem);
	return mark;
}

void aml_opregion(struct aml *a, const char *name, uint8_t space, uint64_t offset, uint64_t len)
{
	aml_byte(a, AML_EXT_OP);
	aml_byte(a, AML_OPREGION_OP);
	aml_name(a, name);
	aml_byte(a, space);
	aml_int(a, offset);
	aml_int(a, len);
}

size_t aml_field_begin(struct aml *a, const char *region, uint8_t flags)
{
	size_t mark;

	aml_byte(a, AML_EXT_OP);
	aml_byte(a, AML_FIELD_OP);
	mark = a->len;
	aml_name(a, region);
	aml_byte(a, flags);
	return mark;
}

void aml_field_unit(struct aml *a, const char *name, uint32_t bits)
{
	uint8_t seg[4], enc[4];
	int n;

	/* A NamedField is a bare NameSeg; its bit length is PkgLength-encoded. */
	if (aml_seg(name, seg) < 0 || name[strcspn(name, ".")] != '\0' || bits == 0 ||
	    (n = aml_pkglen_encode(enc, bits)) < 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_raw(a, seg, sizeof(seg));
	aml_raw(a, enc, (size_t)n);
}

void aml_store(struct aml *a)
{
	aml_byte(a, AML_STORE_OP);
}

void aml_and(struct aml *a)
{
	aml_byte(a, AML_AND_OP);
}

void aml_notify(struct aml *a)
{
	aml_byte(a, AML_NOTIFY_OP);
}

void aml_null_target(struct aml *a)
{
	aml_byte(a, AML_ZERO_OP); /* NullName */
}

void aml_local(struct aml *a, unsigned n)
{
	if (n > 7) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, (uint8_t)(AML_LOCAL0_OP + n));
}

void aml_arg(struct aml *a, unsigned n)
{
	if (n > 6) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, (uint8_t)(AML_ARG0_OP + n));
}

size_t aml_if_begin(struct aml *a)
{
	aml_byte(a, AML_IF_OP);
	return a->len;
}

size_t aml_buffer_begin(struct aml *a)
{
	aml_byte(a, AML_BUFFER_OP);
	return a->len;
}

void aml_buffer_end(struct aml *a, size_t mark)
{
	uint8_t enc[9];

	if (a->err)
		return;
	if (mark > a->len) {
		aml_fail(a, -EINVAL);
		return;
	}
	/* BufferSize comes before the bytes it counts. */
	aml_insert(a, mark, enc, aml_int_encode(enc, a->len - mark));
	aml_end(a, mark);
}

size_t aml_restemplate_begin(struct aml *a)
{
	return aml_buffer_begin(a);
}

void aml_restemplate_end(struct aml *a, size_t mark)
{
	aml_byte(a, AML_RES_END);
	aml_byte(a, 0);
	aml_buffer_end(a, mark);
}

void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	uint8_t d[8] = {AML_RES_IO, 0x01 /* 16-bit decode */};

	aml_le(d + 2, min, 2);
	aml_le(d + 4, max, 2);
	d[6] = align;
	d[7] = len;
	aml_raw(a, d, sizeof(d));
}

void aml_res_irq(struct aml *a, unsigned irq, unsigned flags)
{
	uint8_t d[4] = {AML_RES_IRQ};

	if (irq > 15) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_le(d + 1, 1u << irq, 2);
	/* Information byte: _HE bit 0, _LL bit 3, _SHR bit 4. */
	d[3] = (uint8_t)(((flags & AML_IRQ_EDGE) ? 0x01 : 0) |
			 ((flags & AML_IRQ_ACTIVE_LOW) ? 0x08 : 0) |
			 ((flags & AML_IRQ_SHARED) ? 0x10 : 0));
	aml_raw(a, d, sizeof(d));
}

void aml_res_ext_irq(struct aml *a, uint32_t gsi, unsigned flags)
{
	uint8_t d[9] = {AML_RES_EXT_IRQ, 6, 0};

	/* Flags: consumer bit 0, _HE bit 1, _LL bit 2, _SHR bit 3; one interrupt. */
	d[3] = (uint8_t)(0x01 | ((flags & AML_IRQ_EDGE) ? 0x02 : 0) |
			 ((flags & AML_IRQ_ACTIVE_LOW) ? 0x04 : 0) |
			 ((flags & AML_IRQ_SHARED) ? 0x08 : 0));
	d[4] = 1;
	aml_le(d + 5, gsi, 4);
	aml_raw(a, d, sizeof(d));
}

void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t len, bool writable)
{
	uint8_t d[12] = {AML_RES_MEM32FIXED, 9, 0};

	d[3] = writable ? 0x01 : 0x00;
	aml_le(d + 4, base, 4);
	aml_le(d + 8, len, 4);
	aml_raw(a, d, sizeof(d));
}

/* The three address space descriptors differ only in tag and field width. */
static void aml_res_addr(struct aml *a, uint8_t tag, unsigned width, const struct aml_addr_space *s)
{
	const uint64_t f[5] = {s->granularity, s->min, s->max, s->translation, s->len};
	uint64_t limit = width == 8 ? UINT64_MAX : (1ULL << (8 * width)) - 1;
	uint8_t d[3 + 3 + 5 * 8];
	size_t dlen = 3 + 5 * width;

	for (int i = 0; i < 5; i++) {
		if (f[i] > limit) {
			aml_fail(a, -EINVAL);
			return;
		}
		aml_le(d + 6 + i * width, f[i], width);
	}
	d[0] = tag;
	aml_le(d + 1, dlen, 2);
	d[3] = s->type;
	d[4] = s->flags;
	d[5] = s->type_flags;
	aml_raw(a, d, 3 + dlen);
}

void aml_res_word_addr(struct aml *a, const struct aml_addr_space *s)
{
	aml_res_addr(a, AML_RES_WORD_ADDR, 2, s);
}

void aml_res_dword_addr(struct aml *a, const struct aml_addr_space *s)
{
	aml_res_addr(a, AML_RES_DWORD_ADDR, 4, s);
}

void aml_res_qword_addr(struct aml *a, const struct aml_addr_space *s)
{
	aml_res_addr(a, AML_RES_QWORD_ADDR, 8, s);
}

/* A producer window with fixed bounds [min, max]. */
static void aml_res_window(struct aml *a, unsigned width, uint8_t type, uint8_t type_flags,
			   uint64_t min, uint64_t max)
{
	static const uint8_t tags[9] = {
	    [2] = AML_RES_WORD_ADDR, [4] = AML_RES_DWORD_ADDR, [8] = AML_RES_QWORD_ADDR};
	struct aml_addr_space s = {
	    .type = type,
	    .flags = AML_ADDR_MIN_FIXED | AML_ADDR_MAX_FIXED,
	    .type_flags = type_flags,
	    .min = min,
	    .max = max,
	    .len = max - min + 1,
	};

	/* A whole 2^64 window has no length; oversize lengths fail in aml_res_addr. */
	if (max < min || s.len == 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_res_addr(a, tags[width], width, &s);
}

static uint8_t aml_mem_flags(bool cacheable)
{
	return AML_MEM_RW | (cacheable ? AML_MEM_CACHEABLE : AML_MEM_NON_CACHEABLE);
}

void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_window(a, 2, AML_ADDR_BUS, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_window(a, 2, AML_ADDR_IO, AML_IO_ENTIRE_RANGE, min, max);
}

void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max, bool cacheable)
{
	aml_res_window(a, 4, AML_ADDR_MEM, aml_mem_flags(cacheable), min, max);
}

void aml_res_qword_mem(struct aml *a, uint64_t min, uint64_t max, bool cacheable)
{
	aml_res_window(a, 8, AML_ADDR_MEM, aml_mem_flags(cacheable), min, max);
}
