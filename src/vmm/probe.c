#include "vmm/probe.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

/* glibc 2.36 has the field but not the name the man page uses. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/*
 * The probe VM: 2 MiB of RAM mapped by one user-accessible 2 MiB page, so
 * the same code runs at CPL0 and CPL3 without touching the page tables.
 */
#define PROBE_RAM_SIZE 0x200000ULL
#define PROBE_PML4     0x1000ULL
#define PROBE_PDPT     0x2000ULL
#define PROBE_PD       0x3000ULL
#define PROBE_GDT      0x4000ULL
#define PROBE_TSS      0x5000ULL
#define PROBE_CODE     0x6000ULL
#define PROBE_STACK    0x8000ULL

#define PROBE_PORT 0xe9 /* nothing else lives in this VM: any port would do */

/*
 * The TSS grants CPL3 the probe port through its I/O bitmap, not only through
 * IOPL=3: kvm_pvm drops IOPL on the way to CPL3, but the KVM instruction
 * emulator that handles the resulting #GP honours the bitmap.
 */
#define PROBE_TSS_IOMAP_BASE 102  /* offset of the bitmap's offset in a 64-bit TSS */
#define PROBE_TSS_BITMAP     0x68 /* the bitmap, right after the TSS */
#define PROBE_TSS_LIMIT	     (PROBE_TSS_BITMAP + 0x100 / 8) /* ports 0..0xff, then 0xff */

/* Selectors of the probe GDT (user ones carry RPL 3). */
#define PROBE_SEL_KCODE 0x08
#define PROBE_SEL_KDATA 0x10
#define PROBE_SEL_UCODE 0x1b
#define PROBE_SEL_UDATA 0x23
#define PROBE_SEL_TSS	0x28

#define PTE_P  0x01ULL
#define PTE_RW 0x02ULL
#define PTE_US 0x04ULL
#define PTE_PS 0x80ULL

#define CR0_PE	     0x00000001ULL
#define CR0_MP	     0x00000002ULL
#define CR0_ET	     0x00000010ULL
#define CR0_NE	     0x00000020ULL
#define CR0_WP	     0x00010000ULL
#define CR0_PG	     0x80000000ULL
#define CR4_PAE	     0x20ULL
#define EFER_LME     0x100ULL
#define EFER_LMA     0x400ULL
#define RFLAGS_FIXED 0x2ULL
#define RFLAGS_IOPL3 0x3000ULL /* lets CPL3 execute in/out */

/*
 * The guest: an endless sequence of chunks. Each `in` exits to the host,
 * which times the chunk just finished and answers with the size of the next
 * one, so even a very slow CPU reports progress many times per second and
 * the host decides when to stop; no guest ever has to finish a fixed count.
 */
/* clang-format off */
static const uint8_t probe_code[] = {
	0xe5, PROBE_PORT, /* 0x0: in $PROBE_PORT, %eax   chunk done, next size */
	0x89, 0xc1,       /* 0x2: mov %eax, %ecx */
	0x85, 0xc9,       /* 0x4: test %ecx, %ecx */
	0x74, 0xf8,       /* 0x6: jz 0x0                 an empty chunk asks again */
	0xff, 0xc9,       /* 0x8: dec %ecx               one iteration: dec ... */
	0x75, 0xfc,       /* 0xa: jnz 0x8                ... and jnz */
	0xeb, 0xf2,       /* 0xc: jmp 0x0 */
};
/* clang-format on */

/* Chunk sizing: start tiny, aim at PROBE_CHUNK_NS per chunk. */
#define PROBE_FIRST_CHUNK 256U
#define PROBE_MAX_CHUNK	  0x80000000U
#define PROBE_CHUNK_NS	  10000000ULL
#define PROBE_STEADY_NS	  1000000ULL /* shorter chunks are mostly exit overhead */
#define PROBE_GRACE_MS	  2000	     /* past the budget, the guest is stuck */
#define PROBE_WATCHDOG_NS 50000000LL /* re-fire period of the watchdog */

#define NSEC 1000000000ULL

struct probe_vm {
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *ram;
};

struct probe_watchdog {
	timer_t timer;
	struct sigaction old_action;
	sigset_t old_mask;
};

/* Iterations and time of all chunks, and of the long ones only. */
struct probe_tally {
	uint64_t all_iter, all_ns;
	uint64_t steady_iter, steady_ns;
};

static uint64_t probe_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

static void probe_put64(uint8_t *ram, uint64_t gpa, uint64_t value)
{
	memcpy(ram + gpa, &value, sizeof(value));
}

static void probe_fill_memory(uint8_t *ram)
{
	uint64_t tss_lo = PROBE_TSS_LIMIT | (PROBE_TSS & 0xffffff) << 16 | 0x8bULL << 40 |
			  (PROBE_TSS >> 24 & 0xff) << 56;
	uint16_t iomap = PROBE_TSS_BITMAP;

	probe_put64(ram, PROBE_PML4, PROBE_PDPT | PTE_P | PTE_RW | PTE_US);
	probe_put64(ram, PROBE_PDPT, PROBE_PD | PTE_P | PTE_RW | PTE_US);
	probe_put64(ram, PROBE_PD, 0 | PTE_P | PTE_RW | PTE_US | PTE_PS);
	/* KVM loads the segment caches from sregs; the GDT is there for the guest's sake. */
	probe_put64(ram, PROBE_GDT + PROBE_SEL_KCODE, 0x00af9b000000ffffULL);
	probe_put64(ram, PROBE_GDT + PROBE_SEL_KDATA, 0x00cf93000000ffffULL);
	probe_put64(ram, PROBE_GDT + (PROBE_SEL_UCODE & ~3), 0x00affb000000ffffULL);
	probe_put64(ram, PROBE_GDT + (PROBE_SEL_UDATA & ~3), 0x00cff3000000ffffULL);
	probe_put64(ram, PROBE_GDT + PROBE_SEL_TSS, tss_lo);
	probe_put64(ram, PROBE_GDT + PROBE_SEL_TSS + 8, PROBE_TSS >> 32);
	/* The bitmap itself stays zero (every port allowed) up to its 0xff terminator. */
	memcpy(ram + PROBE_TSS + PROBE_TSS_IOMAP_BASE, &iomap, sizeof(iomap));
	ram[PROBE_TSS + PROBE_TSS_LIMIT] = 0xff;
	memcpy(ram + PROBE_CODE, probe_code, sizeof(probe_code));
}

static void probe_vm_close(struct probe_vm *p)
{
	if (p->run != NULL)
		munmap(p->run, p->run_size);
	if (p->vcpu_fd >= 0)
		close(p->vcpu_fd);
	if (p->vm_fd >= 0)
		close(p->vm_fd);
	if (p->ram != NULL)
		munmap(p->ram, PROBE_RAM_SIZE);
}

static int probe_fail(const char *what)
{
	int err = errno;

	log_error("speed probe: %s: %s", what, strerror(err));
	return -err;
}

static int probe_vm_map(int kvm_fd, struct probe_vm *p)
{
	struct kvm_userspace_memory_region region = {
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = PROBE_RAM_SIZE,
	};
	int size;

	p->ram =
	    mmap(NULL, PROBE_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->ram == MAP_FAILED) {
		p->ram = NULL;
		return probe_fail("cannot allocate guest memory");
	}
	probe_fill_memory(p->ram);
	region.userspace_addr = (uint64_t)(uintptr_t)p->ram;
	if (ioctl(p->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return probe_fail("KVM_SET_USER_MEMORY_REGION");
	size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run))
		return probe_fail("KVM_GET_VCPU_MMAP_SIZE");
	p->run_size = (size_t)size;
	p->run = mmap(NULL, p->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, p->vcpu_fd, 0);
	if (p->run == MAP_FAILED) {
		p->run = NULL;
		return probe_fail("cannot map the vCPU run area");
	}
	return 0;
}

static int probe_vm_open(int kvm_fd, struct probe_vm *p)
{
	memset(p, 0, sizeof(*p));
	p->vcpu_fd = -1;
	p->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (p->vm_fd < 0)
		return probe_fail("KVM_CREATE_VM");
	p->vcpu_fd = ioctl(p->vm_fd, KVM_CREATE_VCPU, 0);
	if (p->vcpu_fd < 0)
		return probe_fail("KVM_CREATE_VCPU");
	return probe_vm_map(kvm_fd, p);
}

static struct kvm_segment probe_segment(uint16_t selector, bool code)
{
	struct kvm_segment s = {
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = selector,
	    .type = code ? 0xb : 0x3, /* execute/read or read/write, accessed */
	    .present = 1,
	    .dpl = selector & 3,
	    .db = code ? 0 : 1,
	    .s = 1,
	    .l = code ? 1 : 0,
	    .g = 1,
	};

	return s;
}

static void probe_set_segments(struct kvm_sregs *sregs, bool user)
{
	struct kvm_segment data = probe_segment(user ? PROBE_SEL_UDATA : PROBE_SEL_KDATA, false);

	/* KVM takes the CPL from CS (AMD) or SS (Intel): both say the same. */
	sregs->cs = probe_segment(user ? PROBE_SEL_UCODE : PROBE_SEL_KCODE, true);
	sregs->ss = data;
	sregs->ds = data;
	sregs->es = data;
	sregs->fs = data;
	sregs->gs = data;
	memset(&sregs->tr, 0, sizeof(sregs->tr));
	sregs->tr.base = PROBE_TSS;
	sregs->tr.limit = PROBE_TSS_LIMIT;
	sregs->tr.selector = PROBE_SEL_TSS;
	sregs->tr.type = 0xb; /* busy 64-bit TSS, as VM entry requires */
	sregs->tr.present = 1;
	sregs->gdt.base = PROBE_GDT;
	sregs->gdt.limit = PROBE_SEL_TSS + 16 - 1;
}

/* Points the vCPU at the loop, in 64-bit mode at CPL0 or CPL3. */
static int probe_enter(struct probe_vm *p, bool user)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(p->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return probe_fail("KVM_GET_SREGS");
	probe_set_segments(&sregs, user);
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.cr3 = PROBE_PML4;
	sregs.cr4 = CR4_PAE;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(p->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return probe_fail("KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rip = PROBE_CODE;
	regs.rsp = PROBE_STACK;
	regs.rflags = RFLAGS_FIXED | (user ? RFLAGS_IOPL3 : 0);
	if (ioctl(p->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return probe_fail("KVM_SET_REGS");
	return 0;
}

/* KVM finishes a pending `in` only on the next KVM_RUN: do that without running the guest. */
static void probe_complete_pending(struct probe_vm *p)
{
	p->run->immediate_exit = 1;
	(void)ioctl(p->vcpu_fd, KVM_RUN, 0);
	p->run->immediate_exit = 0;
}

static void probe_alarm(int sig)
{
	(void)sig; /* only there so that KVM_RUN returns EINTR */
}

/* Arms a per-thread timer: first at timeout_ms, then every PROBE_WATCHDOG_NS. */
static int probe_watchdog_arm(struct probe_watchdog *w, long timeout_ms)
{
	struct sigaction sa = {.sa_handler = probe_alarm};
	struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGALRM};
	struct itimerspec its = {
	    .it_value = {timeout_ms / 1000, timeout_ms % 1000 * 1000000L},
	    .it_interval = {0, PROBE_WATCHDOG_NS},
	};
	sigset_t alrm;

	sev.sigev_notify_thread_id = gettid();
	sigemptyset(&sa.sa_mask);
	if (timer_create(CLOCK_MONOTONIC, &sev, &w->timer) < 0)
		return probe_fail("timer_create");
	sigaction(SIGALRM, &sa, &w->old_action);
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &alrm, &w->old_mask);
	timer_settime(w->timer, 0, &its, NULL);
	return 0;
}

static void probe_watchdog_disarm(struct probe_watchdog *w)
{
	timer_delete(w->timer);
	pthread_sigmask(SIG_SETMASK, &w->old_mask, NULL);
	sigaction(SIGALRM, &w->old_action, NULL);
}

static int probe_bad_exit(const struct kvm_run *run)
{
	if (run->exit_reason == KVM_EXIT_IO)
		log_error("speed probe: unexpected port access (port %#x, size %u, %s)",
			  run->io.port, run->io.size,
			  run->io.direction == KVM_EXIT_IO_IN ? "in" : "out");
	else
		log_error("speed probe: the guest stopped with KVM exit reason %u",
			  run->exit_reason);
	return -EIO;
}

/* Runs the vCPU until its next `in` from PROBE_PORT, or fails past deadline_ns. */
static int probe_run_to_port(struct probe_vm *p, uint64_t deadline_ns)
{
	const struct kvm_run *run = p->run;

	for (;;) {
		if (ioctl(p->vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno != EINTR && errno != EAGAIN)
				return probe_fail("KVM_RUN");
			if (probe_now_ns() < deadline_ns)
				continue;
			log_error(
			    "speed probe: the guest stopped answering; KVM may be broken here");
			return -ETIMEDOUT;
		}
		if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_IN &&
		    run->io.port == PROBE_PORT && run->io.size == 4 && run->io.count == 1)
			return 0;
		if (run->exit_reason != KVM_EXIT_INTR)
			return probe_bad_exit(run);
	}
}

/* Sizes the next chunk from the last one so that it lasts about PROBE_CHUNK_NS. */
static uint32_t probe_next_chunk(uint32_t last, uint64_t last_ns)
{
	double want = (double)last * (double)PROBE_CHUNK_NS / (double)(last_ns ? last_ns : 1);
	double most = (double)last * 64; /* exit overhead hides the speed of small chunks */

	if (want > most)
		want = most;
	if (want > PROBE_MAX_CHUNK)
		want = PROBE_MAX_CHUNK;
	return want < PROBE_FIRST_CHUNK ? PROBE_FIRST_CHUNK : (uint32_t)want;
}

static void probe_tally_add(struct probe_tally *t, uint32_t chunk, uint64_t ns)
{
	t->all_iter += chunk;
	t->all_ns += ns;
	if (ns >= PROBE_STEADY_NS) {
		t->steady_iter += chunk;
		t->steady_ns += ns;
	}
}

static void probe_tally_rate(const struct probe_tally *t, struct probe_rate *rate)
{
	bool steady = t->steady_iter > 0;

	rate->iterations = steady ? t->steady_iter : t->all_iter;
	rate->seconds = (double)(steady ? t->steady_ns : t->all_ns) / (double)NSEC;
	rate->per_second = rate->seconds > 0 ? (double)rate->iterations / rate->seconds : 0;
}

/* Answers the guest's `in`: the size of the chunk it runs next. */
static void probe_answer(struct probe_vm *p, uint32_t chunk)
{
	memcpy((uint8_t *)p->run + p->run->io.data_offset, &chunk, sizeof(chunk));
}

/* Times chunks of the loop for PROBE_BUDGET_MS. */
static int probe_measure(struct probe_vm *p, struct probe_tally *t)
{
	uint64_t start = probe_now_ns(), last = start, now;
	uint64_t deadline = start + (PROBE_BUDGET_MS + PROBE_GRACE_MS) * 1000000ULL;
	uint32_t chunk = 0; /* in flight; 0 until the guest first asks */
	int ret;

	for (;;) {
		ret = probe_run_to_port(p, deadline);
		if (ret < 0)
			return ret;
		now = probe_now_ns();
		if (chunk != 0)
			probe_tally_add(t, chunk, now - last);
		if (now - start >= PROBE_BUDGET_MS * 1000000ULL)
			return 0;
		chunk = chunk == 0 ? PROBE_FIRST_CHUNK : probe_next_chunk(chunk, now - last);
		probe_answer(p, chunk);
		last = now;
	}
}

static int probe_phase(struct probe_vm *p, bool user, struct probe_rate *rate)
{
	struct probe_watchdog w;
	struct probe_tally t = {0};
	int ret;

	ret = probe_enter(p, user);
	if (ret < 0)
		return ret;
	ret = probe_watchdog_arm(&w, PROBE_BUDGET_MS + PROBE_GRACE_MS);
	if (ret < 0)
		return ret;
	ret = probe_measure(p, &t);
	probe_watchdog_disarm(&w);
	probe_complete_pending(p);
	probe_tally_rate(&t, rate);
	return ret;
}

int probe_guest_speed(int kvm_fd, struct probe_result *out)
{
	struct probe_vm p;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = probe_vm_open(kvm_fd, &p);
	if (ret == 0)
		ret = probe_phase(&p, false, &out->kernel);
	if (ret == 0)
		ret = probe_phase(&p, true, &out->user);
	probe_vm_close(&p);
	if (ret == 0 && out->kernel.per_second > 0)
		out->ratio = out->user.per_second / out->kernel.per_second;
	return ret;
}

enum probe_verdict probe_verdict(double kernel_per_second, double user_per_second)
{
	/* Written as a product so that a kernel rate of 0 counts as emulated. */
	if (kernel_per_second * PROBE_SLOW_RATIO >= user_per_second && kernel_per_second > 0)
		return PROBE_HARDWARE_SPEED;
	return PROBE_KERNEL_EMULATED;
}

/* The value part of the first line that starts with "flags", or NULL. */
static const char *probe_cpuinfo_flags_line(const char *text)
{
	for (const char *line = text; line != NULL && *line != '\0';) {
		const char *colon = strchr(line, ':');
		const char *eol = strchr(line, '\n');

		if (strncmp(line, "flags", 5) == 0 &&
		    (line[5] == ' ' || line[5] == '\t' || line[5] == ':') && colon != NULL &&
		    (eol == NULL || colon < eol))
			return colon + 1;
		line = eol != NULL ? eol + 1 : NULL;
	}
	return NULL;
}

bool probe_cpuinfo_has_flag(const char *cpuinfo, const char *flag)
{
	const char *p = probe_cpuinfo_flags_line(cpuinfo);
	size_t len = strlen(flag);

	if (p == NULL || len == 0)
		return false;
	while (*p != '\0' && *p != '\n') {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t word = strcspn(p, " \t\n");

		if (word == len && strncmp(p, flag, len) == 0)
			return true;
		p += word;
	}
	return false;
}
