#include "arch/x86/boot.h"

#include <asm/bootparam.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "util/log.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/* Offsets in a bzImage (Documentation/arch/x86/boot.rst). */
#define BZ_SETUP_SECTS   0x1f1
#define BZ_SYSSIZE       0x1f4
#define BZ_BOOT_FLAG     0x1fe
#define BZ_JUMP_END      0x201 /* the setup header ends at 0x202 + this byte */
#define BZ_HEADER_MAGIC  0x202
#define BZ_VERSION       0x206
#define BZ_MIN_SIZE      0x268 /* through init_size */
#define BZ_MIN_VERSION   0x020c /* 2.12: xloadflags, 64-bit entry */
#define BZ_ENTRY_64      0x200 /* startup_64 is 512 bytes into the kernel */
#define BZ_MAX_FILE      (512ULL << 20)
#define BZ_LOADER_UNDEF  0xff

/* Page-table entry bits. */
#define PTE_PRESENT 0x1ULL
#define PTE_WRITE   0x2ULL
#define PTE_USER    0x4ULL
#define PTE_HUGE    0x80ULL

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int boot_check_bzimage(const uint8_t *image, size_t size, size_t *kernel_offset,
		       size_t *kernel_size, const char **why)
{
	const struct setup_header *hdr = (const void *)(image + BZ_SETUP_SECTS);
	size_t setup_sects, offset;

	if (size < BZ_MIN_SIZE || le16(image + BZ_BOOT_FLAG) != 0xaa55 ||
	    memcmp(image + BZ_HEADER_MAGIC, "HdrS", 4) != 0) {
		*why = "is not a Linux bzImage (no boot sector signature or \"HdrS\" header)";
		return -ENOEXEC;
	}
	if (le16(image + BZ_VERSION) < BZ_MIN_VERSION || !(hdr->xloadflags & XLF_KERNEL_64)) {
		*why = "is a bzImage without a 64-bit entry point (boot protocol 2.12+ needed)";
		return -ENOEXEC;
	}
	setup_sects = image[BZ_SETUP_SECTS] ? image[BZ_SETUP_SECTS] : 4;
	offset = (setup_sects + 1) * 512;
	if (offset >= size || (uint64_t)le32(image + BZ_SYSSIZE) * 16 > size - offset) {
		*why = "is truncated (the header promises more kernel than the file holds)";
		return -ENOEXEC;
	}
	*kernel_offset = offset;
	*kernel_size = size - offset;
	return 0;
}

/* Reads a whole regular file of at most max bytes. Caller frees *data. */
static int boot_read_file(const char *path, size_t max, uint8_t **data, size_t *size)
{
	struct stat st;
	ssize_t got = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		ret = -EFBIG;
		goto out;
	}
	*size = (size_t)st.st_size;
	*data = malloc(*size ? *size : 1);
	if (*data == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	while ((size_t)got < *size) {
		ssize_t n = read(fd, *data + got, *size - (size_t)got);

		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			free(*data);
			goto out;
		}
		got += n;
	}
out:
	close(fd);
	return ret;
}

static void boot_file_error(const char *what, const char *path, int err)
{
	if (err == -EFBIG)
		log_error("%s %s is too big to be a %s", what, path, what);
	else if (err == -EINVAL)
		log_error("%s %s is not a regular file", what, path);
	else
		log_error("cannot read %s %s: %s", what, path, strerror(-err));
}

/* Where the protected-mode kernel goes and how much room it needs from there. */
static int boot_kernel_placement(const struct setup_header *hdr, uint64_t low_ram,
				 uint64_t *load_addr)
{
	uint64_t addr = hdr->relocatable_kernel ? hdr->pref_address : LAYOUT_KERNEL;

	if (addr < LAYOUT_KERNEL)
		addr = LAYOUT_KERNEL;
	if (addr + hdr->init_size > low_ram) {
		log_error("the kernel needs %llu MiB of guest memory to unpack: give more --memory",
			  (unsigned long long)((addr + hdr->init_size) >> 20) + 1);
		return -ENOMEM;
	}
	*load_addr = addr;
	return 0;
}

static int boot_load_initrd(struct guest_memory *mem, const char *path, struct boot_params *bp,
			    uint64_t kernel_end)
{
	uint64_t top = memory_low_size(mem), addr;
	uint8_t *data;
	size_t size;
	int ret;

	ret = boot_read_file(path, memory_low_size(mem), &data, &size);
	if (ret == -EFBIG) {
		log_error("initrd %s does not fit in the guest's memory: give more --memory", path);
		return ret;
	}
	if (ret != 0) {
		boot_file_error("initrd", path, ret);
		return ret;
	}
	if (top > (uint64_t)bp->hdr.initrd_addr_max + 1)
		top = (uint64_t)bp->hdr.initrd_addr_max + 1;
	addr = (top - size) & ~0xfffULL;
	if (size > top || addr < kernel_end) {
		log_error("initrd %s (%zu MiB) does not fit in the guest's memory next to the kernel: "
			  "give more --memory", path, (size >> 20) + 1);
		free(data);
		return -ENOMEM;
	}
	memory_write(mem, addr, data, size);
	free(data);
	bp->hdr.ramdisk_image = (uint32_t)addr;
	bp->hdr.ramdisk_size = (uint32_t)size;
	return 0;
}

static int boot_write_cmdline(struct guest_memory *mem, const char *cmdline, struct boot_params *bp)
{
	size_t len = strlen(cmdline);
	uint32_t max = bp->hdr.cmdline_size ? bp->hdr.cmdline_size : 255;

	if (len > max || len >= LAYOUT_CMDLINE_MAX) {
		log_error("the kernel command line is %zu bytes; this kernel accepts at most %u", len,
			  max);
		return -E2BIG;
	}
	memory_write(mem, LAYOUT_CMDLINE, cmdline, len + 1);
	bp->hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	return 0;
}

/* Fills the zero page from the image's setup header, as a boot loader does. */
static int boot_fill_params(struct guest_memory *mem, const uint8_t *image, size_t size,
			    struct boot_params *bp)
{
	size_t hdr_end = 0x202 + image[BZ_JUMP_END];
	int n;

	memset(bp, 0, sizeof(*bp));
	if (hdr_end > size)
		hdr_end = size;
	if (hdr_end > BZ_SETUP_SECTS + sizeof(bp->hdr))
		hdr_end = BZ_SETUP_SECTS + sizeof(bp->hdr);
	memcpy(&bp->hdr, image + BZ_SETUP_SECTS, hdr_end - BZ_SETUP_SECTS);
	bp->hdr.type_of_loader = BZ_LOADER_UNDEF;
	bp->hdr.loadflags |= CAN_USE_HEAP | KEEP_SEGMENTS;
	bp->hdr.loadflags &= (uint8_t)~QUIET_FLAG;
	bp->hdr.heap_end_ptr = 0xfe00;
	bp->hdr.vid_mode = 0xffff; /* "normal": we have no video */
	n = e820_build(bp->e820_table, E820_MAX_ENTRIES_ZEROPAGE, memory_low_size(mem),
		       memory_high_size(mem));
	if (n < 0)
		return n;
	bp->e820_entries = (uint8_t)n;
	return 0;
}

int boot_prepare_linux(struct guest_memory *mem, const struct boot_config *cfg,
		       uint64_t *entry)
{
	struct boot_params bp;
	size_t koff, ksize;
	uint64_t load;
	uint8_t *image;
	size_t size;
	const char *why;
	int ret;

	ret = boot_read_file(cfg->kernel_path, BZ_MAX_FILE, &image, &size);
	if (ret != 0) {
		boot_file_error("kernel", cfg->kernel_path, ret);
		return ret;
	}
	ret = boot_check_bzimage(image, size, &koff, &ksize, &why);
	if (ret != 0) {
		log_error("kernel %s %s", cfg->kernel_path, why);
		goto out;
	}
	if ((ret = boot_fill_params(mem, image, size, &bp)) != 0)
		goto out;
	if ((ret = boot_kernel_placement(&bp.hdr, memory_low_size(mem), &load)) != 0)
		goto out;
	memory_write(mem, load, image + koff, ksize);
	bp.hdr.code32_start = (uint32_t)load;
	bp.acpi_rsdp_addr = cfg->rsdp_gpa;
	if (cfg->initrd_path != NULL &&
	    (ret = boot_load_initrd(mem, cfg->initrd_path, &bp, load + bp.hdr.init_size)) != 0)
		goto out;
	if ((ret = boot_write_cmdline(mem, cfg->cmdline ? cfg->cmdline : "", &bp)) != 0)
		goto out;
	memory_write(mem, LAYOUT_ZERO_PAGE, &bp, sizeof(bp));
	*entry = load + BZ_ENTRY_64;
out:
	free(image);
	return ret;
}

int boot_load_linux(struct vm *vm, const struct boot_config *cfg)
{
	uint64_t entry;
	int ret = boot_prepare_linux(&vm->mem, cfg, &entry);

	if (ret != 0)
		return ret;
	return boot_enter_long_mode(vm, &vm->vcpus[0], entry, LAYOUT_ZERO_PAGE, LAYOUT_BOOT_STACK);
}

/* Identity map of 0..4 GiB in 2 MiB pages, user-accessible for CPL3 test guests. */
static void boot_write_page_tables(struct vm *vm)
{
	uint64_t entry;

	entry = LAYOUT_PDPT | PTE_PRESENT | PTE_WRITE | PTE_USER;
	memory_write(&vm->mem, LAYOUT_PML4, &entry, sizeof(entry));
	for (uint64_t i = 0; i < 4; i++) {
		entry = (LAYOUT_PD + i * 0x1000) | PTE_PRESENT | PTE_WRITE | PTE_USER;
		memory_write(&vm->mem, LAYOUT_PDPT + i * 8, &entry, sizeof(entry));
	}
	for (uint64_t i = 0; i < 4 * 512; i++) {
		entry = (i << 21) | PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_HUGE;
		memory_write(&vm->mem, LAYOUT_PD + i * 8, &entry, sizeof(entry));
	}
}

/* Boot GDT: the kernel wants __BOOT_CS = 0x10 and __BOOT_DS = 0x18. */
#define GDT_CODE64 0x00af9b000000ffffULL
#define GDT_DATA   0x00cf93000000ffffULL
#define GDT_TSS    0x00008b0000000067ULL
#define SEL_CODE   0x10
#define SEL_DATA   0x18
#define SEL_TSS    0x20

static void boot_write_gdt(struct vm *vm)
{
	const uint64_t gdt[] = {0, 0, GDT_CODE64, GDT_DATA, GDT_TSS, 0};

	memory_write(&vm->mem, LAYOUT_GDT, gdt, sizeof(gdt));
}

static struct kvm_segment boot_segment(uint16_t selector, uint8_t type, bool code)
{
	struct kvm_segment s = {
		.base = 0,
		.limit = 0xffffffff,
		.selector = selector,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = code ? 0 : 1,
		.s = 1,
		.l = code ? 1 : 0,
		.g = 1,
	};
	return s;
}

static int boot_set_sregs(struct vcpu *vcpu)
{
	struct kvm_sregs sregs;
	struct kvm_segment data = boot_segment(SEL_DATA, 0x3, false);

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.cs = boot_segment(SEL_CODE, 0xb, true);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = boot_segment(SEL_TSS, 0xb, false);
	sregs.tr.s = 0;
	sregs.tr.limit = 0x67;
	sregs.tr.g = 0;
	sregs.tr.db = 0;
	sregs.gdt.base = LAYOUT_GDT;
	sregs.gdt.limit = 6 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr3 = LAYOUT_PML4;
	sregs.cr4 = 0x20;                       /* PAE */
	sregs.cr0 = 0x80000033;                 /* PG | NE | ET | MP | PE */
	sregs.efer = 0x500;                     /* LMA | LME */
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	return 0;
}

int boot_enter_long_mode(struct vm *vm, struct vcpu *vcpu, uint64_t entry, uint64_t rsi,
			 uint64_t rsp)
{
	struct kvm_regs regs;
	int ret;

	boot_write_page_tables(vm);
	boot_write_gdt(vm);
	if ((ret = boot_set_sregs(vcpu)) != 0)
		return ret;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2; /* interrupts off, as the boot protocol asks */
	regs.rip = entry;
	regs.rsi = rsi;
	regs.rsp = rsp;
	regs.rbp = rsp;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}
