/*
 * Runs the tiny test guests (the .S files here) under /dev/kvm, one Criterion
 * test each. Every guest starts at CPL0 in long mode and does its work at
 * CPL3, where it runs natively even on hosts that emulate guest kernels
 * (see README.md). The runner gives each guest small test devices on the
 * PIO and MMIO buses, the real COM1 and ACPI devices, a watchdog, and checks
 * what the guest reports and what the devices saw.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "bus/pci.h"
#include "devices/acpi_pm.h"
#include "devices/serial.h"
#include "guest.h"
#include "tg.h"
#include "virtio/pci.h"
#include "virtio/rng.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

_Static_assert(GUEST_HOLE == LAYOUT_MMIO_HOLE, "guest.h and layout.h disagree on the hole");
_Static_assert(GUEST_HIGH == LAYOUT_HIGH_RAM, "guest.h and layout.h disagree on high RAM");
_Static_assert(GUEST_ACPI_S5 == (ACPI_PM_SLP_EN | ACPI_PM_S5_TYP << ACPI_PM_SLP_TYP_SHIFT),
	       "guest.h and acpi_pm.h disagree on S5");
_Static_assert(GUEST_MMIO_BASE >= LAYOUT_PCI_MMIO && GUEST_MMIO_BASE < LAYOUT_PCI_MMIO_END,
	       "the test MMIO device must sit in the hole");
_Static_assert(GUEST_PCI_ECAM == LAYOUT_PCI_ECAM, "guest.h and layout.h disagree on ECAM");
_Static_assert(GUEST_PCI_BAR0 == LAYOUT_PCI_MMIO, "guest.h and layout.h disagree on BARs");

#define TG_TIMEOUT_MS 20000 /* CPL0 setup is a few hundred instructions, even emulated */
#define TG_SMALL_RAM  (256ULL << 20)
#define TG_SPLIT_RAM  (4608ULL << 20) /* 3 GiB below the hole, 1.5 GiB above 4 GiB */
#define TG_SERIAL_MAX 256
#define TG_FIFO_MAX   64
#define TG_SCRATCH    16

/* State of one test VM and its devices; the lock guards everything below it. */
struct tg {
	struct vm vm;
	struct serial *com1;
	pthread_mutex_t lock;
	bool result_set;
	uint32_t result;
	bool faulted;
	uint32_t fault_vector, fault_rip, fault_err;
	uint64_t fault_cr2;
	unsigned cpu_seen[GUEST_MAX_CPUS];
	unsigned cpu_bad; /* reports of an index out of range */
	uint8_t echo[4];
	unsigned echo_writes[9], echo_reads[9]; /* by access size */
	uint8_t fifo[TG_FIFO_MAX];
	size_t fifo_in, fifo_out;
	uint8_t scratch[TG_SCRATCH];
	unsigned scratch_writes[9], scratch_reads[9];
	char serial_out[TG_SERIAL_MAX];
	size_t serial_len;
};

struct tg_watchdog {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	struct vm *vm;
	unsigned ms;
};

static uint32_t tg_le32(const uint8_t *data, uint32_t len)
{
	uint32_t v = 0;

	memcpy(&v, data, len < 4 ? len : 4);
	return v;
}

/* The control ports: result, exception report, smp index. */
static void tg_ctl_store(struct tg *t, uint64_t port, uint32_t v)
{
	switch (port) {
	case GUEST_PORT_FAULT_RIP:
		t->fault_rip = v;
		break;
	case GUEST_PORT_FAULT_ERR:
		t->fault_err = v;
		break;
	case GUEST_PORT_FAULT_CR2: /* two writes, low half first */
		t->fault_cr2 = t->fault_cr2 >> 32 | (uint64_t)v << 32;
		break;
	case GUEST_PORT_CPU:
		if (v < GUEST_MAX_CPUS)
			t->cpu_seen[v]++;
		else
			t->cpu_bad++;
		break;
	default:
		break;
	}
}

static enum vm_action tg_ctl_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct tg *t = opaque;
	uint64_t port = GUEST_PORT_RESULT + offset;
	uint32_t v = tg_le32(data, len);
	enum vm_action action = VM_CONTINUE;

	pthread_mutex_lock(&t->lock);
	if (port == GUEST_PORT_RESULT) {
		t->result_set = true;
		t->result = v;
		action = VM_POWEROFF;
	} else if (port == GUEST_PORT_FAULT) {
		t->faulted = true;
		t->fault_vector = v;
		action = VM_CRASH;
	} else {
		tg_ctl_store(t, port, v);
	}
	pthread_mutex_unlock(&t->lock);
	return action;
}

static enum vm_action tg_ctl_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	(void)opaque;
	(void)offset;
	memset(data, 0, len);
	return VM_CONTINUE;
}

static const struct bus_ops tg_ctl_ops = {tg_ctl_read, tg_ctl_write};

/* pio: a 4-byte register written at +0..3 and read at +4..7; other bytes read as ones. */
static enum vm_action tg_echo_write(void *opaque, uint64_t offset, const uint8_t *data,
				    uint32_t len)
{
	struct tg *t = opaque;

	pthread_mutex_lock(&t->lock);
	t->echo_writes[len]++;
	for (uint32_t i = 0; i < len; i++)
		if (offset + i < 4)
			t->echo[offset + i] = data[i];
	pthread_mutex_unlock(&t->lock);
	return VM_CONTINUE;
}

static enum vm_action tg_echo_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct tg *t = opaque;

	pthread_mutex_lock(&t->lock);
	t->echo_reads[len]++;
	for (uint32_t i = 0; i < len; i++)
		data[i] = offset + i >= 4 && offset + i < 8 ? t->echo[offset + i - 4] : 0xff;
	pthread_mutex_unlock(&t->lock);
	return VM_CONTINUE;
}

static const struct bus_ops tg_echo_ops = {tg_echo_read, tg_echo_write};

/* pio: bytes written at +0 come back in order from +1. */
static enum vm_action tg_fifo_write(void *opaque, uint64_t offset, const uint8_t *data,
				    uint32_t len)
{
	struct tg *t = opaque;

	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; offset == 0 && i < len && t->fifo_in < TG_FIFO_MAX; i++)
		t->fifo[t->fifo_in++] = data[i];
	pthread_mutex_unlock(&t->lock);
	return VM_CONTINUE;
}

static enum vm_action tg_fifo_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct tg *t = opaque;

	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; i < len; i++)
		data[i] = offset == 1 && t->fifo_out < t->fifo_in ? t->fifo[t->fifo_out++] : 0xff;
	pthread_mutex_unlock(&t->lock);
	return VM_CONTINUE;
}

static const struct bus_ops tg_fifo_ops = {tg_fifo_read, tg_fifo_write};

/* mmio: TG_SCRATCH bytes of registers, the rest of the page reads as zero. */
static enum vm_action tg_scratch_write(void *opaque, uint64_t offset, const uint8_t *data,
				       uint32_t len)
{
	struct tg *t = opaque;

	pthread_mutex_lock(&t->lock);
	t->scratch_writes[len]++;
	for (uint32_t i = 0; i < len; i++)
		if (offset + i < TG_SCRATCH)
			t->scratch[offset + i] = data[i];
	pthread_mutex_unlock(&t->lock);
	return VM_CONTINUE;
}

static enum vm_action tg_scratch_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct tg *t = opaque;

	pthread_mutex_lock(&t->lock);
	t->scratch_reads[len]++;
	for (uint32_t i = 0; i < len; i++)
		data[i] = offset + i < TG_SCRATCH ? t->scratch[offset + i] : 0;
	pthread_mutex_unlock(&t->lock);
	return VM_CONTINUE;
}

static const struct bus_ops tg_scratch_ops = {tg_scratch_read, tg_scratch_write};

static void tg_serial_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct tg *t = opaque;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < len && t->serial_len + 1 < TG_SERIAL_MAX; i++)
		t->serial_out[t->serial_len++] = (char)buf[i];
	pthread_mutex_unlock(&t->lock);
}

/* A missing /dev/kvm fails the test, loudly, unless the caller opted out. */
static void tg_require_kvm(void)
{
	const char *opt_out = getenv("TABIQUE_NO_KVM");

	if (opt_out != NULL && strcmp(opt_out, "1") == 0)
		cr_skip_test("TABIQUE_NO_KVM=1: guest tests skipped (they need /dev/kvm)");
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		cr_assert_fail(
		    "/dev/kvm is %s: the guest tests need KVM (run as root or in the kvm "
		    "group; set TABIQUE_NO_KVM=1 to skip them)",
		    errno == ENOENT ? "missing" : strerror(errno));
}

static void tg_load(struct tg *t, const char *name)
{
	static uint8_t image[GUEST_IMAGE_MAX + 1];
	char path[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s.bin", GUEST_DIR, name);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s: %s (build the tests with ninja first)", path,
			   strerror(errno));
	n = fread(image, 1, sizeof(image), f);
	fclose(f);
	cr_assert(n > 0 && n <= GUEST_IMAGE_MAX, "%s: %zu bytes, want 1..%d", path, n,
		  GUEST_IMAGE_MAX);
	cr_assert_eq(memory_write(&t->vm.mem, GUEST_LOAD, image, n), 0);
}

/* Every vCPU enters the guest at CPL0 with RSI = its index and its own stack. */
static void tg_boot(struct tg *t)
{
	for (unsigned i = 0; i < t->vm.ncpus; i++) {
		struct vcpu *v = &t->vm.vcpus[i];
		uint64_t stack = GUEST_STACKS + (uint64_t)(i + 1) * GUEST_STACK_SIZE;
		struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_RUNNABLE};
		int ret = boot_enter_long_mode(&t->vm, v, GUEST_LOAD, i, stack);

		cr_assert_eq(ret, 0, "boot_enter_long_mode(vCPU %u): %s", i, strerror(-ret));
		/* APs wait for INIT/SIPI in the in-kernel LAPIC: start them directly. */
		if (i > 0)
			cr_assert_eq(ioctl(v->fd, KVM_SET_MP_STATE, &mp), 0,
				     "KVM_SET_MP_STATE(vCPU %u): %s", i, strerror(errno));
	}
}

static void tg_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
			struct tg *t)
{
	cr_assert_eq(bus_register(bus, base, len, ops, t), 0, "bus_register(%#llx)",
		     (unsigned long long)base);
}

struct tg *tg_setup(const char *guest, uint64_t memory, unsigned ncpus)
{
	struct vm_config cfg = {.memory = memory, .cpus = ncpus};
	struct guest_params params;
	struct tg *t;

	tg_require_kvm();
	t = calloc(1, sizeof(*t));
	cr_assert_not_null(t);
	pthread_mutex_init(&t->lock, NULL);
	cr_assert_eq(vm_create(&t->vm, &cfg), 0, "vm_create failed (see above)");
	tg_register(&t->vm.pio, GUEST_PORT_RESULT, GUEST_PORT_CTL_LEN, &tg_ctl_ops, t);
	tg_load(t, guest);
	params.ncpus = ncpus;
	params.low_size = memory_low_size(&t->vm.mem);
	params.high_size = memory_high_size(&t->vm.mem);
	cr_assert_eq(memory_write(&t->vm.mem, GUEST_PARAMS, &params, sizeof(params)), 0);
	tg_boot(t);
	return t;
}

void tg_teardown(struct tg *t)
{
	vm_destroy(&t->vm);
	if (t->com1 != NULL)
		serial_destroy(t->com1);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct vm *tg_vm(struct tg *t)
{
	return &t->vm;
}

bool tg_result(const struct tg *t, uint32_t *result)
{
	*result = t->result;
	return t->result_set;
}

static void *tg_watchdog_main(void *arg)
{
	struct tg_watchdog *w = arg;
	struct timespec deadline;
	char reason[64];

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += w->ms / 1000;
	deadline.tv_nsec += (long)(w->ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) == ETIMEDOUT) {
			snprintf(reason, sizeof(reason), "timeout: the guest ran %u ms", w->ms);
			vm_request_stop(w->vm, VM_FATAL, reason);
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Runs the VM until it stops, or the watchdog stops it after ms. */
enum vm_action tg_run(struct tg *t, unsigned ms)
{
	struct tg_watchdog w = {.vm = &t->vm, .ms = ms};
	pthread_condattr_t attr;
	enum vm_action action;

	pthread_mutex_init(&w.lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &attr);
	pthread_condattr_destroy(&attr);
	cr_assert_eq(pthread_create(&w.thread, NULL, tg_watchdog_main, &w), 0);
	action = vm_run(&t->vm);
	pthread_mutex_lock(&w.lock);
	w.done = true;
	pthread_cond_signal(&w.cond);
	pthread_mutex_unlock(&w.lock);
	pthread_join(w.thread, NULL);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return action;
}

void tg_assert_no_fault(const struct tg *t)
{
	cr_assert_not(t->faulted, "guest exception %u at rip %#x (error code %#x, cr2 %#llx)",
		      t->fault_vector, t->fault_rip, t->fault_err,
		      (unsigned long long)t->fault_cr2);
}

/* The guest ran to its end and reported that all its own checks passed. */
static void tg_assert_passed(const struct tg *t, enum vm_action action)
{
	tg_assert_no_fault(t);
	cr_assert_eq(action, VM_POWEROFF, "the VM stopped with action %d: %s", (int)action,
		     t->vm.stop_reason);
	cr_assert(t->result_set, "the VM powered off before the guest reported a result");
	cr_assert_eq(t->result, 0, "the guest failed its check %u", t->result);
}

Test(guests, pio, .timeout = 60)
{
	static const char pattern[] = "tabique pio 0123";
	struct tg *t = tg_setup("pio", TG_SMALL_RAM, 1);
	const uint8_t echo[4] = {0x78, 0xa5, 0xef, 0x3c};

	tg_register(&t->vm.pio, GUEST_PORT_ECHO, 8, &tg_echo_ops, t);
	tg_register(&t->vm.pio, GUEST_PORT_FIFO, 2, &tg_fifo_ops, t);
	tg_assert_passed(t, tg_run(t, TG_TIMEOUT_MS));
	/* What the device saw, by width: the guest cannot check that itself. */
	cr_assert_eq(t->echo_writes[1], 2);
	cr_assert_eq(t->echo_writes[2], 1);
	cr_assert_eq(t->echo_writes[4], 1);
	cr_assert_eq(t->echo_reads[1], 1);
	cr_assert_eq(t->echo_reads[2], 2);
	cr_assert_eq(t->echo_reads[4], 3);
	cr_assert_arr_eq(t->echo, echo, sizeof(echo));
	cr_assert_eq(t->fifo_in, 16, "rep outsb delivered %zu bytes, want 16", t->fifo_in);
	cr_assert_arr_eq(t->fifo, pattern, 16);
	tg_teardown(t);
}

Test(guests, mmio, .timeout = 60)
{
	const uint8_t final[TG_SCRATCH] = {0xef, 0xcd, 0xab, 0x89, 0xef, 0xbe, 0x23, 0x01,
					   0x0d, 0xf0, 0xfe, 0xca, 0x00, 0x00, 0x00, 0x5a};
	struct tg *t = tg_setup("mmio", TG_SMALL_RAM, 1);

	tg_register(&t->vm.mmio, GUEST_MMIO_BASE, GUEST_MMIO_SIZE, &tg_scratch_ops, t);
	tg_assert_passed(t, tg_run(t, TG_TIMEOUT_MS));
	for (unsigned len = 1; len <= 8; len *= 2)
		cr_assert_eq(t->scratch_writes[len], 1, "%u writes of %u bytes, want 1",
			     t->scratch_writes[len], len);
	cr_assert_eq(t->scratch_reads[1], 1);
	cr_assert_eq(t->scratch_reads[2], 1);
	cr_assert_eq(t->scratch_reads[4], 2);
	cr_assert_eq(t->scratch_reads[8], 2);
	cr_assert_arr_eq(t->scratch, final, sizeof(final));
	tg_teardown(t);
}

Test(guests, serial, .timeout = 60)
{
	struct tg *t = tg_setup("serial", TG_SMALL_RAM, 1);
	struct irq_line irq = {.set = vm_set_irq, .opaque = &t->vm, .gsi = IRQ_COM1};
	struct serial_output out = {.write = tg_serial_write, .opaque = t};

	t->com1 = serial_create(irq, out);
	cr_assert_not_null(t->com1);
	cr_assert_eq(serial_attach(t->com1, &t->vm.pio, PORT_COM1), 0);
	tg_assert_passed(t, tg_run(t, TG_TIMEOUT_MS));
	cr_assert_str_eq(t->serial_out, "hello from CPL3\n");
	tg_teardown(t);
}

Test(guests, poweroff, .timeout = 60)
{
	struct tg *t = tg_setup("poweroff", TG_SMALL_RAM, 1);
	enum vm_action action;

	cr_assert_eq(acpi_pm_attach(&t->vm.pio), 0);
	action = tg_run(t, TG_TIMEOUT_MS);
	tg_assert_no_fault(t);
	cr_assert_not(t->result_set, "the guest went on after the S5 write (result %u)", t->result);
	cr_assert_eq(action, VM_POWEROFF, "the VM stopped with action %d: %s", (int)action,
		     t->vm.stop_reason);
	tg_teardown(t);
}

static void tg_smp(unsigned ncpus)
{
	struct tg *t = tg_setup("smp", TG_SMALL_RAM, ncpus);
	uint32_t counter = 0;

	tg_assert_passed(t, tg_run(t, TG_TIMEOUT_MS));
	for (unsigned i = 0; i < ncpus; i++)
		cr_assert_eq(t->cpu_seen[i], 1, "vCPU %u reported %u times", i, t->cpu_seen[i]);
	cr_assert_eq(t->cpu_bad, 0);
	cr_assert_eq(memory_read(&t->vm.mem, GUEST_SHARED, &counter, sizeof(counter)), 0);
	cr_assert_eq(counter, ncpus, "the shared counter is %u, want %u", counter, ncpus);
	tg_teardown(t);
}

Test(guests, smp_1, .timeout = 60)
{
	tg_smp(1);
}

Test(guests, smp_2, .timeout = 60)
{
	tg_smp(2);
}

Test(guests, smp_4, .timeout = 60)
{
	tg_smp(4);
}

Test(guests, smp_8, .timeout = 60)
{
	tg_smp(8);
}

/* Where gpa must live in the one memfd: RAM below the hole first, then the high part. */
static uint64_t tg_memfd_offset(const struct guest_memory *mem, uint64_t gpa)
{
	return gpa < GUEST_HIGH ? gpa : memory_low_size(mem) + (gpa - GUEST_HIGH);
}

static void tg_touch_check_one(const struct guest_memory *mem, uint64_t gpa)
{
	uint64_t want = gpa ^ GUEST_TOUCH_MAGIC, got = 0, in_file = 0;
	const uint8_t *hva = gpa_to_hva(mem, gpa, 8);
	uint64_t offset = tg_memfd_offset(mem, gpa);

	cr_assert_not_null(hva, "gpa %#llx is not RAM for the VMM", (unsigned long long)gpa);
	cr_assert_eq(hva, mem->base + offset, "gpa %#llx maps to the wrong host address",
		     (unsigned long long)gpa);
	memcpy(&got, hva, 8);
	cr_assert_eq(got, want, "gpa %#llx holds %#llx, want %#llx", (unsigned long long)gpa,
		     (unsigned long long)got, (unsigned long long)want);
	cr_assert_eq(pread(mem->memfd, &in_file, 8, (off_t)offset), 8);
	cr_assert_eq(in_file, want, "memfd offset %#llx differs from gpa %#llx",
		     (unsigned long long)offset, (unsigned long long)gpa);
}

/* The walk memtouch.S makes over [start, end). */
static unsigned tg_touch_check_range(const struct guest_memory *mem, uint64_t start, uint64_t end)
{
	unsigned n = 0;

	if (start + 8 > end)
		return 0;
	for (uint64_t gpa = start; gpa + 8 <= end; gpa += GUEST_TOUCH_STRIDE, n++)
		tg_touch_check_one(mem, gpa);
	tg_touch_check_one(mem, end - 8);
	return n + 1;
}

static void tg_memtouch(uint64_t memory)
{
	struct tg *t = tg_setup("memtouch", memory, 1);
	const struct guest_memory *mem = &t->vm.mem;
	uint64_t low = memory_low_size(mem), high = memory_high_size(mem);
	uint64_t untouched = 0;

	cr_assert_eq(low + high, memory);
	cr_assert_leq(high, (uint64_t)GUEST_HIGH_PD_MAX << 30, "memtouch maps 16 GiB at most");
	tg_assert_passed(t, tg_run(t, TG_TIMEOUT_MS));
	cr_assert_gt(tg_touch_check_range(mem, GUEST_TOUCH_START, low), 0);
	if (memory > GUEST_HOLE)
		cr_assert_gt(tg_touch_check_range(mem, GUEST_HIGH, GUEST_HIGH + high), 0);
	/* Between two touched qwords, memory stayed zero: no stray writes. */
	cr_assert_eq(memory_read(mem, GUEST_TOUCH_START + 8, &untouched, 8), 0);
	cr_assert_eq(untouched, 0);
	tg_teardown(t);
}

Test(guests, memtouch_low, .timeout = 60)
{
	tg_memtouch(TG_SMALL_RAM);
}

Test(guests, memtouch_split, .timeout = 60)
{
	tg_memtouch(TG_SPLIT_RAM);
}

/*
 * The PCI bus as machine.c builds it (without the 64-bit window, so BAR 0
 * lands where CPL3 can reach it), with a real virtio-rng whose notify
 * address gets a real KVM ioeventfd.
 */
Test(guests, pci, .timeout = 60)
{
	struct tg *t = tg_setup("pci", TG_SMALL_RAM, 1);
	struct pci_bus_config cfg = {
	    .pio = &t->vm.pio,
	    .mmio = &t->vm.mmio,
	    .ecam_base = LAYOUT_PCI_ECAM,
	    .mmio32_base = LAYOUT_PCI_MMIO,
	    .mmio32_end = LAYOUT_PCI_MMIO_END,
	};
	struct pci_bus *pb = calloc(1, sizeof(*pb));
	struct rng *rng = rng_create();
	struct virtio_pci *vp;
	struct virtio_pci_state *st = calloc(1, sizeof(*st));

	cr_assert_eq(pci_bus_init(pb, &cfg), 0);
	cr_assert_eq(virtio_pci_create(&vp, rng_virtio(rng), &t->vm.mem, t->vm.vm_fd), 0);
	cr_assert_eq(pci_add_device(pb, virtio_pci_device(vp)), 0);
	tg_assert_passed(t, tg_run(t, TG_TIMEOUT_MS));
	virtio_pci_save(vp, st);
	cr_assert_eq(st->status, 1, "the guest's ACKNOWLEDGE reached the device");
	cr_assert(virtio_pci_device(vp)->bars[0].mapped, "BAR 0 decodes");
	cr_assert_eq(virtio_pci_slow_notifies(vp), 0,
		     "the guest's 16-bit notify went to the ioeventfd, not through an MMIO exit");
	pci_bus_destroy(pb);
	tg_teardown(t);
	virtio_pci_destroy(vp);
	rng_destroy(rng);
	free(st);
	free(pb);
}

/*
 * A guest that faults with no usable IDT escalates to a triple fault: the VM
 * must stop as crashed, with a reason, and the VMM must carry on. The two
 * bytes run at CPL0 (emulated here, but it is only one instruction).
 */
Test(guests, triple_fault, .timeout = 60)
{
	static const uint8_t ud2[] = {0x0f, 0x0b};
	struct vm_config cfg = {.memory = 64ULL << 20, .cpus = 1};
	struct tg *t;
	enum vm_action action;

	tg_require_kvm();
	t = calloc(1, sizeof(*t));
	cr_assert_not_null(t);
	pthread_mutex_init(&t->lock, NULL);
	cr_assert_eq(vm_create(&t->vm, &cfg), 0);
	cr_assert_eq(memory_write(&t->vm.mem, GUEST_LOAD, ud2, sizeof(ud2)), 0);
	/* boot_enter_long_mode leaves the IDT empty: #UD -> #GP -> #DF -> shutdown. */
	cr_assert_eq(boot_enter_long_mode(&t->vm, &t->vm.vcpus[0], GUEST_LOAD, 0, 0x8000), 0);
	action = tg_run(t, 20000);
	cr_assert_eq(action, VM_CRASH, "action %d: %s", (int)action, t->vm.stop_reason);
	cr_assert(strstr(t->vm.stop_reason, "triple-fault") != NULL, "reason: %s",
		  t->vm.stop_reason);
	tg_teardown(t);
}

/* ---- pause and resume: the spin guest's counts ---- */

struct tg_bg {
	struct tg *t;
	pthread_t thread;
	enum vm_action action;
};

static void *tg_bg_main(void *arg)
{
	struct tg_bg *bg = arg;

	bg->action = tg_run(bg->t, 60000);
	return NULL;
}

static void tg_counts(struct tg *t, uint64_t *out)
{
	uint64_t *c = gpa_to_hva(&t->vm.mem, GUEST_SHARED, GUEST_MAX_CPUS * sizeof(uint64_t));

	cr_assert_not_null(c);
	for (unsigned i = 0; i < t->vm.ncpus; i++)
		out[i] = __atomic_load_n(&c[i], __ATOMIC_RELAXED);
}

/* Waits up to 10 s for every vCPU's count to pass after[i]. */
static void tg_wait_counting(struct tg *t, const uint64_t *after, const char *when)
{
	uint64_t now[GUEST_MAX_CPUS];

	for (int tries = 0; tries < 1000; tries++) {
		unsigned moved = 0;

		tg_counts(t, now);
		for (unsigned i = 0; i < t->vm.ncpus; i++)
			moved += now[i] > after[i];
		if (moved == t->vm.ncpus)
			return;
		usleep(10000);
	}
	cr_assert_fail("%s: a vCPU did not count within 10 s", when);
}

static void tg_pause_resume(unsigned ncpus)
{
	struct tg_bg bg = {.t = tg_setup("spin", TG_SMALL_RAM, ncpus)};
	uint64_t zero[GUEST_MAX_CPUS] = {0}, frozen[GUEST_MAX_CPUS], later[GUEST_MAX_CPUS];

	cr_assert_eq(pthread_create(&bg.thread, NULL, tg_bg_main, &bg), 0);
	tg_wait_counting(bg.t, zero, "at start");
	cr_assert_eq(vm_pause(&bg.t->vm, 10000), 0);
	cr_assert_eq(vm_pause(&bg.t->vm, 10000), -EALREADY);
	cr_assert(vm_paused(&bg.t->vm));
	/* vm_pause returned: every vCPU is out of KVM_RUN, no count may move now. */
	tg_counts(bg.t, frozen);
	usleep(200000);
	tg_counts(bg.t, later);
	for (unsigned i = 0; i < ncpus; i++)
		cr_assert_eq(later[i], frozen[i], "vCPU %u counted while paused", i);
	cr_assert_eq(vm_resume(&bg.t->vm), 0);
	cr_assert_eq(vm_resume(&bg.t->vm), -EALREADY);
	tg_wait_counting(bg.t, frozen, "after resume");
	/* A stop while paused: the parked vCPUs leave and vm_run returns. */
	cr_assert_eq(vm_pause(&bg.t->vm, 10000), 0);
	vm_request_stop(&bg.t->vm, VM_POWEROFF, NULL);
	pthread_join(bg.thread, NULL);
	cr_assert_eq(bg.action, VM_POWEROFF, "action %d: %s", (int)bg.action, bg.t->vm.stop_reason);
	cr_assert_eq(vm_pause(&bg.t->vm, 10000), -ESHUTDOWN);
	tg_teardown(bg.t);
}

/* A vCPU that never parks (one stuck in a device) fails the pause in time, and the rest run on. */
Test(guests, pause_times_out_and_the_vm_runs_on, .timeout = 60)
{
	struct tg_bg bg = {.t = tg_setup("spin", TG_SMALL_RAM, 1)};
	uint64_t zero[GUEST_MAX_CPUS] = {0}, before[GUEST_MAX_CPUS];
	struct vm *vm = &bg.t->vm;

	cr_assert_eq(pthread_create(&bg.thread, NULL, tg_bg_main, &bg), 0);
	tg_wait_counting(bg.t, zero, "at start");
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_alive++; /* the stuck one */
	pthread_mutex_unlock(&vm->lock);
	cr_assert_eq(vm_pause(vm, 300), -ETIMEDOUT);
	cr_assert_not(vm_paused(vm));
	tg_counts(bg.t, before);
	tg_wait_counting(bg.t, before, "after the failed pause");
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_alive--;
	pthread_mutex_unlock(&vm->lock);
	cr_assert_eq(vm_pause(vm, 10000), 0);
	vm_request_stop(vm, VM_POWEROFF, NULL);
	pthread_join(bg.thread, NULL);
	tg_teardown(bg.t);
}

Test(guests, pause_resume_1, .timeout = 60)
{
	tg_pause_resume(1);
}

Test(guests, pause_resume_4, .timeout = 60)
{
	tg_pause_resume(4);
}
