#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "bus/bus.h"

struct fake {
	uint64_t last_offset;
	uint32_t last_len;
	uint8_t value;
};

static enum vm_action fake_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct fake *f = opaque;

	f->last_offset = offset;
	f->last_len = len;
	memset(data, f->value, len);
	return VM_CONTINUE;
}

static enum vm_action fake_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct fake *f = opaque;

	f->last_offset = offset;
	f->last_len = len;
	f->value = data[0];
	return data[0] == 0xee ? VM_POWEROFF : VM_CONTINUE;
}

static const struct bus_ops fake_ops = {fake_read, fake_write};

Test(bus, dispatches_by_offset)
{
	struct bus bus;
	struct fake a = {.value = 0x11}, b = {.value = 0x22};
	uint8_t data[4];

	bus_init(&bus, "test");
	cr_assert_eq(bus_register(&bus, 0x3f8, 8, &fake_ops, &a), 0);
	cr_assert_eq(bus_register(&bus, 0x60, 1, &fake_ops, &b), 0);
	cr_assert_eq(bus_read(&bus, 0x3fd, data, 1), VM_CONTINUE);
	cr_assert_eq(data[0], 0x11);
	cr_assert_eq(a.last_offset, 5);
	cr_assert_eq(bus_read(&bus, 0x60, data, 1), VM_CONTINUE);
	cr_assert_eq(data[0], 0x22);
	data[0] = 0xee;
	cr_assert_eq(bus_write(&bus, 0x3f8, data, 1), VM_POWEROFF);
	bus_destroy(&bus);
}

Test(bus, unclaimed_reads_all_ones_and_straddling_access_is_dropped)
{
	struct bus bus;
	struct fake a = {.value = 0x11};
	uint8_t data[4];

	bus_init(&bus, "test");
	cr_assert_eq(bus_register(&bus, 0x1000, 4, &fake_ops, &a), 0);
	cr_assert_eq(bus_read(&bus, 0x2000, data, 4), VM_CONTINUE);
	cr_assert_eq(data[0], 0xff);
	cr_assert_eq(data[3], 0xff);
	/* Starts inside the range but runs past its end. */
	cr_assert_eq(bus_read(&bus, 0x1002, data, 4), VM_CONTINUE);
	cr_assert_eq(data[0], 0xff);
	cr_assert_eq(a.last_len, 0, "the device must not see a straddling access");
	bus_destroy(&bus);
}

Test(bus, overlaps_rejected)
{
	struct bus bus;
	struct fake a = {0};

	bus_init(&bus, "test");
	cr_assert_eq(bus_register(&bus, 0x100, 0x10, &fake_ops, &a), 0);
	cr_assert_eq(bus_register(&bus, 0x10f, 1, &fake_ops, &a), -EEXIST);
	cr_assert_eq(bus_register(&bus, 0xf8, 0x10, &fake_ops, &a), -EEXIST);
	cr_assert_eq(bus_register(&bus, 0x0, 0x200, &fake_ops, &a), -EEXIST);
	cr_assert_eq(bus_register(&bus, 0x110, 1, &fake_ops, &a), 0);
	cr_assert_eq(bus_register(&bus, 0xff, 1, &fake_ops, &a), 0);
	cr_assert_eq(bus_register(&bus, 0x300, 0, &fake_ops, &a), -EINVAL);
	cr_assert_eq(bus_register(&bus, UINT64_MAX, 2, &fake_ops, &a), -EINVAL);
	cr_assert_eq(bus_unregister(&bus, 0x100), 0);
	cr_assert_eq(bus_register(&bus, 0x108, 1, &fake_ops, &a), 0);
	cr_assert_eq(bus_unregister(&bus, 0x4242), -ENOENT);
	bus_destroy(&bus);
}

Test(bus, many_ranges_stay_sorted)
{
	struct bus bus;
	struct fake f[64];
	uint8_t data;

	bus_init(&bus, "test");
	for (int i = 63; i >= 0; i--) {
		f[i].value = (uint8_t)i;
		cr_assert_eq(bus_register(&bus, 0x1000 + (uint64_t)i * 0x10, 0x10, &fake_ops, &f[i]), 0);
	}
	for (int i = 0; i < 64; i++) {
		bus_read(&bus, 0x1000 + (uint64_t)i * 0x10 + 3, &data, 1);
		cr_assert_eq(data, i);
	}
	bus_destroy(&bus);
}
