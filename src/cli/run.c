/* tabique run: boot one VM in the foreground, its serial console on this terminal. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "api/control.h"
#include "api/server.h"
#include "cli/commands.h"
#include "console/console.h"
#include "disk/disk.h"
#include "guest/default_guest.h"
#include "net/backend.h"
#include "net/spec.h"
#include "util/log.h"
#include "util/size.h"
#include "virtio/blk.h"
#include "virtio/vsock.h"
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
	struct disk_spec disk_specs[DISK_MAX];
	unsigned ndisks;
	struct net_spec net_specs[NET_MAX_NICS];
	unsigned nnets;
	struct vsock_config vsock_cfg;
	bool vsock_given;
	const char *console_socket; /* detached: the console on a socket, and a log */
	const char *console_log;
	const char *api_socket_path; /* --api-socket: the control API */
	const char *name;
	char default_name[32];
	struct api_socket api_sock;
	struct api_control api_ctl;
	struct api_server *api;
};

static void run_usage(FILE *out)
{
	fprintf(out,
		"usage: tabique run [--kernel PATH [--initrd PATH]] [--cmdline STRING]\n"
		"                   [--cpus N] [--memory SIZE] [--on-reboot exit|restart]\n"
		"                   [--disk PATH[,readonly][,serial=ID][,format=F]]...\n"
		"                   [--net SPEC]... [--vsock cid=N,socket=PATH]\n"
		"                   [--api-socket PATH] [--name NAME]\n"
		"\n"
		"Boots a VM with its serial console on this terminal; Ctrl-A x quits,\n"
		"Ctrl-A r shows where each vCPU is.\n"
		"Without --kernel, boots the default guest (prepared on first use).\n"
		"\n"
		"  --kernel PATH      a Linux bzImage (64-bit boot protocol)\n"
		"  --initrd PATH      an initramfs\n"
		"  --cmdline STRING   kernel command line (default: \"" RUN_DEFAULT_CMDLINE "\")\n"
		"  --cpus N           virtual CPUs (default 1)\n"
		"  --memory SIZE      guest RAM, e.g. 512M, 2G (default 512M)\n"
		"  --on-reboot MODE   exit (default) or restart when the guest reboots\n"
		"  --disk PATH[,readonly][,serial=ID][,format=raw|qcow2]\n"
		"                     a disk image: raw (a whole number of 512-byte sectors)\n"
		"                     or qcow2 (format probed when not given);\n"
		"                     repeat for more (up to 16): the guest sees /dev/vda,\n"
		"                     /dev/vdb ... in this order. readonly: the guest cannot\n"
		"                     write it; serial: its ID (up to 20 characters). A comma\n"
		"                     in PATH is written twice.\n"
		"  --net user[,hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...\n"
		"                     a network card behind user-mode NAT: the guest gets\n"
		"                     10.0.2.15 by DHCP, reaches the host's 127.0.0.1 as\n"
		"                     10.0.2.2; hostfwd forwards a host port (on 127.0.0.1\n"
		"                     unless HOSTADDR says otherwise, e.g. 0.0.0.0) into it\n"
		"  --net tap,ifname=NAME\n"
		"                     a network card on host tap device NAME\n"
		"                     Both take mac=52:54:00:XX:XX:XX (default: derived from\n"
		"                     the option, stable); repeat --net for more cards (up to 8)\n"
		"  --vsock cid=N,socket=PATH\n"
		"                     a virtio socket device, guest CID N (3 or more): host\n"
		"                     programs connect to the Unix socket PATH and write\n"
		"                     \"CONNECT <port>\\n\" to reach a guest port (answer:\n"
		"                     \"OK <hostport>\\n\"); guest connections to host port P\n"
		"                     go to the Unix socket PATH_P. One per VM\n"
		"  --console-socket PATH --console-log FILE\n"
		"                     no terminal: the serial console is served on the Unix\n"
		"                     socket PATH (one client at a time, `tabique console`\n"
		"                     attaches to it) and appended to FILE (rotated to\n"
		"                     FILE.1 past 2 MiB); the manager starts VMs this way\n"
		"  --api-socket PATH  serve the control API (REST/JSON, docs/api.md) on the\n"
		"                     Unix socket PATH (mode 0600, removed at exit): state,\n"
		"                     counters, pause/resume, shutdown (ACPI power button),\n"
		"                     poweroff (exit status 5), reboot\n"
		"  --name NAME        the VM's name in the API: letters, digits, '.', '_', '-'\n"
		"                     (up to 63, the first a letter or digit; default vm-PID)\n"
		"\n"
		"exit status: 0 guest powered off, 1 error, 2 usage, 3 guest rebooted,\n"
		"             4 guest crashed (panic, triple fault), 5 stopped from the host\n"
		"             (Ctrl-A x, SIGINT/SIGTERM/SIGHUP, the API's poweroff)\n");
}

static int run_add_disk(struct run_options *o, const char *text)
{
	char why[128];

	if (o->ndisks == DISK_MAX) {
		log_error("too many --disk options: a VM has at most %d disks", DISK_MAX);
		return -EINVAL;
	}
	if (disk_parse_spec(text, &o->disk_specs[o->ndisks], why, sizeof(why)) != 0) {
		log_error("--disk '%s': %s", text, why);
		return -EINVAL;
	}
	o->ndisks++;
	return 0;
}

static void run_close_disks(struct run_options *o)
{
	for (unsigned i = 0; i < o->ndisks; i++) {
		disk_close(o->machine.disks[i].disk);
		o->machine.disks[i].disk = NULL;
		disk_spec_free(&o->disk_specs[i]);
	}
	o->machine.ndisks = 0;
}

/* Opened and locked once for the whole run: a guest reboot keeps them. */
static int run_open_disks(struct run_options *o)
{
	for (unsigned i = 0; i < o->ndisks; i++) {
		const struct disk_spec *spec = &o->disk_specs[i];
		int ret = disk_open(&o->machine.disks[i].disk, spec->path, spec->format,
				    spec->readonly, BLK_QUEUE_SIZE);

		if (ret != 0)
			return ret;
		o->machine.disks[i].serial = spec->serial;
		o->machine.ndisks = i + 1;
	}
	return 0;
}

static int run_add_net(struct run_options *o, const char *text)
{
	char why[160];

	if (o->nnets == NET_MAX_NICS) {
		log_error("too many --net options: a VM has at most %d network cards", NET_MAX_NICS);
		return -EINVAL;
	}
	if (net_parse_spec(text, o->nnets, &o->net_specs[o->nnets], why, sizeof(why)) != 0) {
		log_error("--net '%s': %s", text, why);
		return -EINVAL;
	}
	o->nnets++;
	return 0;
}

static void run_close_nets(struct run_options *o)
{
	for (unsigned i = 0; i < o->machine.nnics; i++) {
		net_backend_close(o->machine.nics[i].backend);
		o->machine.nics[i].backend = NULL;
	}
	o->machine.nnics = 0;
}

/* Opened once for the whole run, like disks: a reboot keeps forwarded ports and taps. */
static int run_open_nets(struct run_options *o)
{
	for (unsigned i = 0; i < o->nnets; i++) {
		struct machine_nic *nic = &o->machine.nics[i];
		int ret = net_backend_open(&o->net_specs[i], &nic->backend);

		if (ret != 0)
			return ret;
		memcpy(nic->mac, o->net_specs[i].mac, sizeof(nic->mac));
		o->machine.nnics = i + 1;
	}
	return 0;
}

static int run_set_vsock(struct run_options *o, const char *text)
{
	if (o->vsock_given) {
		log_error("--vsock is given twice: a VM has one socket device");
		return -EINVAL;
	}
	o->vsock_given = true;
	return vsock_parse_spec(text, &o->vsock_cfg);
}

/* Listening from before the first boot to exit: a reboot keeps the socket path. */
static int run_open_vsock(struct run_options *o)
{
	if (!o->vsock_given)
		return 0;
	return vsock_create(&o->machine.vsock, &o->vsock_cfg);
}

/* Removes the socket file too. */
static void run_close_vsock(struct run_options *o)
{
	vsock_destroy(o->machine.vsock);
	o->machine.vsock = NULL;
}

static int run_parse(int argc, char **argv, struct run_options *o)
{
	static const struct option longopts[] = {
		{"kernel", required_argument, NULL, 'k'}, {"initrd", required_argument, NULL, 'i'},
		{"cmdline", required_argument, NULL, 'c'}, {"cpus", required_argument, NULL, 'n'},
		{"memory", required_argument, NULL, 'm'}, {"on-reboot", required_argument, NULL, 'r'},
		{"disk", required_argument, NULL, 'd'},    {"help", no_argument, NULL, 'h'},
		{"net", required_argument, NULL, 'N'},     {"vsock", required_argument, NULL, 'V'},
		{"console-socket", required_argument, NULL, 'S'},
		{"console-log", required_argument, NULL, 'L'},
		{"api-socket", required_argument, NULL, 'A'},
		{"name", required_argument, NULL, 'a'},
		{NULL, 0, NULL, 0},
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
		case 'd':
			if (run_add_disk(o, optarg) != 0)
				return -EINVAL;
			break;
		case 'N':
			if (run_add_net(o, optarg) != 0)
				return -EINVAL;
			break;
		case 'V':
			if (run_set_vsock(o, optarg) != 0)
				return -EINVAL;
			break;
		case 'S': o->console_socket = optarg; break;
		case 'L': o->console_log = optarg; break;
		case 'A': o->api_socket_path = optarg; break;
		case 'a':
			if (!api_name_valid(optarg)) {
				log_error("--name is not a VM name: use 1 to %d letters, digits, "
					  "'.', '_' or '-', starting with a letter or digit",
					  API_NAME_MAX);
				return -EINVAL;
			}
			o->name = optarg;
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
	if ((o->console_socket == NULL) != (o->console_log == NULL)) {
		log_error("--console-socket and --console-log go together");
		return -EINVAL;
	}
	return 0;
}

/* The terminal, or with --console-socket a socket and a log. */
static int run_open_console(struct run_options *o, struct console *con)
{
	int ret, fd;

	if (o->console_socket == NULL) {
		ret = console_open(con, STDIN_FILENO, STDOUT_FILENO);
		if (ret != 0)
			log_error("cannot set up the console: %s", strerror(-ret));
		return ret;
	}
	fd = console_listen(o->console_socket, "console socket");
	if (fd < 0) {
		console_open(con, -1, -1); /* so that console_close() is safe */
		return fd;
	}
	return console_open_detached(con, fd, o->console_log);
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
		api_control_attach(&o->api_ctl, &m);
		*action = vm_run(&m.vm);
		api_control_detach(&o->api_ctl);
		console_detach(con);
		if (*action == VM_CRASH || *action == VM_FATAL || *action == VM_QUIT)
			log_error("%s", m.vm.stop_reason[0] ? m.vm.stop_reason : "the VM stopped");
	}
	machine_destroy(&m);
	return ret;
}

/*
 * After the console: the server thread must inherit the signal mask it set
 * (SIGINT and the others go to the console's signalfd, never to this thread).
 */
static int run_start_api(struct run_options *o)
{
	if (o->api_socket_path == NULL)
		return 0;
	if (o->name == NULL) {
		snprintf(o->default_name, sizeof(o->default_name), "vm-%ld", (long)getpid());
		o->name = o->default_name;
	}
	o->api_ctl.vsock = o->vsock_given ? &o->vsock_cfg : NULL;
	o->api_ctl.name = o->name;
	return api_server_start(&o->api, &o->api_sock, &api_control_ops, &o->api_ctl, 0);
}

/* Closes every connection and removes the socket, on every way out after the start. */
static void run_stop_api(struct run_options *o)
{
	if (o->api == NULL)
		return;
	api_server_stop(o->api);
	o->api = NULL;
}

/* Everything before the console. Returns 0 or the exit status. */
static int run_prepare(struct run_options *o)
{
	int ret;

	if (run_check_memory(o) != 0)
		return EXIT_USAGE;
	/* A second VMM for the same VM stops here, before it touches disks. */
	if (o->api_socket_path != NULL &&
	    api_listen(&o->api_sock, o->api_socket_path, "--api-socket") != 0)
		return EXIT_ERROR;
	/* Disks before KVM: an image the user cannot open is the first thing to say. */
	if (run_open_disks(o) != 0 || run_open_nets(o) != 0 || run_open_vsock(o) != 0)
		return EXIT_ERROR;
	if ((ret = run_check_cpus(o)) != 0)
		return ret == -EINVAL ? EXIT_USAGE : EXIT_ERROR;
	if (run_pick_kernel(o) != 0)
		return EXIT_ERROR;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct run_options o;
	struct console con;
	enum vm_action action = VM_FATAL;
	int ret, status;

	memset(&o, 0, sizeof(o));
	o.api_sock.fd = -1;
	/* Always there, so that boots attach to it; it serves only with --api-socket. */
	api_control_init(&o.api_ctl, &o.machine, NULL, NULL);
	if ((ret = run_parse(argc, argv, &o)) != 0) {
		run_close_disks(&o);
		run_close_nets(&o);
		api_control_destroy(&o.api_ctl);
		return ret > 0 ? 0 : EXIT_USAGE;
	}
	if ((status = run_prepare(&o)) != 0)
		goto out;
	if ((ret = run_open_console(&o, &con)) != 0) {
		console_close(&con);
		status = EXIT_ERROR;
		goto out;
	}
	if ((ret = run_start_api(&o)) == 0) {
		do {
			ret = run_boot_once(&o, &con, &action);
		} while (ret == 0 && action == VM_REBOOT &&
			 (o.restart_on_reboot || api_control_take_reboot(&o.api_ctl)));
	}
	run_stop_api(&o);
	console_close(&con);
	if (o.console_socket != NULL)
		unlink(o.console_socket);
	status = ret != 0 ? EXIT_ERROR : run_exit_code(action);
out:
	api_unlisten(&o.api_sock); /* when the server never took it over */
	api_control_destroy(&o.api_ctl);
	run_close_disks(&o);
	run_close_nets(&o);
	run_close_vsock(&o);
	return status;
}
