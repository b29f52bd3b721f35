/*
 * tabique check: can this host run guests, and at what speed? Facts first
 * (CPU, /dev/kvm, API, capabilities), then a measurement, because nested KVM
 * without hardware support looks healthy on paper and still emulates every
 * guest kernel instruction.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/commands.h"
#include "util/log.h"
#include "vmm/kvm.h"
#include "vmm/probe.h"

/* Exit codes of `tabique check` (also in --help and docs/check.md). */
enum check_exit {
	CHECK_FAST = 0,	    /* guests run at hardware speed */
	CHECK_ERROR = 1,    /* the check itself failed */
	CHECK_USAGE = 2,    /* bad command line */
	CHECK_SLOW = 3,	    /* KVM works but emulates guest kernel code */
	CHECK_UNUSABLE = 4, /* no KVM, no permission, bad API, missing capability */
};

struct check_cap {
	const char *name;
	int id;
	bool required;
	bool show_value; /* a count or a size, not just present/absent */
	const char *why; /* for optional ones */
};

/* One capability per line; clang-format cannot lay out the macro. */
/* clang-format off */
#define CAP(id, req, val, why) {#id, id, req, val, why}

static const struct check_cap check_caps[] = {
	CAP(KVM_CAP_IRQCHIP, true, false, NULL),
	CAP(KVM_CAP_PIT2, true, false, NULL),
	CAP(KVM_CAP_IOEVENTFD, true, false, NULL),
	CAP(KVM_CAP_IRQFD, true, false, NULL),
	CAP(KVM_CAP_USER_MEMORY, true, false, NULL),
	CAP(KVM_CAP_SET_TSS_ADDR, true, false, NULL),
	CAP(KVM_CAP_EXT_CPUID, true, false, NULL),
	CAP(KVM_CAP_MP_STATE, true, false, NULL),
	CAP(KVM_CAP_IMMEDIATE_EXIT, true, false, NULL),
	CAP(KVM_CAP_MAX_VCPUS, true, true, NULL),
	CAP(KVM_CAP_DIRTY_LOG_RING, false, true, "for live migration"),
	CAP(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, false, false, "for live migration"),
};
/* clang-format on */

#define CHECK_NCAPS (sizeof(check_caps) / sizeof(check_caps[0]))

/* The KVM modules worth naming: which one is loaded says a lot. */
static const char *const check_modules[] = {"kvm_intel", "kvm_amd", "kvm_pvm"};
#define CHECK_NMODULES (sizeof(check_modules) / sizeof(check_modules[0]))

struct check_report {
	char vendor[13];
	char model[49];
	bool cpuinfo_read;
	bool vmx, svm, hypervisor;
	bool modules[CHECK_NMODULES];
	int kvm_err;		 /* 0 when /dev/kvm opened, else a positive errno */
	int api_version;	 /* -1 when not asked */
	int caps[CHECK_NCAPS];	 /* KVM_CHECK_EXTENSION results, -1 when not asked */
	const char *missing_cap; /* first missing required capability */
	int probe_ret;		 /* 0, a negative errno, or 1 when not run */
	struct probe_result probe;
	int exit_code;
};

static void check_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: tabique check [--json]\n"
	    "\n"
	    "Tells whether this host can run guests at hardware speed: CPU, /dev/kvm,\n"
	    "KVM API and capabilities, then a measured probe that runs the same loop as\n"
	    "guest kernel code (CPL0) and as guest user code (CPL3), %d ms each.\n"
	    "\n"
	    "  --json   one JSON object on stdout instead of the report\n"
	    "\n"
	    "exit status: 0 guests run at hardware speed\n"
	    "             1 error while running the check\n"
	    "             2 bad command line\n"
	    "             3 KVM usable but guest kernel code is emulated (slow)\n"
	    "             4 KVM unusable (missing, no permission, bad API, missing capability)\n",
	    PROBE_BUDGET_MS);
}

static void check_cpuid(struct check_report *r)
{
	unsigned int regs[12], max = 0, b = 0, c = 0, d = 0;

	if (__get_cpuid(0, &max, &b, &c, &d)) {
		memcpy(r->vendor, &b, 4);
		memcpy(r->vendor + 4, &d, 4);
		memcpy(r->vendor + 8, &c, 4);
	}
	if ((unsigned)__get_cpuid_max(0x80000000, NULL) < 0x80000004U)
		return;
	for (unsigned i = 0; i < 3; i++)
		__get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
			    &regs[4 * i + 3]);
	memcpy(r->model, regs, sizeof(regs));
	/* The brand string is padded with spaces on some CPUs. */
	char *start = r->model + strspn(r->model, " ");
	memmove(r->model, start, strlen(start) + 1);
}

/* Reads the beginning of /proc/cpuinfo: the first CPU's flags line is enough. */
static void check_cpuinfo(struct check_report *r)
{
	static char text[65536];
	FILE *f = fopen("/proc/cpuinfo", "r");
	size_t n;

	if (f == NULL)
		return;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	r->cpuinfo_read = true;
	r->vmx = probe_cpuinfo_has_flag(text, "vmx");
	r->svm = probe_cpuinfo_has_flag(text, "svm");
	r->hypervisor = probe_cpuinfo_has_flag(text, "hypervisor");
}

static void check_modules_loaded(struct check_report *r)
{
	char path[64];

	for (unsigned i = 0; i < CHECK_NMODULES; i++) {
		snprintf(path, sizeof(path), "/sys/module/%s", check_modules[i]);
		r->modules[i] = access(path, F_OK) == 0;
	}
}

static void check_capabilities(struct check_report *r, int kvm_fd)
{
	for (unsigned i = 0; i < CHECK_NCAPS; i++) {
		r->caps[i] = ioctl(kvm_fd, KVM_CHECK_EXTENSION, check_caps[i].id);
		if (r->caps[i] <= 0 && check_caps[i].required && r->missing_cap == NULL)
			r->missing_cap = check_caps[i].name;
	}
}

/* Everything that needs /dev/kvm; fills exit_code. */
static void check_kvm(struct check_report *r)
{
	int fd = open(KVM_DEVICE_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		r->kvm_err = errno;
		r->exit_code = CHECK_UNUSABLE;
		return;
	}
	r->api_version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (r->api_version == KVM_EXPECTED_API)
		check_capabilities(r, fd);
	if (r->api_version != KVM_EXPECTED_API || r->missing_cap != NULL) {
		r->exit_code = CHECK_UNUSABLE;
	} else {
		r->probe_ret = probe_guest_speed(fd, &r->probe);
		if (r->probe_ret < 0)
			r->exit_code = CHECK_ERROR;
		else if (probe_verdict(r->probe.kernel.per_second, r->probe.user.per_second) ==
			 PROBE_HARDWARE_SPEED)
			r->exit_code = CHECK_FAST;
		else
			r->exit_code = CHECK_SLOW;
	}
	close(fd);
}

static void check_gather(struct check_report *r)
{
	memset(r, 0, sizeof(*r));
	r->api_version = -1;
	r->probe_ret = 1;
	for (unsigned i = 0; i < CHECK_NCAPS; i++)
		r->caps[i] = -1;
	check_cpuid(r);
	check_cpuinfo(r);
	check_modules_loaded(r);
	check_kvm(r);
}

/* What to do about a /dev/kvm that does not open. */
static const char *check_kvm_advice(int err)
{
	switch (err) {
	case ENOENT:
	case ENODEV:
	case ENXIO:
		return "missing: load the KVM module (modprobe kvm_intel, or kvm_amd on AMD); "
		       "without vmx or svm in /proc/cpuinfo, enable virtualization in the "
		       "firmware, or nested virtualization in the hypervisor this host runs on";
	case EACCES:
	case EPERM:
		return "permission denied: add your user to the kvm group "
		       "(usermod -aG kvm $USER, then log in again) or run as root";
	default:
		return strerror(err);
	}
}

/* The one-line conclusion; buf holds it when it needs numbers. */
static const char *check_message(const struct check_report *r, char *buf, size_t len)
{
	if (r->kvm_err != 0)
		snprintf(buf, len, "KVM is unusable: %s %s", KVM_DEVICE_PATH,
			 check_kvm_advice(r->kvm_err));
	else if (r->api_version != KVM_EXPECTED_API)
		snprintf(buf, len,
			 "KVM is unusable: API version %d, tabique needs %d; "
			 "use a newer kernel",
			 r->api_version, KVM_EXPECTED_API);
	else if (r->missing_cap != NULL)
		snprintf(buf, len,
			 "KVM is unusable: this kernel's KVM lacks %s; use a newer "
			 "kernel",
			 r->missing_cap);
	else if (r->probe_ret < 0)
		snprintf(buf, len, "the speed probe failed: %s", strerror(-r->probe_ret));
	else if (r->exit_code == CHECK_FAST)
		snprintf(buf, len,
			 "hardware speed: guest kernel code runs within %gx of guest "
			 "user code",
			 PROBE_SLOW_RATIO);
	else
		snprintf(buf, len,
			 "KVM here emulates guest kernel code (nested virtualization without "
			 "hardware support, e.g. kvm_pvm): guest user code runs natively but guest "
			 "kernels run ~%.0fx slower; an unmodified Linux guest will take minutes "
			 "to hours to boot; use a host with VT-x/AMD-V (or the nested test host: "
			 "tests/nested/run)",
			 r->probe.ratio);
	return buf;
}

/* 1234567 -> "1.23 M", 123 -> "123". */
static const char *check_si(double v, char *buf, size_t len)
{
	static const char *const prefix[] = {"", "k", "M", "G", "T"};
	unsigned i = 0;

	while (v >= 1000 && i + 1 < sizeof(prefix) / sizeof(prefix[0])) {
		v /= 1000;
		i++;
	}
	snprintf(buf, len, "%.3g%s%s", v, i > 0 ? " " : "", prefix[i]);
	return buf;
}

static const char *check_yes(bool b)
{
	return b ? "yes" : "no";
}

static void check_print_cpu(const struct check_report *r)
{
	bool any = false;

	printf("CPU            %s, %s\n", r->vendor[0] ? r->vendor : "unknown vendor",
	       r->model[0] ? r->model : "unknown model");
	if (r->cpuinfo_read)
		printf("cpu flags      vmx %s, svm %s, hypervisor %s%s\n", check_yes(r->vmx),
		       check_yes(r->svm), check_yes(r->hypervisor),
		       r->hypervisor ? " (this host is itself a VM)" : "");
	else
		printf("cpu flags      /proc/cpuinfo unreadable\n");
	printf("KVM modules   ");
	for (unsigned i = 0; i < CHECK_NMODULES; i++) {
		if (r->modules[i]) {
			printf(" %s", check_modules[i]);
			any = true;
		}
	}
	printf("%s\n", any ? "" : " none of kvm_intel, kvm_amd, kvm_pvm");
}

static void check_print_caps(const struct check_report *r)
{
	printf("capabilities\n");
	for (unsigned i = 0; i < CHECK_NCAPS; i++) {
		const struct check_cap *c = &check_caps[i];

		printf("  %-8s %s", r->caps[i] > 0 ? "ok" : "missing", c->name);
		if (c->show_value && r->caps[i] > 0)
			printf(" = %d", r->caps[i]);
		if (c->why != NULL)
			printf(" (%s)", c->why);
		printf("\n");
	}
}

static void check_print_probe(const struct check_report *r)
{
	char a[32], b[32];

	printf("speed probe    guest kernel code (CPL0): %s iterations/s\n",
	       check_si(r->probe.kernel.per_second, a, sizeof(a)));
	printf("               guest user code (CPL3):   %s iterations/s\n",
	       check_si(r->probe.user.per_second, b, sizeof(b)));
	printf("               user/kernel ratio:        %.1f\n", r->probe.ratio);
}

static void check_print_text(const struct check_report *r)
{
	char msg[512];

	check_print_cpu(r);
	if (r->kvm_err != 0) {
		printf("%-14s %s\n", KVM_DEVICE_PATH, check_kvm_advice(r->kvm_err));
	} else {
		printf("%-14s ok\n", KVM_DEVICE_PATH);
		printf("KVM API        %d%s\n", r->api_version,
		       r->api_version == KVM_EXPECTED_API ? "" : " (tabique needs 12)");
	}
	if (r->caps[0] >= 0)
		check_print_caps(r);
	if (r->probe_ret == 0)
		check_print_probe(r);
	printf("verdict        %s\n", check_message(r, msg, sizeof(msg)));
}

/* Prints s as a JSON string: the model name comes from the CPU, escape it all. */
static void check_json_string(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *check_verdict_name(int exit_code)
{
	switch (exit_code) {
	case CHECK_FAST:
		return "hardware-speed";
	case CHECK_SLOW:
		return "kernel-emulated";
	case CHECK_UNUSABLE:
		return "kvm-unusable";
	default:
		return "error";
	}
}

static void check_json_cpu(const struct check_report *r)
{
	printf("\"cpu\":{\"vendor\":");
	check_json_string(r->vendor);
	printf(",\"model\":");
	check_json_string(r->model);
	printf(",\"vmx\":%s,\"svm\":%s,\"hypervisor\":%s,\"kvm_modules\":[",
	       r->vmx ? "true" : "false", r->svm ? "true" : "false",
	       r->hypervisor ? "true" : "false");
	for (unsigned i = 0, n = 0; i < CHECK_NMODULES; i++)
		if (r->modules[i])
			printf("%s\"%s\"", n++ ? "," : "", check_modules[i]);
	printf("]},");
}

static void check_json_kvm(const struct check_report *r)
{
	printf("\"kvm\":{\"device\":\"%s\",\"open\":%s,", KVM_DEVICE_PATH,
	       r->kvm_err == 0 ? "true" : "false");
	if (r->kvm_err != 0) {
		printf("\"error\":");
		check_json_string(check_kvm_advice(r->kvm_err));
		printf(",");
	}
	printf("\"api_version\":%d,\"capabilities\":[", r->api_version);
	for (unsigned i = 0; i < CHECK_NCAPS && r->caps[0] >= 0; i++)
		printf("%s{\"name\":\"%s\",\"required\":%s,\"value\":%d}", i ? "," : "",
		       check_caps[i].name, check_caps[i].required ? "true" : "false", r->caps[i]);
	printf("]},");
}

static void check_print_json(const struct check_report *r)
{
	char msg[512];

	printf("{");
	check_json_cpu(r);
	check_json_kvm(r);
	if (r->probe_ret == 0)
		printf("\"probe\":{\"kernel_per_second\":%.0f,\"user_per_second\":%.0f,"
		       "\"ratio\":%.2f,\"budget_ms\":%d},",
		       r->probe.kernel.per_second, r->probe.user.per_second, r->probe.ratio,
		       PROBE_BUDGET_MS);
	else
		printf("\"probe\":null,");
	printf("\"verdict\":\"%s\",\"message\":", check_verdict_name(r->exit_code));
	check_json_string(check_message(r, msg, sizeof(msg)));
	printf(",\"exit_code\":%d}\n", r->exit_code);
}

/* Returns 0 to go on, 1 after --help, or -EINVAL after one line about a bad argument. */
static int check_parse(int argc, char **argv, bool *json)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			*json = true;
			break;
		case 'h':
			check_usage(stdout);
			return 1;
		default:
			log_error("unknown option '%s': see 'tabique check --help'",
				  argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		log_error("'tabique check' takes no arguments, not '%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int cmd_check(int argc, char **argv)
{
	static struct check_report report;
	bool json = false;
	int ret = check_parse(argc, argv, &json);

	if (ret != 0)
		return ret > 0 ? CHECK_FAST : CHECK_USAGE;
	check_gather(&report);
	if (json)
		check_print_json(&report);
	else
		check_print_text(&report);
	return report.exit_code;
}
