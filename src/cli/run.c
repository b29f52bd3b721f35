/* tabique run: boot one VM in the foreground, its serial console on this terminal. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "cli/commands.h"
#include "console/console.h"
#include "guest/default_guest.h"
#include "util/log.h"
#include "util/size.h"
#include "vmm/kvm.h"
#include "vmm/machine.h"

#define RUN_DEFAULT_MEMORY (512ULL << 20)
#define RUN_DEFAULT_CMDLINE "console=ttyS0"
#define RUN_MAX_APIC_CPUS 255 /* xAPIC ids are 8 bits and 255 is broadcast */

struct run_options {
	struct machine_config machine;
	const char *memory_text;
	const char *cpus_text;
	bool restart_on_reboot;
	struct default_guest guest;
};

static void run_usage(FILE *out)
{
	fprintf(out,
		"usage: tabique run [--kernel PATH [--initrd PATH]] [--cmdline STRING]\n"
		"                   [--cpus N] [--memory SIZE] [--on-reboot exit|restart]\n"
		"\n"
		"Boots a VM with its serial console on this terminal; Ctrl-A x quits.\n"
		"Without --kernel, boots the default guest (prepared on first use).\n"
		"\n"
		"  --kernel PATH      a Linux bzImage (64-bit boot protocol)\n"
		"  --initrd PATH      an initramfs\n"
		"  --cmdline STRING   kernel command line (default: \"" RUN_DEFAULT_CMDLINE "\")\n"
		"  --cpus N           virtual CPUs (default 1)\n"
		"  --memory SIZE      guest RAM, e.g. 512M, 2G (default 512M)\n"
		"  --on-reboot MODE   exit (default) or restart when the guest reboots\n"
		"\n"
		"exit status: 0 guest powered off, 1 error, 2 usage, 3 guest rebooted,\n"
		"             4 guest crashed (panic, triple fault), 5 stopped from the host\n");
}

static int run_parse(int argc, char **argv, struct run_options *o)
{
	static const struct option longopts[] = {
		{"kernel", required_argument, NULL, 'k'}, {"initrd", required_argument, NULL, 'i'},
		{"cmdline", required_argument, NULL, 'c'}, {"cpus", required_argument, NULL, 'n'},
		{"memory", required_argument, NULL, 'm'}, {"on-reboot", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'k': o->machine.kernel = optarg; break;
		case 'i': o->machine.initrd = optarg; break;
		case 'c': o->machine.cmdline = optarg; break;
		case 'n': o->cpus_text = optarg; break;
		case 'm': o->memory_text = optarg; break;
		case 'r':
			if (strcmp(optarg, "restart") != 0 && strcmp(optarg, "exit") != 0) {
				log_error("--on-reboot takes 'exit' or 'restart', not '%s'", optarg);
				return -EINVAL;
			}
			o->restart_on_reboot = strcmp(optarg, "restart") == 0;
			break;
		case 'h': run_usage(stdout); return 1;
		case ':':
			log_error("option %s needs a value: see 'tabique run --help'", argv[optind - 1]);
			return -EINVAL;
		default:
			log_error("unknown option '%s': see 'tabique run --help'", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument '%s': see 'tabique run --help'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int run_check_memory(struct run_options *o)
{
	struct sysinfo si;
	uint64_t bytes = RUN_DEFAULT_MEMORY, host;

	if (o->memory_text != NULL && size_parse(o->memory_text, &bytes) != 0) {
		log_error("--memory '%s' is not a size: use e.g. 512M or 2G", o->memory_text);
		return -EINVAL;
	}
	bytes = (bytes + 0xfff) & ~0xfffULL;
	if (bytes < MEMORY_MIN) {
		log_error("--memory %s is too little: a guest needs at least %lluM",
			  o->memory_text, MEMORY_MIN >> 20);
		return -EINVAL;
	}
	host = sysinfo(&si) == 0 ? (uint64_t)si.totalram * si.mem_unit : MEMORY_MAX;
	if (bytes > host || bytes > MEMORY_MAX) {
		log_error("--memory %s is more than this host has (%llu MiB)", o->memory_text,
			  (unsigned long long)(host >> 20));
		return -EINVAL;
	}
	o->machine.memory = bytes;
	return 0;
}

static int run_check_cpus(struct run_options *o)
{
	unsigned long cpus = 1, max;
	int kvm_fd, ret;

	/* Opening KVM here also reports a missing /dev/kvm before anything else starts. */
	kvm_fd = kvm_open();
	if (kvm_fd < 0)
		return kvm_fd;
	max = vm_max_cpus(kvm_fd);
	close(kvm_fd);
	if (max > RUN_MAX_APIC_CPUS)
		max = RUN_MAX_APIC_CPUS;
	if (o->cpus_text != NULL && (ret = uint_parse(o->cpus_text, 1, max, &cpus)) != 0) {
		log_error("--cpus '%s' is not a vCPU count this host allows: use 1 to %lu",
			  o->cpus_text, max);
		return -EINVAL;
	}
	o->machine.cpus = (unsigned)cpus;
	return 0;
}

/* Without --kernel: the default guest, with its initrd and command line unless given. */
static int run_pick_kernel(struct run_options *o)
{
	int ret;

	if (o->machine.kernel != NULL) {
		if (o->machine.cmdline == NULL)
			o->machine.cmdline = RUN_DEFAULT_CMDLINE;
		return 0;
	}
	if (o->machine.initrd != NULL) {
		log_error("--initrd needs --kernel (the default guest brings its own initrd)");
		return -EINVAL;
	}
	if ((ret = default_guest_prepare(&o->guest)) != 0)
		return ret;
	o->machine.kernel = o->guest.kernel;
	o->machine.initrd = o->guest.initrd;
	if (o->machine.cmdline == NULL)
		o->machine.cmdline = o->guest.cmdline;
	return 0;
}

static int run_exit_code(enum vm_action action)
{
	switch (action) {
	case VM_POWEROFF: return EXIT_GUEST_POWEROFF;
	case VM_REBOOT: return EXIT_GUEST_REBOOT;
	case VM_CRASH: return EXIT_GUEST_CRASH;
	case VM_QUIT: return EXIT_STOPPED;
	default: return EXIT_ERROR;
	}
}

/* One boot of the machine, from power-on to the reason it stopped. */
static int run_boot_once(struct run_options *o, struct console *con, enum vm_action *action)
{
	struct machine m;
	int ret;

	o->machine.console = (struct serial_output){console_write, con};
	ret = machine_create(&m, &o->machine);
	if (ret == 0 && (ret = console_attach(con, &m.vm, m.com1)) != 0)
		log_error("cannot start the console: %s", strerror(-ret));
	if (ret == 0) {
		*action = vm_run(&m.vm);
		console_detach(con);
		if (*action == VM_CRASH || *action == VM_FATAL || *action == VM_QUIT)
			log_error("%s", m.vm.stop_reason[0] ? m.vm.stop_reason : "the VM stopped");
	}
	machine_destroy(&m);
	return ret;
}

int cmd_run(int argc, char **argv)
{
	struct run_options o;
	struct console con;
	enum vm_action action = VM_FATAL;
	int ret;

	memset(&o, 0, sizeof(o));
	if ((ret = run_parse(argc, argv, &o)) != 0)
		return ret > 0 ? 0 : EXIT_USAGE;
	if (run_check_memory(&o) != 0)
		return EXIT_USAGE;
	if ((ret = run_check_cpus(&o)) != 0)
		return ret == -EINVAL ? EXIT_USAGE : EXIT_ERROR;
	if (run_pick_kernel(&o) != 0)
		return EXIT_ERROR;
	if ((ret = console_open(&con, STDIN_FILENO, STDOUT_FILENO)) != 0) {
		log_error("cannot set up the console: %s", strerror(-ret));
		console_close(&con);
		return EXIT_ERROR;
	}
	do {
		ret = run_boot_once(&o, &con, &action);
	} while (ret == 0 && action == VM_REBOOT && o.restart_on_reboot);
	console_close(&con);
	return ret != 0 ? EXIT_ERROR : run_exit_code(action);
}
