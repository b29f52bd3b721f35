/* The x86-64 Linux boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry. */
#ifndef TABIQUE_ARCH_X86_BOOT_H
#define TABIQUE_ARCH_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct guest_memory;
struct vm;
struct vcpu;

struct boot_config {
	const char *kernel_path;
	const char *initrd_path; /* may be NULL */
	const char *cmdline;
	uint64_t rsdp_gpa; /* ACPI RSDP, 0 for none */
};

/*
 * Loads a bzImage and its initrd into guest memory, builds boot_params (with
 * the e820 map and command line) and points the boot vCPU at the 64-bit
 * entry. Returns 0, or a negative errno after printing one line that names
 * the problem (not a bzImage, truncated, initrd too big ...).
 */
int boot_load_linux(struct vm *vm, const struct boot_config *cfg);

/*
 * The memory half of boot_load_linux(), without KVM: kernel, initrd, command
 * line and boot_params in mem; *entry is the 64-bit entry point.
 */
int boot_prepare_linux(struct guest_memory *mem, const struct boot_config *cfg,
		       uint64_t *entry);

/*
 * Validates a bzImage already in memory: size, "HdrS" magic, protocol >= 2.12,
 * 64-bit entry (XLF_KERNEL_64), setup_sects within the file. On success
 * returns 0 and the offset and size of the protected-mode kernel.
 */
int boot_check_bzimage(const uint8_t *image, size_t size, size_t *kernel_offset,
		       size_t *kernel_size, const char **why);

/*
 * Puts a vCPU in 64-bit mode at CPL0: identity page tables for the first
 * 4 GiB (user-accessible, so test guests can drop to CPL3), a flat GDT,
 * RIP = entry, RSI = rsi, RSP = rsp. Returns 0 or -errno.
 */
int boot_enter_long_mode(struct vm *vm, struct vcpu *vcpu, uint64_t entry, uint64_t rsi,
			 uint64_t rsp);

#endif
