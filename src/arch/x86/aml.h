/*
 * A small ACPI Machine Language (AML) byte-code builder, enough to describe
 * platform devices and a PCI root bridge in a DSDT (ACPI 6.x, chapter 20).
 *
 * The builder writes into a caller-owned buffer. Errors are sticky: after the
 * first one (-ENOSPC when the buffer is full, -EINVAL for a bad name or
 * value) every call is a no-op, so callers emit a whole table and check once
 * with aml_result(). Nothing is ever written past cap.
 *
 * Objects with a PkgLength (Scope, Device, Method, Package, Buffer) are
 * opened with a *_begin() call that returns a mark, filled, and closed with
 * the matching *_end(mark) in LIFO order; the length is encoded at close in
 * its shortest form.
 */
#ifndef TABIQUE_ARCH_X86_AML_H
#define TABIQUE_ARCH_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int err; /* 0, -ENOSPC or -EINVAL; sticky */
};

#define AML_PKGLEN_MAX 0x0fffffffu /* 28 bits: the 4-byte form */

/* Starts an empty AML stream in buf[0..cap). */
void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* Bytes written so far, or the first error (negative errno). */
long aml_result(const struct aml *a);

/*
 * Encodes a raw PkgLength value (which counts its own bytes) into out.
 * Returns the number of bytes used (1-4), or -EINVAL above AML_PKGLEN_MAX.
 */
int aml_pkglen_encode(uint8_t out[4], uint32_t value);

/*
 * Compresses a 7-character EISA id such as "PNP0501" (three letters A-Z,
 * four upper-case hex digits) into the 32-bit value _HID/_CID expect.
 * Returns 0, never a valid id, when the string is malformed.
 */
uint32_t aml_eisaid(const char *id);

/* Raw bytes, for opcodes this builder does not wrap (yet). */
void aml_byte(struct aml *a, uint8_t b);
void aml_raw(struct aml *a, const void *data, size_t n);

/* Integer in its shortest form: ZeroOp, OneOp, Byte/Word/DWord/QWordConst. */
void aml_int(struct aml *a, uint64_t v);
/* Always a DWordConst (EISA ids, values a later patcher may rewrite). */
void aml_dword(struct aml *a, uint32_t v);
/* String constant; characters must be 0x01-0x7f. */
void aml_string(struct aml *a, const char *s);
/* EISA id as a DWordConst; -EINVAL when malformed. */
void aml_eisaid_const(struct aml *a, const char *id);

/*
 * NameString from an ASL-style path: an optional "\" (root) or "^" prefixes,
 * then dot-separated segments of 1-4 characters ([A-Z_][A-Z0-9_]*), padded
 * with '_' ("_SB" and "_SB_" are the same). "\" alone is the root itself.
 */
void aml_name(struct aml *a, const char *path);
/* Name(path, ...): NameOp and the name; emit exactly one data object next. */
void aml_name_decl(struct aml *a, const char *path);
/* Shorthands for Name(path, value). */
void aml_name_int(struct aml *a, const char *path, uint64_t v);
void aml_name_string(struct aml *a, const char *path, const char *s);
void aml_name_eisaid(struct aml *a, const char *path, const char *id);

/* Return(...): ReturnOp; emit exactly one value next. */
void aml_return(struct aml *a);

size_t aml_scope_begin(struct aml *a, const char *path);
size_t aml_device_begin(struct aml *a, const char *path);
/* Method(path, nargs (0-7), Serialized/NotSerialized), sync level 0. */
size_t aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized);
/* Package(nelem) { ... }: the caller emits exactly nelem elements. */
size_t aml_package_begin(struct aml *a, uint8_t nelem);
/* Closes a Scope, Device, Method or Package. */
void aml_end(struct aml *a, size_t mark);

/* OperationRegion(name, space, offset, len): a window on an address space. */
#define AML_REGION_SYSTEM_MEMORY 0x00
#define AML_REGION_SYSTEM_IO	 0x01
void aml_opregion(struct aml *a, const char *name, uint8_t space, uint64_t offset, uint64_t len);

/* Field flags: access type, lock rule and update rule (ACPI 6.x, 19.6.48). */
#define AML_FIELD_ANY_ACC	 0x00
#define AML_FIELD_BYTE_ACC	 0x01
#define AML_FIELD_WORD_ACC	 0x02
#define AML_FIELD_DWORD_ACC	 0x03
#define AML_FIELD_LOCK		 0x10
#define AML_FIELD_PRESERVE	 0x00
#define AML_FIELD_WRITE_AS_ONES	 0x20
#define AML_FIELD_WRITE_AS_ZEROS 0x40
/* Field(region, flags) { units }: add units with aml_field_unit(), close with aml_end(). */
size_t aml_field_begin(struct aml *a, const char *region, uint8_t flags);
/* A named field of bits bits; name is one segment of 1-4 characters. */
void aml_field_unit(struct aml *a, const char *name, uint32_t bits);

/*
 * Operators for method bodies. Each emits its opcode only: the caller emits
 * the operands next, in ASL order (Store: source then target; And: two
 * operands then a target, aml_null_target() for none; Notify: the object
 * then the value).
 */
void aml_store(struct aml *a);
void aml_and(struct aml *a);
void aml_notify(struct aml *a);
void aml_null_target(struct aml *a);
/* Local0-Local7 and Arg0-Arg6; other numbers set -EINVAL. */
void aml_local(struct aml *a, unsigned n);
void aml_arg(struct aml *a, unsigned n);
/* If (predicate) { ... }: emit the predicate then the body; close with aml_end(). */
size_t aml_if_begin(struct aml *a);

/* Buffer() { bytes }: the size operand is computed at close. */
size_t aml_buffer_begin(struct aml *a);
void aml_buffer_end(struct aml *a, size_t mark);

/* ResourceTemplate() { descriptors }: a Buffer closed by an EndTag. */
size_t aml_restemplate_begin(struct aml *a);
/* Appends the EndTag (checksum 0: "treat as valid") and closes the buffer. */
void aml_restemplate_end(struct aml *a, size_t mark);

/* Interrupt flags for the IRQ descriptors; 0 is level, active-high, exclusive. */
#define AML_IRQ_EDGE	   0x01u
#define AML_IRQ_ACTIVE_LOW 0x02u
#define AML_IRQ_SHARED	   0x04u
#define AML_IRQ_ISA	   AML_IRQ_EDGE /* ISA: edge, active-high, exclusive */

/* IO(Decode16, min, max, align, len): small I/O port descriptor. */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQ(...) {irq}: small IRQ descriptor for ISA IRQ 0-15. */
void aml_res_irq(struct aml *a, unsigned irq, unsigned flags);
/* Interrupt(ResourceConsumer, ...) {gsi}: extended descriptor, any GSI. */
void aml_res_ext_irq(struct aml *a, uint32_t gsi, unsigned flags);
/* Memory32Fixed(ReadWrite or ReadOnly, base, len). */
void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t len, bool writable);

/* Address space descriptors (Word/DWord/QWord): resource type. */
#define AML_ADDR_MEM 0
#define AML_ADDR_IO  1
#define AML_ADDR_BUS 2

/* General flags. A bridge's windows are producers (bit clear). */
#define AML_ADDR_CONSUMER   0x01u
#define AML_ADDR_SUB_DECODE 0x02u
#define AML_ADDR_MIN_FIXED  0x04u
#define AML_ADDR_MAX_FIXED  0x08u

/* Type-specific flags for AML_ADDR_MEM. */
#define AML_MEM_RW	       0x01u
#define AML_MEM_NON_CACHEABLE  (0u << 1)
#define AML_MEM_CACHEABLE      (1u << 1)
#define AML_MEM_WRITE_COMBINED (2u << 1)
#define AML_MEM_PREFETCHABLE   (3u << 1)
/* Type-specific flags for AML_ADDR_IO. */
#define AML_IO_ENTIRE_RANGE 0x03u

struct aml_addr_space {
	uint8_t type;	    /* AML_ADDR_* */
	uint8_t flags;	    /* AML_ADDR_CONSUMER | ... */
	uint8_t type_flags; /* AML_MEM_* or AML_IO_* */
	uint64_t granularity, min, max, translation, len;
};

/* Fields too wide for the descriptor set -EINVAL. */
void aml_res_word_addr(struct aml *a, const struct aml_addr_space *s);
void aml_res_dword_addr(struct aml *a, const struct aml_addr_space *s);
void aml_res_qword_addr(struct aml *a, const struct aml_addr_space *s);

/*
 * Producer windows with fixed bounds [min, max], the usual shape of a PCI
 * root bridge's _CRS: WordBusNumber, WordIO (entire range), DWordMemory and
 * QWordMemory (read-write; cacheable selects Cacheable over NonCacheable).
 */
void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max, bool cacheable);
void aml_res_qword_mem(struct aml *a, uint64_t min, uint64_t max, bool cacheable);

#endif
