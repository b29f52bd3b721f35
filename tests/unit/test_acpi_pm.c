#include <criterion/criterion.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "bus/bus.h"
#include "devices/acpi_pm.h"
#include "devices/pvpanic.h"

static struct bus bus;

static void setup(void)
{
	bus_init(&bus, "pio");
	cr_assert_eq(acpi_pm_attach(&bus), 0);
	cr_assert_eq(pvpanic_attach(&bus), 0);
}

static void teardown(void)
{
	bus_destroy(&bus);
}

static enum vm_action out(uint16_t port, uint8_t v)
{
	return bus_write(&bus, port, &v, 1);
}

static uint8_t in(uint16_t port)
{
	uint8_t v;

	cr_assert_eq(bus_read(&bus, port, &v, 1), VM_CONTINUE);
	return v;
}

TestSuite(acpi_pm, .init = setup, .fini = teardown);

/* Linux's acpi_hw_extended_sleep(): clear WAK_STS, then SLP_TYP << 2 | SLP_EN. */
Test(acpi_pm, s5_powers_off)
{
	cr_assert_eq(out(PORT_ACPI_SLEEP_STS, 0x80), VM_CONTINUE);
	cr_assert_eq(out(PORT_ACPI_SLEEP_CTL, ACPI_PM_S5_TYP << 2 | ACPI_PM_SLP_EN), VM_POWEROFF);
	cr_assert_eq(out(PORT_ACPI_SLEEP_CTL, 0x34), VM_POWEROFF);
	cr_assert_eq(out(PORT_ACPI_SLEEP_CTL, 0x34 | 0xc3), VM_POWEROFF, "reserved bits ignored");
}

Test(acpi_pm, other_sleep_writes_continue)
{
	cr_assert_eq(out(PORT_ACPI_SLEEP_CTL, ACPI_PM_S5_TYP << 2), VM_CONTINUE, "no SLP_EN");
	for (unsigned int typ = 0; typ < 8; typ++)
		if (typ != ACPI_PM_S5_TYP)
			cr_assert_eq(out(PORT_ACPI_SLEEP_CTL, (uint8_t)(typ << 2 | 0x20)),
				     VM_CONTINUE, "SLP_TYP %u", typ);
	cr_assert_eq(in(PORT_ACPI_SLEEP_STS), 0);
	cr_assert_eq(in(PORT_ACPI_SLEEP_CTL), 0);
}

Test(acpi_pm, reset_register)
{
	cr_assert_eq(out(PORT_ACPI_RESET, ACPI_RESET_VALUE), VM_REBOOT);
	for (unsigned int v = 0; v < 256; v++)
		if (v != ACPI_RESET_VALUE)
			cr_assert_eq(out(PORT_ACPI_RESET, (uint8_t)v), VM_CONTINUE, "value %#x", v);
	cr_assert_eq(in(PORT_ACPI_RESET), 0);
}

Test(acpi_pm, pvpanic)
{
	cr_assert_eq(in(PORT_PVPANIC), 0x03, "PANICKED and CRASH_LOADED supported");
	cr_assert_eq(out(PORT_PVPANIC, 0x01), VM_CRASH);
	cr_assert_eq(out(PORT_PVPANIC, 0x03), VM_CRASH);
	cr_assert_eq(out(PORT_PVPANIC, 0x02), VM_CONTINUE, "kdump takes over");
	cr_assert_eq(out(PORT_PVPANIC, 0x00), VM_CONTINUE);
}

static uint32_t lcg(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

/* What the spec allows a write to return. */
static enum vm_action expected(uint16_t port, const uint8_t *data, uint32_t len)
{
	if (len != 1)
		return VM_CONTINUE; /* every register is one byte: wider accesses never arrive */
	if (port == PORT_ACPI_SLEEP_CTL && (data[0] & 0x20) && ((data[0] >> 2) & 7) == 5)
		return VM_POWEROFF;
	if (port == PORT_ACPI_RESET && data[0] == ACPI_RESET_VALUE)
		return VM_REBOOT;
	if (port == PORT_PVPANIC && (data[0] & 1))
		return VM_CRASH;
	return VM_CONTINUE;
}

Test(acpi_pm, hostile_accesses_every_width)
{
	static const uint16_t bases[] = {PORT_ACPI_SLEEP_CTL - 1, PORT_PVPANIC - 2};
	uint32_t seed = 5;
	uint8_t data[8];

	for (int i = 0; i < 20000; i++) {
		uint16_t port = (uint16_t)(bases[lcg(&seed) % 2] + lcg(&seed) % 8);
		uint32_t len = 1 + lcg(&seed) % 8;

		for (int j = 0; j < 8; j++)
			data[j] = (uint8_t)lcg(&seed);
		if (lcg(&seed) % 2 == 0)
			len = 1;
		cr_assert_eq(bus_write(&bus, port, data, len), expected(port, data, len),
			     "port %#x len %u value %#x", port, len, data[0]);
		cr_assert_eq(bus_read(&bus, port, data, len), VM_CONTINUE);
	}
}
