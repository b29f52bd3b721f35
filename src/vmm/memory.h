/*
 * Guest RAM. One memfd holds all of it (so a snapshot or a migration can map
 * it as a file); it is mapped once into the VMM and handed to KVM as one or two
 * slots: below the MMIO hole and above 4 GiB.
 */
#ifndef TABIQUE_VMM_MEMORY_H
#define TABIQUE_VMM_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#define MEMORY_MAX_REGIONS 2

struct mem_region {
	uint64_t gpa;   /* guest-physical start */
	uint64_t size;  /* bytes */
	uint8_t *hva;   /* host address of gpa */
	uint64_t offset; /* offset into the memfd */
};

struct guest_memory {
	int memfd;
	uint8_t *base; /* the whole mapping, size bytes */
	uint64_t size;
	struct mem_region regions[MEMORY_MAX_REGIONS];
	unsigned count;
};

/* Smallest and largest RAM a guest may have. */
#define MEMORY_MIN (16ULL << 20)
#define MEMORY_MAX (1ULL << 40)

/*
 * Allocates size bytes of guest RAM split around the MMIO hole. Returns 0,
 * -EINVAL for a size out of range, or a negative errno from memfd/mmap.
 */
int memory_init(struct guest_memory *mem, uint64_t size);
void memory_destroy(struct guest_memory *mem);

/*
 * The one checked translation from guest-physical to host address: returns
 * the host address of [gpa, gpa + len) when the whole range is guest RAM in a
 * single region, else NULL. Every access to guest memory goes through it.
 */
void *gpa_to_hva(const struct guest_memory *mem, uint64_t gpa, uint64_t len);

/* Copies to or from guest memory through gpa_to_hva. Return 0 or -EFAULT. */
int memory_write(const struct guest_memory *mem, uint64_t gpa, const void *src, size_t len);
int memory_read(const struct guest_memory *mem, uint64_t gpa, void *dst, size_t len);

/* RAM below the hole and above 4 GiB, for the e820 map. */
uint64_t memory_low_size(const struct guest_memory *mem);
uint64_t memory_high_size(const struct guest_memory *mem);

#endif
