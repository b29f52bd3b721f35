/* The bzImage loader against synthetic images: what Linux finds in boot_params. */
#include <asm/bootparam.h>
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "vmm/memory.h"

#define SETUP_SECTS 4
#define KERNEL_BYTES (64 * 1024)
#define PREF_ADDR 0x1000000U
#define INIT_SIZE (8U << 20)

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* A minimal image with a 2.15 header; the "kernel" is a byte pattern. */
static size_t make_bzimage(uint8_t *img)
{
	size_t setup = (SETUP_SECTS + 1) * 512;

	memset(img, 0, setup + KERNEL_BYTES);
	img[0x1f1] = SETUP_SECTS;
	put32(img + 0x1f4, KERNEL_BYTES / 16);
	put16(img + 0x1fe, 0xaa55);
	img[0x200] = 0xeb;
	img[0x201] = 0x6a; /* header runs to 0x26c */
	memcpy(img + 0x202, "HdrS", 4);
	put16(img + 0x206, 0x020f);
	img[0x211] = LOADED_HIGH;
	put32(img + 0x214, 0x100000);
	put32(img + 0x22c, 0x7fffffff);  /* initrd_addr_max */
	put32(img + 0x230, 0x200000);    /* kernel_alignment */
	img[0x234] = 1;                  /* relocatable */
	put16(img + 0x236, XLF_KERNEL_64);
	put32(img + 0x238, 2048);        /* cmdline_size */
	put32(img + 0x258, PREF_ADDR);   /* pref_address (low half) */
	put32(img + 0x260, INIT_SIZE);
	for (size_t i = 0; i < KERNEL_BYTES; i++)
		img[setup + i] = (uint8_t)(i * 7);
	return setup + KERNEL_BYTES;
}

static char *write_temp(const void *data, size_t len)
{
	char *path = strdup("/tmp/tabique-test-XXXXXX");
	int fd = mkstemp(path);

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static uint8_t image[(SETUP_SECTS + 1) * 512 + KERNEL_BYTES];

Test(boot, loads_kernel_initrd_cmdline_and_zero_page)
{
	struct guest_memory mem;
	size_t size = make_bzimage(image);
	char initrd_data[10000];
	char *kernel = write_temp(image, size), *initrd;
	struct boot_config cfg = {kernel, NULL, "console=ttyS0 quiet", LAYOUT_ACPI};
	struct boot_params bp;
	uint64_t entry;

	memset(initrd_data, 0x5a, sizeof(initrd_data));
	initrd = write_temp(initrd_data, sizeof(initrd_data));
	cfg.initrd_path = initrd;
	cr_assert_eq(memory_init(&mem, 256ULL << 20), 0);
	cr_assert_eq(boot_prepare_linux(&mem, &cfg, &entry), 0);
	cr_assert_eq(entry, PREF_ADDR + 0x200, "64-bit entry is startup_64 at load + 0x200");
	cr_assert_eq(memcmp(gpa_to_hva(&mem, PREF_ADDR, KERNEL_BYTES), image + 5 * 512, KERNEL_BYTES), 0);
	memory_read(&mem, LAYOUT_ZERO_PAGE, &bp, sizeof(bp));
	cr_assert_eq(bp.hdr.header, 0x53726448U);
	cr_assert_eq(bp.hdr.type_of_loader, 0xff);
	cr_assert(bp.hdr.loadflags & CAN_USE_HEAP);
	cr_assert_eq(bp.hdr.code32_start, PREF_ADDR);
	cr_assert_eq(bp.acpi_rsdp_addr, LAYOUT_ACPI);
	cr_assert_str_eq((char *)gpa_to_hva(&mem, bp.hdr.cmd_line_ptr, 20), "console=ttyS0 quiet");
	cr_assert_eq(bp.hdr.ramdisk_size, sizeof(initrd_data));
	cr_assert_eq(bp.hdr.ramdisk_image % 4096, 0);
	cr_assert(bp.hdr.ramdisk_image >= PREF_ADDR + INIT_SIZE, "initrd overlaps the kernel");
	cr_assert(bp.hdr.ramdisk_image + sizeof(initrd_data) <= 256ULL << 20);
	cr_assert_eq(memcmp(gpa_to_hva(&mem, bp.hdr.ramdisk_image, sizeof(initrd_data)), initrd_data,
			    sizeof(initrd_data)), 0);
	cr_assert_eq(bp.e820_entries, 3);
	memory_destroy(&mem);
	unlink(kernel);
	unlink(initrd);
	free(kernel);
	free(initrd);
}

Test(boot, big_guest_e820_and_initrd_below_the_hole)
{
	struct guest_memory mem;
	size_t size = make_bzimage(image);
	char *kernel = write_temp(image, size);
	char *initrd = write_temp("x", 1);
	struct boot_config cfg = {kernel, initrd, "", 0};
	struct boot_params bp;
	uint64_t entry;

	cr_assert_eq(memory_init(&mem, 5ULL << 30), 0);
	cr_assert_eq(boot_prepare_linux(&mem, &cfg, &entry), 0);
	memory_read(&mem, LAYOUT_ZERO_PAGE, &bp, sizeof(bp));
	cr_assert_eq(bp.e820_entries, 4);
	cr_assert_eq(bp.e820_table[3].addr, LAYOUT_HIGH_RAM);
	cr_assert_eq(bp.e820_table[3].size, (5ULL << 30) - LAYOUT_MMIO_HOLE);
	cr_assert(bp.hdr.ramdisk_image < LAYOUT_MMIO_HOLE);
	memory_destroy(&mem);
	unlink(kernel);
	unlink(initrd);
	free(kernel);
	free(initrd);
}

static int prepare_with(const uint8_t *img, size_t len, const char *cmdline, uint64_t memsize)
{
	struct guest_memory mem;
	char *kernel = write_temp(img, len);
	struct boot_config cfg = {kernel, NULL, cmdline, 0};
	uint64_t entry;
	int ret;

	cr_assert_eq(memory_init(&mem, memsize), 0);
	ret = boot_prepare_linux(&mem, &cfg, &entry);
	memory_destroy(&mem);
	unlink(kernel);
	free(kernel);
	return ret;
}

Test(boot, rejects_bad_images, .init = cr_redirect_stderr)
{
	size_t size = make_bzimage(image);
	static uint8_t bad[sizeof(image)];
	char longline[4096];

	memcpy(bad, image, size);
	memcpy(bad + 0x202, "HdrX", 4);
	cr_assert_eq(prepare_with(bad, size, "", 64 << 20), -ENOEXEC);
	memcpy(bad, image, size);
	put16(bad + 0x236, 0);
	cr_assert_eq(prepare_with(bad, size, "", 64 << 20), -ENOEXEC, "no 64-bit entry");
	memcpy(bad, image, size);
	put16(bad + 0x206, 0x0204);
	cr_assert_eq(prepare_with(bad, size, "", 64 << 20), -ENOEXEC, "old protocol");
	cr_assert_eq(prepare_with(image, size - 1, "", 64 << 20), -ENOEXEC, "truncated");
	cr_assert_eq(prepare_with(image, 0x100, "", 64 << 20), -ENOEXEC, "tiny");
	cr_assert_eq(prepare_with(image, 0, "", 64 << 20), -ENOEXEC, "empty");
	cr_assert_eq(prepare_with(image, size, "", 16 << 20), -ENOMEM, "no room to unpack");
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	cr_assert_eq(prepare_with(image, size, longline, 64 << 20), -E2BIG);
}

Test(boot, random_headers_never_crash, .init = cr_redirect_stderr)
{
	size_t size = make_bzimage(image);
	static uint8_t fuzz[sizeof(image)];
	size_t koff, ksize;
	const char *why;

	srand(1234);
	for (int round = 0; round < 20000; round++) {
		memcpy(fuzz, image, size);
		for (int k = 0; k < 4; k++)
			fuzz[0x1f1 + rand() % 0x80] = (uint8_t)rand();
		if (boot_check_bzimage(fuzz, size, &koff, &ksize, &why) == 0)
			cr_assert(koff + ksize == size && koff < size);
	}
}
