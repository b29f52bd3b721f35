#include "devices/acpi_pm.h"

#include <string.h>

#include "arch/x86/layout.h"

/* Sleep status: WAK_STS would be set after a resume; we never suspend, so it reads 0. */
static enum vm_action acpi_pm_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	(void)opaque;
	(void)offset;
	memset(data, 0, len);
	return VM_CONTINUE;
}

static enum vm_action acpi_pm_sleep_write(void *opaque, uint64_t offset, const uint8_t *data,
					  uint32_t len)
{
	uint8_t v = data[0];

	(void)opaque;
	(void)len;
	if (offset != 0 || !(v & ACPI_PM_SLP_EN))
		return VM_CONTINUE;
	/* Only S5 is offered in the DSDT; any other type is not a state we implement. */
	if (((v & ACPI_PM_SLP_TYP_MASK) >> ACPI_PM_SLP_TYP_SHIFT) == ACPI_PM_S5_TYP)
		return VM_POWEROFF;
	return VM_CONTINUE;
}

/* Write-1-to-clear status bits, none of which we ever set. */
static enum vm_action acpi_pm_status_write(void *opaque, uint64_t offset, const uint8_t *data,
					   uint32_t len)
{
	(void)opaque;
	(void)offset;
	(void)data;
	(void)len;
	return VM_CONTINUE;
}

static enum vm_action acpi_pm_reset_write(void *opaque, uint64_t offset, const uint8_t *data,
					  uint32_t len)
{
	(void)opaque;
	(void)len;
	if (offset == 0 && data[0] == ACPI_RESET_VALUE)
		return VM_REBOOT;
	return VM_CONTINUE;
}

static const struct bus_ops acpi_pm_sleep_ops = {acpi_pm_read, acpi_pm_sleep_write};
static const struct bus_ops acpi_pm_status_ops = {acpi_pm_read, acpi_pm_status_write};
static const struct bus_ops acpi_pm_reset_ops = {acpi_pm_read, acpi_pm_reset_write};

int acpi_pm_attach(struct bus *pio)
{
	int ret;

	ret = bus_register(pio, PORT_ACPI_SLEEP_CTL, 1, &acpi_pm_sleep_ops, NULL);
	if (ret != 0)
		return ret;
	ret = bus_register(pio, PORT_ACPI_SLEEP_STS, 1, &acpi_pm_status_ops, NULL);
	if (ret != 0)
		goto err_ctl;
	ret = bus_register(pio, PORT_ACPI_RESET, 1, &acpi_pm_reset_ops, NULL);
	if (ret != 0)
		goto err_sts;
	return 0;
err_sts:
	bus_unregister(pio, PORT_ACPI_SLEEP_STS);
err_ctl:
	bus_unregister(pio, PORT_ACPI_SLEEP_CTL);
	return ret;
}
