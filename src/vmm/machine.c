#include "vmm/machine.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "devices/i8042.h"
#include "devices/pvpanic.h"
#include "devices/rtc.h"
#include "util/log.h"

static int machine_add_devices(struct machine *m, const struct machine_config *cfg)
{
	struct irq_line com1_irq = {vm_set_irq, &m->vm, IRQ_COM1};
	struct irq_line rtc_irq = {vm_set_irq, &m->vm, IRQ_RTC};
	int ret;

	m->com1 = serial_create(com1_irq, cfg->console);
	m->rtc = rtc_create(rtc_irq);
	m->i8042 = i8042_create();
	if (m->com1 == NULL || m->rtc == NULL || m->i8042 == NULL)
		return -ENOMEM;
	if ((ret = serial_attach(m->com1, &m->vm.pio, PORT_COM1)) != 0 ||
	    (ret = rtc_attach(m->rtc, &m->vm.pio)) != 0 ||
	    (ret = i8042_attach(m->i8042, &m->vm.pio)) != 0 ||
	    (ret = acpi_pm_attach(&m->vm.pio)) != 0 || (ret = pvpanic_attach(&m->vm.pio)) != 0) {
		log_error("cannot place the legacy devices on the I/O bus: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

static int machine_add_acpi(struct machine *m)
{
	struct acpi_config cfg = {
		.ncpus = m->vm.ncpus,
		.ioapic_addr = LAYOUT_IOAPIC,
		.ioapic_gsi_base = 0,
		.lapic_addr = LAYOUT_LAPIC,
		.sleep_ctl_port = PORT_ACPI_SLEEP_CTL,
		.sleep_sts_port = PORT_ACPI_SLEEP_STS,
		.reset_port = PORT_ACPI_RESET,
		.reset_value = ACPI_RESET_VALUE,
		.pvpanic_port = PORT_PVPANIC,
		.com1_port = PORT_COM1,
		.com1_irq = IRQ_COM1,
		.rtc_port = PORT_RTC,
		.rtc_irq = 0, /* no RTC interrupt yet: rtc-cmos then polls instead of waiting */
	};
	uint8_t *buf = gpa_to_hva(&m->vm.mem, LAYOUT_ACPI, LAYOUT_ACPI_MAX);
	long used;

	if (buf == NULL)
		return -EFAULT;
	used = acpi_build(buf, LAYOUT_ACPI_MAX, LAYOUT_ACPI, &cfg);
	if (used < 0) {
		log_error("the ACPI tables for %u vCPUs do not fit in %llu KiB", m->vm.ncpus,
			  LAYOUT_ACPI_MAX >> 10);
		return (int)used;
	}
	return 0;
}

int machine_create(struct machine *m, const struct machine_config *cfg)
{
	struct vm_config vm_cfg = {.memory = cfg->memory, .cpus = cfg->cpus};
	struct boot_config boot = {
		.kernel_path = cfg->kernel,
		.initrd_path = cfg->initrd,
		.cmdline = cfg->cmdline,
		.rsdp_gpa = LAYOUT_ACPI,
	};
	int ret;

	memset(m, 0, sizeof(*m));
	if ((ret = vm_create(&m->vm, &vm_cfg)) != 0)
		return ret;
	if ((ret = machine_add_devices(m, cfg)) != 0 || (ret = machine_add_acpi(m)) != 0)
		return ret;
	return boot_load_linux(&m->vm, &boot);
}

void machine_destroy(struct machine *m)
{
	/* The VM first: no vCPU may touch a device that is being freed. */
	vm_destroy(&m->vm);
	if (m->com1 != NULL)
		serial_destroy(m->com1);
	if (m->rtc != NULL)
		rtc_destroy(m->rtc);
	if (m->i8042 != NULL)
		i8042_destroy(m->i8042);
	memset(m, 0, sizeof(*m));
}
