/*
 * tabique clone SRC DST [--linked|--full]: a new VM with SRC's resources and
 * a copy of its disks, new MACs. SRC must be stopped.
 *
 * --full copies every disk into DST's folder (flattening qcow2 backing
 * chains), with a progress bar. --linked makes qcow2 overlays instead, in
 * well under a second whatever the disk size: SRC's disk becomes a frozen
 * base that both VMs read, and each writes to an overlay of its own (as
 * VirtualBox does), so neither sees the other's writes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/vm_cli.h"
#include "disk/convert.h"
#include "manage/vm.h"
#include "util/log.h"

static const char clone_usage[] =
	"usage: tabique clone SRC DST [--linked|--full]\n"
	"\n"
	"Makes VM DST from stopped VM SRC: same CPUs, memory, guest and devices,\n"
	"new MAC addresses, and its own disks:\n"
	"  --full     copies of SRC's disks (the default), with a progress bar\n"
	"  --linked   qcow2 overlays over SRC's disks, made at once whatever their\n"
	"             size; SRC's disks become read-only bases under overlays of its\n"
	"             own, and SRC cannot be removed while DST exists\n"
	"Read-only disks are shared, not copied.\n";

static int clone_take(int opt, const char *arg, void *linked)
{
	(void)arg;
	*(bool *)linked = opt == 'l';
	return 0;
}

static int clone_parse(int argc, char **argv, const char **src, const char **dst, bool *linked)
{
	static const struct option longopts[] = {{"linked", no_argument, NULL, 'l'},
						 {"full", no_argument, NULL, 'f'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	char why[160];
	int ret;

	*linked = false;
	ret = vm_cli_parse(argc, argv, ":h", longopts, clone_usage, clone_take, linked, NULL);
	if (ret != 0)
		return ret;
	if (argc - optind != 2) {
		log_error("clone takes SRC and DST: see 'tabique clone --help'");
		return -EINVAL;
	}
	*src = argv[optind];
	*dst = argv[optind + 1];
	if (store_check_name(*dst, why, sizeof(why)) != 0) {
		log_error("%s", why);
		return -EINVAL;
	}
	return 0;
}

/* A new random MAC in place of the one the spec names (they all name one, see create). */
static void new_mac(char *spec)
{
	char *mac = strstr(spec, "mac="), tail[9];
	uint8_t bytes[3];

	if (mac == NULL || strlen(mac + 4) < 17 || getrandom(bytes, sizeof(bytes), 0) != 3)
		return;
	snprintf(tail, sizeof(tail), "%02x:%02x:%02x", bytes[0], bytes[1], bytes[2]);
	memcpy(mac + 4 + 9, tail, 8); /* keeps the first three bytes, 52:54:00 */
}

/* A name for a new file in dir: disk<i>[-<n>].<ext>. */
static void free_name(const char *dir, unsigned i, const char *ext, char *out)
{
	snprintf(out, PATH_MAX, "%s/disk%u.%s", dir, i, ext);
	for (unsigned n = 1; access(out, F_OK) == 0; n++)
		snprintf(out, PATH_MAX, "%s/disk%u-%u.%s", dir, i, n, ext);
}

static int link_disk(struct vm_def_disk *src, struct vm_def_disk *dst, const char *src_dir,
		     const char *dst_dir, unsigned i)
{
	char base[PATH_MAX], src_overlay[PATH_MAX], dst_overlay[PATH_MAX];
	char base_format[8];

	snprintf(base, sizeof(base), "%s", src->path);
	snprintf(base_format, sizeof(base_format), "%s", src->format);
	free_name(dst_dir, i, "qcow2", dst_overlay);
	free_name(src_dir, i, "qcow2", src_overlay);
	if (vm_cli_create_image(dst_overlay, 0, "qcow2", base, base_format) != 0)
		return -EIO;
	if (vm_cli_create_image(src_overlay, 0, "qcow2", base, base_format) != 0) {
		unlink(dst_overlay);
		return -EIO;
	}
	if (src->owned)
		chmod(base, 0400); /* a base that changed would corrupt both overlays */
	*dst = *src;
	snprintf(dst->path, sizeof(dst->path), "%s", dst_overlay);
	snprintf(dst->format, sizeof(dst->format), "qcow2");
	snprintf(dst->base, sizeof(dst->base), "%s", base);
	dst->owned = true;
	snprintf(src->path, sizeof(src->path), "%s", src_overlay);
	snprintf(src->format, sizeof(src->format), "qcow2");
	snprintf(src->base, sizeof(src->base), "%s", base);
	src->owned = true;
	return 0;
}

static int copy_disk(const struct vm_def_disk *src, struct vm_def_disk *dst, const char *dst_dir,
		     unsigned i)
{
	char path[PATH_MAX];
	enum disk_format format = strcmp(src->format, "qcow2") == 0 ? DISK_FORMAT_QCOW2
								    : DISK_FORMAT_RAW;

	free_name(dst_dir, i, format == DISK_FORMAT_QCOW2 ? "qcow2" : "img", path);
	if (disk_convert_images(src->path, format, path, format, isatty(STDERR_FILENO)) != 0)
		return -EIO;
	*dst = *src;
	snprintf(dst->path, sizeof(dst->path), "%s", path);
	dst->base[0] = '\0';
	dst->owned = true;
	return 0;
}

static int clone_disks(struct managed_vm *src, struct vm_def *dst, const char *dst_dir,
		       bool linked, bool *src_changed)
{
	*src_changed = false;
	for (unsigned i = 0; i < src->def.ndisks; i++) {
		struct vm_def_disk *d = &src->def.disks[i];
		int ret;

		if (d->readonly) {
			dst->disks[i] = *d;
			dst->disks[i].owned = false;
			continue;
		}
		ret = linked ? link_disk(d, &dst->disks[i], src->dir, dst_dir, i)
			     : copy_disk(d, &dst->disks[i], dst_dir, i);
		if (ret != 0)
			return ret;
		*src_changed |= linked;
	}
	dst->ndisks = src->def.ndisks;
	return 0;
}

static int clone_vm(struct managed_vm *src, const char *dst_name, bool linked)
{
	char dir[PATH_MAX];
	struct vm_def dst = src->def;
	bool src_changed;

	snprintf(dst.name, sizeof(dst.name), "%s", dst_name);
	dst.created = (int64_t)time(NULL);
	for (unsigned i = 0; i < dst.nnets; i++)
		new_mac(dst.nets[i]);
	if (vm_cli_make_vm_dir(src->home, dst_name, dir) != 0)
		return -EEXIST;
	if (clone_disks(src, &dst, dir, linked, &src_changed) != 0 ||
	    vm_def_save(dir, &dst) != 0) {
		vm_cli_remove_dir(dir);
		return -EIO;
	}
	/* SRC now writes to its own overlays: recorded last, once DST is complete. */
	if (src_changed && vm_def_save(src->dir, &src->def) != 0)
		return -EIO;
	return 0;
}

int cmd_clone(int argc, char **argv)
{
	struct managed_vm src;
	const char *src_name = NULL, *dst_name = NULL;
	bool linked;
	int ret = clone_parse(argc, argv, &src_name, &dst_name, &linked);

	if (ret != 0)
		return ret > 0 ? 0 : EXIT_USAGE;
	ret = EXIT_ERROR;
	if (managed_vm_open(src_name, true, &src) != 0)
		goto out;
	if (managed_vm_active(&src)) {
		log_error("'%s' is running: stop it before cloning it", src_name);
		goto out;
	}
	if (clone_vm(&src, dst_name, linked) == 0) {
		printf("cloned %s to %s (%s)\n", src_name, dst_name, linked ? "linked" : "full");
		ret = 0;
	}
out:
	managed_vm_close(&src);
	return ret;
}
