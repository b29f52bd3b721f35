#include "vmm/memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/layout.h"

static void memory_add_region(struct guest_memory *mem, uint64_t gpa, uint64_t size,
			      uint64_t offset)
{
	struct mem_region *r = &mem->regions[mem->count++];

	r->gpa = gpa;
	r->size = size;
	r->offset = offset;
	r->hva = mem->base + offset;
}

int memory_init(struct guest_memory *mem, uint64_t size)
{
	uint64_t low = size < LAYOUT_MMIO_HOLE ? size : LAYOUT_MMIO_HOLE;
	int ret;

	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
	if (size < MEMORY_MIN || size > MEMORY_MAX || (size & 0xfff) != 0)
		return -EINVAL;
	mem->memfd = memfd_create("tabique-guest-ram", MFD_CLOEXEC);
	if (mem->memfd < 0)
		return -errno;
	if (ftruncate(mem->memfd, (off_t)size) != 0)
		goto fail;
	/* MAP_NORESERVE: the guest touches its RAM lazily, like a process. */
	mem->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			 mem->memfd, 0);
	if (mem->base == MAP_FAILED) {
		mem->base = NULL;
		goto fail;
	}
	mem->size = size;
	memory_add_region(mem, 0, low, 0);
	if (size > low)
		memory_add_region(mem, LAYOUT_HIGH_RAM, size - low, low);
	return 0;
fail:
	ret = -errno;
	memory_destroy(mem);
	return ret;
}

void memory_destroy(struct guest_memory *mem)
{
	if (mem->base != NULL)
		munmap(mem->base, mem->size);
	if (mem->memfd >= 0)
		close(mem->memfd);
	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
}

void *gpa_to_hva(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < mem->count; i++) {
		const struct mem_region *r = &mem->regions[i];

		/* Written so that no sum can overflow, whatever gpa and len are. */
		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

int memory_write(const struct guest_memory *mem, uint64_t gpa, const void *src, size_t len)
{
	void *dst = gpa_to_hva(mem, gpa, len);

	if (dst == NULL)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

int memory_read(const struct guest_memory *mem, uint64_t gpa, void *dst, size_t len)
{
	const void *src = gpa_to_hva(mem, gpa, len);

	if (src == NULL)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

uint64_t memory_low_size(const struct guest_memory *mem)
{
	return mem->count > 0 ? mem->regions[0].size : 0;
}

uint64_t memory_high_size(const struct guest_memory *mem)
{
	return mem->count > 1 ? mem->regions[1].size : 0;
}
