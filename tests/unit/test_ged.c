/* The ACPI Generic Event Device: its event selector and its interrupt edge. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "bus/bus.h"
#include "devices/ged.h"

_Static_assert(GED_EVENT_POWER_BUTTON == ACPI_GED_POWER_BUTTON,
	       "the DSDT's _EVT and the device disagree on the power button bit");

static struct bus bus;
static struct ged *ged;
static struct {
	unsigned raised, lowered;
	uint32_t gsi;
	bool level;
} irq;

static void irq_set(void *opaque, uint32_t gsi, bool level)
{
	(void)opaque;
	irq.gsi = gsi;
	irq.level = level;
	if (level)
		irq.raised++;
	else
		irq.lowered++;
}

static void setup(void)
{
	memset(&irq, 0, sizeof(irq));
	bus_init(&bus, "pio");
	ged = ged_create((struct irq_line){irq_set, NULL, IRQ_ACPI_GED});
	cr_assert_not_null(ged);
	cr_assert_eq(ged_attach(ged, &bus, PORT_ACPI_GED), 0);
}

static void teardown(void)
{
	bus_destroy(&bus);
	ged_destroy(ged);
}

static uint8_t selector(void)
{
	uint8_t v = 0xee;

	cr_assert_eq(bus_read(&bus, PORT_ACPI_GED, &v, 1), VM_CONTINUE);
	return v;
}

TestSuite(ged, .init = setup, .fini = teardown);

Test(ged, quiet_until_raised)
{
	cr_assert_eq(selector(), 0);
	cr_assert_eq(irq.raised, 0);
}

Test(ged, power_button_pulses_the_irq_and_reads_once)
{
	ged_raise(ged, GED_EVENT_POWER_BUTTON);
	cr_assert_eq(irq.gsi, IRQ_ACPI_GED);
	cr_assert_eq(irq.raised, 1);
	cr_assert_eq(irq.lowered, 1, "an edge: the line goes back down");
	cr_assert_not(irq.level);
	cr_assert_eq(selector(), GED_EVENT_POWER_BUTTON);
	cr_assert_eq(selector(), 0, "the selector clears on read");
}

Test(ged, events_accumulate_until_read)
{
	ged_raise(ged, GED_EVENT_POWER_BUTTON);
	ged_raise(ged, GED_EVENT_POWER_BUTTON);
	cr_assert_eq(irq.raised, 2);
	cr_assert_eq(selector(), GED_EVENT_POWER_BUTTON);
	ged_raise(ged, 0xfe); /* bits no event has: ignored, the edge comes anyway */
	cr_assert_eq(selector(), 0);
}

Test(ged, guest_writes_and_wide_reads_are_harmless)
{
	uint8_t v[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	ged_raise(ged, GED_EVENT_POWER_BUTTON);
	cr_assert_eq(bus_write(&bus, PORT_ACPI_GED, v, 1), VM_CONTINUE);
	/* Wider than the 1-byte register: the bus does not route it, nothing is cleared. */
	cr_assert_eq(bus_read(&bus, PORT_ACPI_GED, v, 4), VM_CONTINUE);
	cr_assert_eq(v[0] & v[1] & v[2] & v[3], 0xff);
	cr_assert_eq(bus_read(&bus, PORT_ACPI_GED + 1, v, 1), VM_CONTINUE);
	cr_assert_eq(v[0], 0xff, "one port only");
	cr_assert_eq(selector(), GED_EVENT_POWER_BUTTON, "neither cleared it");
}

Test(ged, save_and_restore)
{
	struct ged_state st;

	ged_raise(ged, GED_EVENT_POWER_BUTTON);
	ged_save(ged, &st);
	cr_assert_eq(st.magic, GED_STATE_MAGIC);
	cr_assert_eq(st.pending, GED_EVENT_POWER_BUTTON);
	cr_assert_eq(selector(), GED_EVENT_POWER_BUTTON);
	cr_assert_eq(ged_restore(ged, &st), 0);
	cr_assert_eq(selector(), GED_EVENT_POWER_BUTTON, "restored pending");
	st.pending = 0x80;
	cr_assert_eq(ged_restore(ged, &st), -EINVAL);
	st.pending = 0;
	st.pad[3] = 1;
	cr_assert_eq(ged_restore(ged, &st), -EINVAL);
	st.pad[3] = 0;
	st.version = 99;
	cr_assert_eq(ged_restore(ged, &st), -EINVAL);
}
