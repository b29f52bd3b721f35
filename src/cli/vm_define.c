/*
 * tabique create NAME [options] and tabique set NAME [options]: define a VM
 * in the store, or change a stopped one. The options are run's, kept in
 * vm.json; the VM's own disks (--new-disk) live in its folder.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/vm_cli.h"
#include "disk/qcow2.h"
#include "manage/vm.h"
#include "util/log.h"
#include "util/size.h"

/* What the command line asks to change; the rest of the definition stays. */
struct define_options {
	const char *cpus, *memory, *kernel, *initrd, *cmdline, *on_reboot, *vsock;
	const char *disks[DISK_MAX];
	unsigned ndisks;
	bool disks_given;
	const char *new_disks[DISK_MAX];
	unsigned nnew_disks;
	const char *nets[NET_MAX_NICS];
	unsigned nnets;
	bool nets_given;
};

static void define_usage(FILE *out, const char *cmd)
{
	fprintf(out,
		"usage: tabique %s NAME [--cpus N] [--memory SIZE] [--disk SPEC]... [--new-disk SIZE]...\n"
		"                  [--net SPEC]... [--vsock CID] [--kernel PATH [--initrd PATH]]\n"
		"                  [--cmdline STRING] [--on-reboot restart|exit]\n"
		"\n"
		"%s\n"
		"\n"
		"  --cpus N           virtual CPUs (default 1)\n"
		"  --memory SIZE      guest RAM, e.g. 512M, 2G (default 512M)\n"
		"  --disk PATH[,readonly][,serial=ID][,format=raw|qcow2]\n"
		"                     an existing image (the VM keeps its absolute path);\n"
		"                     `--disk none` removes every disk (set)\n"
		"  --new-disk SIZE[,format=qcow2|raw]\n"
		"                     a new empty image in the VM's folder (qcow2 by default),\n"
		"                     removed with the VM\n"
		"  --net SPEC         as `tabique run --net` (user[,hostfwd=...] or\n"
		"                     tap,ifname=NAME); a MAC is chosen once and kept;\n"
		"                     `--net none` removes every card (set)\n"
		"  --vsock CID        a vsock device with guest CID (3 or more); its host\n"
		"                     side is vsock.sock in the VM's folder; 0 removes it\n"
		"  --kernel/--initrd/--cmdline\n"
		"                     the guest to boot (default: the default guest);\n"
		"                     `--kernel default` goes back to it (set)\n"
		"  --on-reboot MODE   restart (default) or exit: what a guest reboot does\n"
		"\n"
		"--disk and --net replace the VM's whole list when given.\n",
		cmd,
		strcmp(cmd, "create") == 0
			? "Defines a new VM in the store; start it with `tabique start NAME`."
			: "Changes a stopped VM's definition.");
}

static int define_add(const char **list, unsigned *n, unsigned max, const char *value,
		      const char *what)
{
	if (*n == max) {
		log_error("too many %s options (at most %u)", what, max);
		return -EINVAL;
	}
	list[(*n)++] = value;
	return 0;
}

static int define_parse(int argc, char **argv, struct define_options *o, const char **name)
{
	static const struct option longopts[] = {
		{"cpus", required_argument, NULL, 'n'},	   {"memory", required_argument, NULL, 'm'},
		{"disk", required_argument, NULL, 'd'},	   {"new-disk", required_argument, NULL, 'D'},
		{"net", required_argument, NULL, 'N'},	   {"vsock", required_argument, NULL, 'V'},
		{"kernel", required_argument, NULL, 'k'},  {"initrd", required_argument, NULL, 'i'},
		{"cmdline", required_argument, NULL, 'c'}, {"on-reboot", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},	   {NULL, 0, NULL, 0},
	};
	int opt, ret = 0;

	opterr = 0;
	while (ret == 0 && (opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': o->cpus = optarg; break;
		case 'm': o->memory = optarg; break;
		case 'k': o->kernel = optarg; break;
		case 'i': o->initrd = optarg; break;
		case 'c': o->cmdline = optarg; break;
		case 'r': o->on_reboot = optarg; break;
		case 'V': o->vsock = optarg; break;
		case 'd':
			o->disks_given = true;
			if (strcmp(optarg, "none") != 0)
				ret = define_add(o->disks, &o->ndisks, DISK_MAX, optarg, "--disk");
			break;
		case 'D':
			ret = define_add(o->new_disks, &o->nnew_disks, DISK_MAX, optarg, "--new-disk");
			break;
		case 'N':
			o->nets_given = true;
			if (strcmp(optarg, "none") != 0)
				ret = define_add(o->nets, &o->nnets, NET_MAX_NICS, optarg, "--net");
			break;
		case 'h': return 1;
		default: return vm_cli_bad_option(argv, opt, argv[0]);
		}
	}
	if (ret != 0)
		return ret;
	return vm_cli_take_name(argc, argv, name, argv[0]);
}

/* --- applying the options ----------------------------------------------------- */

static int apply_resources(const struct define_options *o, struct vm_def *def)
{
	unsigned long cpus;

	if (o->cpus && uint_parse(o->cpus, 1, VM_CPUS_MAX, &cpus) != 0) {
		log_error("--cpus '%s': give a whole number from 1 to %d", o->cpus, VM_CPUS_MAX);
		return -EINVAL;
	}
	if (o->cpus)
		def->cpus = (unsigned)cpus;
	if (o->memory && (size_parse(o->memory, &def->memory) != 0 || def->memory < VM_MEMORY_MIN ||
			  def->memory > VM_MEMORY_MAX || def->memory % 4096)) {
		log_error("--memory '%s': give a size such as 512M or 2G (16M to 1T)", o->memory);
		return -EINVAL;
	}
	if (o->on_reboot && strcmp(o->on_reboot, "restart") != 0 &&
	    strcmp(o->on_reboot, "exit") != 0) {
		log_error("--on-reboot takes 'restart' or 'exit', not '%s'", o->on_reboot);
		return -EINVAL;
	}
	if (o->on_reboot)
		def->restart_on_reboot = strcmp(o->on_reboot, "restart") == 0;
	return 0;
}

static int apply_path(const char *value, const char *option, char *out)
{
	char *real;

	if (strcmp(value, "default") == 0) {
		out[0] = '\0';
		return 0;
	}
	real = realpath(value, NULL);
	if (real == NULL) {
		log_error("%s %s: %s", option, value, strerror(errno));
		return -errno;
	}
	snprintf(out, PATH_MAX, "%s", real);
	free(real);
	return 0;
}

static int apply_guest(const struct define_options *o, struct vm_def *def)
{
	if (o->kernel && apply_path(o->kernel, "--kernel", def->kernel) != 0)
		return -EINVAL;
	if (o->initrd && apply_path(o->initrd, "--initrd", def->initrd) != 0)
		return -EINVAL;
	if (o->kernel && !def->kernel[0])
		def->initrd[0] = def->cmdline[0] = '\0';
	if (o->cmdline && strlen(o->cmdline) >= sizeof(def->cmdline)) {
		log_error("--cmdline is too long (at most %zu bytes)", sizeof(def->cmdline) - 1);
		return -EINVAL;
	}
	if (o->cmdline)
		snprintf(def->cmdline, sizeof(def->cmdline), "%s", o->cmdline);
	return 0;
}

/* Probed once, at definition time; recorded from then on (see disk.h). */
static int probe_format(const char *path, enum disk_format *format)
{
	uint8_t head[4] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		log_error("--disk %s: %s", path, strerror(errno));
		return -errno;
	}
	*format = read(fd, head, sizeof(head)) == (ssize_t)sizeof(head) &&
				  qcow2_probe(head, sizeof(head))
			  ? DISK_FORMAT_QCOW2
			  : DISK_FORMAT_RAW;
	close(fd);
	return 0;
}

static int apply_disk(const char *text, struct vm_def_disk *d)
{
	struct disk_spec spec;
	char why[160];
	int ret;

	if (disk_parse_spec(text, &spec, why, sizeof(why)) != 0) {
		log_error("--disk '%s': %s", text, why);
		return -EINVAL;
	}
	memset(d, 0, sizeof(*d));
	ret = apply_path(spec.path, "--disk", d->path);
	if (ret == 0 && spec.format == DISK_FORMAT_AUTO)
		ret = probe_format(d->path, &spec.format);
	if (ret == 0) {
		snprintf(d->format, sizeof(d->format), "%s", disk_format_name(spec.format));
		snprintf(d->serial, sizeof(d->serial), "%s", spec.serial);
		d->readonly = spec.readonly;
	}
	disk_spec_free(&spec);
	return ret;
}

/* A random locally administered MAC in QEMU's 52:54:00 range, kept in the definition. */
static int apply_net(const char *text, unsigned index, char *out)
{
	struct net_spec spec;
	uint8_t mac[6] = {0x52, 0x54, 0x00};
	char err[200], macs[18];

	if (net_parse_spec(text, index, &spec, err, sizeof(err)) != 0) {
		log_error("--net '%s': %s", text, err);
		return -EINVAL;
	}
	if (strstr(text, "mac=") != NULL) {
		snprintf(out, VM_NET_SPEC_MAX, "%s", text);
		return 0;
	}
	if (getrandom(mac + 3, 3, 0) != 3)
		return -EIO;
	net_format_mac(mac, macs);
	if (snprintf(out, VM_NET_SPEC_MAX, "%s,mac=%s", text, macs) >= VM_NET_SPEC_MAX) {
		log_error("--net '%s' is too long", text);
		return -EINVAL;
	}
	return 0;
}

static int apply_devices(const struct define_options *o, struct vm_def *def)
{
	unsigned long cid;

	if (o->disks_given) {
		for (unsigned i = 0; i < def->ndisks; i++)
			if (def->disks[i].owned)
				log_warn("%s stays in the VM's folder, unused", def->disks[i].path);
		def->ndisks = 0;
		for (unsigned i = 0; i < o->ndisks; i++, def->ndisks++)
			if (apply_disk(o->disks[i], &def->disks[i]) != 0)
				return -EINVAL;
	}
	if (o->nets_given) {
		def->nnets = 0;
		for (unsigned i = 0; i < o->nnets; i++, def->nnets++)
			if (apply_net(o->nets[i], i, def->nets[i]) != 0)
				return -EINVAL;
	}
	if (o->vsock && (uint_parse(o->vsock, 0, VM_CID_MAX, &cid) != 0 || cid == 1 || cid == 2)) {
		log_error("--vsock '%s': give a guest CID of 3 or more (0 removes the device)",
			  o->vsock);
		return -EINVAL;
	}
	if (o->vsock)
		def->vsock_cid = (uint32_t)cid;
	return 0;
}

/* --new-disk SIZE[,format=F]: an image in the VM's folder, diskN.qcow2 or diskN.img. */
static int create_new_disk(const char *text, const char *dir, struct vm_def *def)
{
	char size_text[64], path[PATH_MAX];
	const char *comma = strchr(text, ',');
	const char *format = "qcow2";
	uint64_t size;
	int ret;

	snprintf(size_text, sizeof(size_text), "%.*s", comma ? (int)(comma - text) : 63, text);
	if (comma && strcmp(comma, ",format=raw") == 0)
		format = "raw";
	else if (comma && strcmp(comma, ",format=qcow2") != 0) {
		log_error("--new-disk '%s': after the size only format=raw|qcow2", text);
		return -EINVAL;
	}
	if (size_parse(size_text, &size) != 0 || size == 0 || size % DISK_SECTOR) {
		log_error("--new-disk '%s': give a size such as 10G", text);
		return -EINVAL;
	}
	if (def->ndisks == DISK_MAX) {
		log_error("a VM has at most %d disks", DISK_MAX);
		return -EINVAL;
	}
	for (unsigned n = 0;; n++) {
		snprintf(path, sizeof(path), "%s/disk%u.%s", dir, n, strcmp(format, "raw") ? format : "img");
		if (access(path, F_OK) != 0)
			break;
	}
	ret = vm_cli_create_image(path, size, format, NULL, NULL);
	if (ret != 0)
		return ret;
	struct vm_def_disk *d = &def->disks[def->ndisks++];
	memset(d, 0, sizeof(*d));
	snprintf(d->path, sizeof(d->path), "%s", path);
	snprintf(d->format, sizeof(d->format), "%s", format);
	d->owned = true;
	return 0;
}

static int apply_options(const struct define_options *o, struct vm_def *def)
{
	char why[300];

	if (apply_resources(o, def) != 0 || apply_guest(o, def) != 0 || apply_devices(o, def) != 0)
		return -EINVAL;
	if (vm_def_check(def, why, sizeof(why)) != 0) {
		log_error("%s", why);
		return -EINVAL;
	}
	return 0;
}

static int create_new_disks(const struct define_options *o, const char *dir, struct vm_def *def)
{
	for (unsigned i = 0; i < o->nnew_disks; i++)
		if (create_new_disk(o->new_disks[i], dir, def) != 0)
			return -EINVAL;
	return 0;
}

/* --- the commands ------------------------------------------------------------ */

int cmd_create(int argc, char **argv)
{
	struct define_options o = {0};
	struct vm_def def;
	char home[PATH_MAX], dir[PATH_MAX];
	const char *name;
	int ret = define_parse(argc, argv, &o, &name);

	if (ret != 0) {
		if (ret > 0)
			define_usage(stdout, "create");
		return ret > 0 ? 0 : EXIT_USAGE;
	}
	vm_def_init(&def, name);
	if (apply_options(&o, &def) != 0)
		return EXIT_USAGE;
	if (managed_home(home, sizeof(home)) != 0 || vm_cli_make_vm_dir(home, name, dir) != 0)
		return EXIT_ERROR;
	if (create_new_disks(&o, dir, &def) != 0 || vm_def_save(dir, &def) != 0) {
		vm_cli_remove_dir(dir);
		return EXIT_ERROR;
	}
	printf("created %s: %u vCPU, %llu MiB, %u disk%s, %u network card%s\n", name, def.cpus,
	       (unsigned long long)(def.memory >> 20), def.ndisks, def.ndisks == 1 ? "" : "s",
	       def.nnets, def.nnets == 1 ? "" : "s");
	return 0;
}

int cmd_set(int argc, char **argv)
{
	struct define_options o = {0};
	struct managed_vm vm;
	const char *name;
	int ret = define_parse(argc, argv, &o, &name), status = EXIT_ERROR;

	if (ret != 0) {
		if (ret > 0)
			define_usage(stdout, "set");
		return ret > 0 ? 0 : EXIT_USAGE;
	}
	if (managed_vm_open(name, true, &vm) != 0)
		goto out;
	if (managed_vm_active(&vm)) {
		log_error("'%s' is %s: stop it before changing it", name, vm_state_name(vm.rt.state));
		goto out;
	}
	if (apply_options(&o, &vm.def) != 0) {
		status = EXIT_USAGE;
		goto out;
	}
	if (create_new_disks(&o, vm.dir, &vm.def) == 0 && vm_def_save(vm.dir, &vm.def) == 0)
		status = 0;
out:
	managed_vm_close(&vm);
	return status;
}
