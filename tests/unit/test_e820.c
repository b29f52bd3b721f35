#include <criterion/criterion.h>
#include <errno.h>

#include "arch/x86/e820.h"
#include "arch/x86/layout.h"

static uint64_t e820_ram(const struct boot_e820_entry *t, int n)
{
	uint64_t total = 0;

	for (int i = 0; i < n; i++)
		if (t[i].type == E820_TYPE_RAM)
			total += t[i].size;
	return total;
}

Test(e820, small_guest_has_no_high_ram)
{
	struct boot_e820_entry t[8];
	int n = e820_build(t, 8, 512ULL << 20, 0);

	cr_assert_eq(n, 3);
	cr_assert_eq(t[0].addr, 0);
	cr_assert_eq(t[0].type, E820_TYPE_RAM);
	cr_assert_eq(t[1].type, E820_TYPE_RESERVED);
	cr_assert_eq(t[2].addr, 0x100000);
	cr_assert_eq(t[2].addr + t[2].size, 512ULL << 20);
}

Test(e820, four_gib_guest_keeps_the_hole_free)
{
	struct boot_e820_entry t[8];
	uint64_t low = LAYOUT_MMIO_HOLE, high = (4ULL << 30) - LAYOUT_MMIO_HOLE;
	int n = e820_build(t, 8, low, high);

	cr_assert_eq(n, 4);
	for (int i = 0; i < n; i++) {
		uint64_t end = t[i].addr + t[i].size;

		if (t[i].type == E820_TYPE_RAM)
			cr_assert(end <= LAYOUT_MMIO_HOLE || t[i].addr >= LAYOUT_HIGH_RAM,
				  "RAM entry %d overlaps the MMIO hole", i);
		if (i > 0)
			cr_assert(t[i].addr >= t[i - 1].addr + t[i - 1].size, "entries overlap");
	}
	cr_assert_eq(t[3].addr, 1ULL << 32);
	cr_assert_eq(t[3].size, 1ULL << 30);
	/* All RAM but the 384 KiB legacy BIOS area is usable. */
	cr_assert_eq(e820_ram(t, n), (4ULL << 30) - (LAYOUT_BIOS_END - LAYOUT_EBDA));
}

Test(e820, errors)
{
	struct boot_e820_entry t[2];

	cr_assert_eq(e820_build(t, 2, 1ULL << 30, 1ULL << 30), -ENOSPC);
	cr_assert_eq(e820_build(t, 2, 0x80000, 0), -EINVAL);
}
