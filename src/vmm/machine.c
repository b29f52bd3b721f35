#include "vmm/machine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/boot.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "bus/pci.h"
#include "devices/acpi_pm.h"
#include "devices/ged.h"
#include "devices/i8042.h"
#include "devices/pvpanic.h"
#include "devices/rtc.h"
#include "util/log.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/pci.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "vmm/msi.h"

/* When KVM does not say (CPUID 0x80000008 missing): what every x86-64 CPU has. */
#define MACHINE_MIN_PHYS_BITS 36

static int machine_add_devices(struct machine *m, const struct machine_config *cfg)
{
	struct irq_line com1_irq = {vm_set_irq, &m->vm, IRQ_COM1};
	struct irq_line rtc_irq = {vm_set_irq, &m->vm, IRQ_RTC};
	struct irq_line ged_irq = {vm_set_irq, &m->vm, IRQ_ACPI_GED};
	int ret;

	m->com1 = serial_create(com1_irq, cfg->console);
	m->rtc = rtc_create(rtc_irq);
	m->i8042 = i8042_create();
	m->ged = ged_create(ged_irq);
	if (m->com1 == NULL || m->rtc == NULL || m->i8042 == NULL || m->ged == NULL)
		return -ENOMEM;
	if ((ret = serial_attach(m->com1, &m->vm.pio, PORT_COM1)) != 0 ||
	    (ret = rtc_attach(m->rtc, &m->vm.pio)) != 0 ||
	    (ret = i8042_attach(m->i8042, &m->vm.pio)) != 0 ||
	    (ret = acpi_pm_attach(&m->vm.pio)) != 0 || (ret = pvpanic_attach(&m->vm.pio)) != 0 ||
	    (ret = ged_attach(m->ged, &m->vm.pio, PORT_ACPI_GED)) != 0) {
		log_error("cannot place the legacy devices on the I/O bus: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

/* Guest-physical address bits (CPUID 0x80000008 EAX[7:0]): nothing may live above them. */
static unsigned machine_phys_bits(struct machine *m)
{
	struct cpuid_table *t = malloc(sizeof(*t));
	struct kvm_cpuid_entry2 *e;
	unsigned bits = MACHINE_MIN_PHYS_BITS;

	if (t != NULL && cpuid_get_supported(m->vm.kvm_fd, t) == 0 &&
	    (e = cpuid_find(t, 0x80000008, 0)) != NULL && (e->eax & 0xff) > bits)
		bits = e->eax & 0xff;
	free(t);
	return bits > 52 ? 52 : bits;
}

/* The 64-bit BAR window: from the first GiB boundary above RAM, within the address width. */
static void machine_place_mmio64(struct machine *m)
{
	uint64_t end = LAYOUT_HIGH_RAM + memory_high_size(&m->vm.mem);
	uint64_t base = (end + LAYOUT_PCI_MMIO64_ALIGN - 1) & ~(LAYOUT_PCI_MMIO64_ALIGN - 1);
	uint64_t limit = 1ULL << machine_phys_bits(m);

	m->mmio64_base = base;
	m->mmio64_size = 0;
	if (base < limit)
		m->mmio64_size =
		    limit - base < LAYOUT_PCI_MMIO64_SIZE ? (limit - base) : LAYOUT_PCI_MMIO64_SIZE;
}

static int machine_add_rng(struct machine *m)
{
	int ret;

	m->rng = rng_create();
	if (m->rng == NULL)
		return -ENOMEM;
	if ((ret = virtio_pci_create(&m->rng_pci, rng_virtio(m->rng), &m->vm.mem, m->vm.vm_fd)) !=
		0 ||
	    (ret = pci_add_device(m->pci, virtio_pci_device(m->rng_pci))) != 0) {
		log_error("cannot add the virtio entropy device: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

/* One virtio-blk per disk, after the others: the guest names them vda, vdb ... in order. */
static int machine_add_disk(struct machine *m, const struct machine_disk *d)
{
	unsigned i = m->nblk;
	int ret;

	m->blk[i] = blk_create(d->disk, d->serial);
	if (m->blk[i] == NULL)
		return -ENOMEM;
	m->nblk++;
	if ((ret = virtio_pci_create(&m->blk_pci[i], blk_virtio(m->blk[i]), &m->vm.mem,
				     m->vm.vm_fd)) != 0 ||
	    (ret = blk_watch_completions(m->blk[i])) != 0 ||
	    (ret = pci_add_device(m->pci, virtio_pci_device(m->blk_pci[i]))) != 0) {
		log_error("cannot add the virtio block device for %s: %s", d->disk->path,
			  strerror(-ret));
		return ret;
	}
	return 0;
}

static int machine_add_disks(struct machine *m, const struct machine_config *cfg)
{
	int ret;

	if (cfg->ndisks > DISK_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if ((ret = machine_add_disk(m, &cfg->disks[i])) != 0)
			return ret;
	return 0;
}

/* One virtio-net per --net, after the disks, in order: eth0, eth1 ... */
static int machine_add_nic(struct machine *m, const struct machine_nic *nic)
{
	unsigned i = m->nnet;
	int ret;

	m->net[i] = net_create(nic->mac, nic->backend);
	if (m->net[i] == NULL)
		return -ENOMEM;
	m->nnet++;
	if ((ret = virtio_pci_create(&m->net_pci[i], net_virtio(m->net[i]), &m->vm.mem,
				     m->vm.vm_fd)) != 0 ||
	    (ret = net_attach(m->net[i])) != 0 ||
	    (ret = pci_add_device(m->pci, virtio_pci_device(m->net_pci[i]))) != 0) {
		log_error("cannot add virtio network card %u: %s", i, strerror(-ret));
		return ret;
	}
	return 0;
}

static int machine_add_nics(struct machine *m, const struct machine_config *cfg)
{
	int ret;

	if (cfg->nnics > NET_MAX_NICS)
		return -EINVAL;
	for (unsigned i = 0; i < cfg->nnics; i++)
		if ((ret = machine_add_nic(m, &cfg->nics[i])) != 0)
			return ret;
	return 0;
}

/* The socket device, after the NICs; its host sockets join the device thread. */
static int machine_add_vsock(struct machine *m, const struct machine_config *cfg)
{
	int ret;

	if (cfg->vsock == NULL)
		return 0;
	if ((ret = virtio_pci_create(&m->vsock_pci, vsock_virtio(cfg->vsock), &m->vm.mem,
				     m->vm.vm_fd)) != 0 ||
	    (ret = vsock_attach(cfg->vsock)) != 0 ||
	    (ret = pci_add_device(m->pci, virtio_pci_device(m->vsock_pci))) != 0) {
		log_error("cannot add the virtio socket device: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

/* Device threads last: they may touch guest memory as soon as they run. */
static int machine_start_virtio(struct machine *m)
{
	int ret = virtio_pci_start(m->rng_pci);

	for (unsigned i = 0; ret == 0 && i < m->nblk; i++)
		ret = virtio_pci_start(m->blk_pci[i]);
	for (unsigned i = 0; ret == 0 && i < m->nnet; i++)
		ret = virtio_pci_start(m->net_pci[i]);
	if (ret == 0 && m->vsock_pci != NULL)
		ret = virtio_pci_start(m->vsock_pci);
	return ret;
}

static int machine_add_pci(struct machine *m)
{
	struct pci_bus_config cfg = {
	    .pio = &m->vm.pio,
	    .mmio = &m->vm.mmio,
	    .ecam_base = LAYOUT_PCI_ECAM,
	    .mmio32_base = LAYOUT_PCI_MMIO,
	    .mmio32_end = LAYOUT_PCI_MMIO_END,
	};
	int ret;

	m->msi = calloc(1, sizeof(*m->msi));
	m->pci = calloc(1, sizeof(*m->pci));
	if (m->msi == NULL || m->pci == NULL)
		return -ENOMEM;
	msi_router_init(m->msi, m->vm.vm_fd);
	machine_place_mmio64(m);
	cfg.mmio64_base = m->mmio64_base;
	cfg.mmio64_end = m->mmio64_base + m->mmio64_size;
	cfg.msi = (struct pci_msi_sink){&msi_router_ops, m->msi};
	if ((ret = pci_bus_init(m->pci, &cfg)) != 0) {
		log_error("cannot place the PCI host bridge: %s", strerror(-ret));
		return ret;
	}
	return machine_add_rng(m);
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
		.ged_port = PORT_ACPI_GED,
		.ged_gsi = IRQ_ACPI_GED,
		.com1_port = PORT_COM1,
		.com1_irq = IRQ_COM1,
		.rtc_port = PORT_RTC,
		.rtc_irq = 0, /* no RTC interrupt yet: rtc-cmos then polls instead of waiting */
		.pci_ecam_base = LAYOUT_PCI_ECAM,
		.pci_mmio32_base = LAYOUT_PCI_MMIO,
		.pci_mmio32_size = LAYOUT_PCI_MMIO_END - LAYOUT_PCI_MMIO,
		.pci_mmio64_base = m->mmio64_base,
		.pci_mmio64_size = m->mmio64_size,
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

/*
 * We have no BIOS, but Linux on hardware-reduced ACPI reboots by jumping to
 * the BIOS reset vector in real mode (its EFI, then BIOS fallback). What it
 * finds there resets the machine the way firmware would: through the ACPI
 * reset register.
 */
static int machine_write_reset_vector(struct machine *m)
{
	static const uint8_t stub[] = {
		0xba, PORT_ACPI_RESET & 0xff, PORT_ACPI_RESET >> 8, /* mov dx, PORT_ACPI_RESET */
		0xb0, ACPI_RESET_VALUE,                              /* mov al, ACPI_RESET_VALUE */
		0xee,                                                /* out dx, al */
		0xf4,                                                /* hlt */
		0xeb, 0xfd,                                          /* jmp back to the out */
	};

	return memory_write(&m->vm.mem, LAYOUT_RESET_VECTOR, stub, sizeof(stub));
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
	if ((ret = machine_add_devices(m, cfg)) != 0 || (ret = machine_add_pci(m)) != 0 ||
	    (ret = machine_add_disks(m, cfg)) != 0 || (ret = machine_add_nics(m, cfg)) != 0 ||
	    (ret = machine_add_vsock(m, cfg)) != 0 ||
	    (ret = machine_add_acpi(m)) != 0 || (ret = machine_write_reset_vector(m)) != 0 ||
	    (ret = boot_load_linux(&m->vm, &boot)) != 0)
		return ret;
	return machine_start_virtio(m);
}

/* Device threads stop before guest memory goes; irqfds go while the VM still exists. */
static void machine_destroy_pci(struct machine *m)
{
	if (m->rng_pci != NULL)
		virtio_pci_stop(m->rng_pci);
	for (unsigned i = 0; i < m->nblk; i++) {
		if (m->blk_pci[i] != NULL)
			virtio_pci_stop(m->blk_pci[i]);
		/* Reads in flight land in guest RAM: wait for them before it goes. */
		blk_quiesce(m->blk[i]);
	}
	for (unsigned i = 0; i < m->nnet; i++)
		if (m->net_pci[i] != NULL)
			virtio_pci_stop(m->net_pci[i]);
	if (m->vsock_pci != NULL)
		virtio_pci_stop(m->vsock_pci);
	if (m->pci != NULL)
		pci_bus_destroy(m->pci);
	if (m->msi != NULL)
		msi_router_destroy(m->msi);
}

void machine_destroy(struct machine *m)
{
	machine_destroy_pci(m);
	/* The VM first: no vCPU may touch a device that is being freed. */
	vm_destroy(&m->vm);
	virtio_pci_destroy(m->rng_pci);
	for (unsigned i = 0; i < m->nblk; i++) {
		virtio_pci_destroy(m->blk_pci[i]);
		blk_destroy(m->blk[i]);
	}
	for (unsigned i = 0; i < m->nnet; i++) {
		virtio_pci_destroy(m->net_pci[i]);
		net_destroy(m->net[i]);
	}
	virtio_pci_destroy(m->vsock_pci); /* the device itself is the caller's */
	if (m->rng != NULL)
		rng_destroy(m->rng);
	free(m->pci);
	free(m->msi);
	if (m->com1 != NULL)
		serial_destroy(m->com1);
	if (m->rtc != NULL)
		rtc_destroy(m->rtc);
	if (m->i8042 != NULL)
		i8042_destroy(m->i8042);
	ged_destroy(m->ged);
	memset(m, 0, sizeof(*m));
}

void machine_power_button(struct machine *m)
{
	ged_raise(m->ged, GED_EVENT_POWER_BUTTON);
}
