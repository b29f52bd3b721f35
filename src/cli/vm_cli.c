#include "cli/vm_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "manage/store.h"
#include "util/log.h"

int vm_cli_bad_option(char **argv, int opt, const char *cmd)
{
	if (opt == ':')
		log_error("option %s needs a value: see 'tabique %s --help'", argv[optind - 1], cmd);
	else
		log_error("unknown option '%s': see 'tabique %s --help'", argv[optind - 1], cmd);
	return -EINVAL;
}

int vm_cli_take_name(int argc, char **argv, const char **name, const char *cmd)
{
	char why[160];

	if (optind >= argc) {
		log_error("which VM? see 'tabique %s --help'", cmd);
		return -EINVAL;
	}
	if (optind + 1 < argc) {
		log_error("unexpected argument '%s': see 'tabique %s --help'", argv[optind + 1], cmd);
		return -EINVAL;
	}
	*name = argv[optind];
	if (store_check_name(*name, why, sizeof(why)) != 0) {
		log_error("%s", why);
		return -EINVAL;
	}
	return 0;
}

int vm_cli_parse(int argc, char **argv, const char *shortopts, const struct option *longopts,
		 const char *usage, int (*take)(int opt, const char *arg, void *ctx), void *ctx,
		 const char **name)
{
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			return 1;
		}
		if (opt == ':' || opt == '?' || take == NULL)
			return vm_cli_bad_option(argv, opt, argv[0]);
		if (take(opt, optarg, ctx) != 0)
			return -EINVAL;
	}
	return name ? vm_cli_take_name(argc, argv, name, argv[0]) : 0;
}

int vm_cli_parse_name_only(int argc, char **argv, const char **name, const char *usage)
{
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

	return vm_cli_parse(argc, argv, ":h", longopts, usage, NULL, NULL, name);
}

static int make_dir(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

int vm_cli_make_vm_dir(const char *home, const char *name, char *dir)
{
	char vms[PATH_MAX];
	int ret;

	if (store_vm_dir(home, name, dir, PATH_MAX) != 0 ||
	    snprintf(vms, sizeof(vms), "%s/vms", home) >= (int)sizeof(vms)) {
		log_error("the state directory path is too long");
		return -ENAMETOOLONG;
	}
	if ((ret = make_dir(home)) != 0 || (ret = make_dir(vms)) != 0) {
		log_error("cannot make the state directory %s: %s", vms, strerror(-ret));
		return ret;
	}
	/* mkdir is the atomic step: of two `create NAME` at once, one wins. */
	if (mkdir(dir, 0700) != 0) {
		ret = -errno;
		if (ret == -EEXIST)
			log_error("a VM named '%s' already exists", name);
		else
			log_error("cannot make %s: %s", dir, strerror(-ret));
		return ret;
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -errno;
}

#define REMOVE_DIR_TRIES 40 /* 50 ms apart */

int vm_cli_remove_dir(const char *dir)
{
	int ret = 0;

	/*
	 * A monitor's or another tabique command's last word (state.json after a
	 * VMM's end) may land in the folder while it is being emptied: go again.
	 */
	for (int i = 0; i < REMOVE_DIR_TRIES; i++) {
		ret = nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		if (ret == 0 || errno != ENOTEMPTY)
			break;
		usleep(50000);
	}
	return ret;
}

static int create_raw(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) != 0 || fsync(fd) != 0)
		ret = -errno;
	close(fd);
	if (ret != 0)
		unlink(path);
	return ret;
}

int vm_cli_create_image(const char *path, uint64_t size, const char *format,
			const char *backing, const char *backing_format)
{
	int ret;

	if (strcmp(format, "raw") == 0)
		ret = create_raw(path, size);
	else
		ret = qcow2_create(path, size, backing, backing_format, 0);
	if (ret != 0)
		log_error("cannot create %s: %s", path, strerror(-ret));
	return ret;
}

bool vm_cli_disks_use_folder(const struct vm_def *def, const char *dir)
{
	size_t len = strlen(dir);

	for (unsigned i = 0; i < def->ndisks; i++)
		if (strncmp(def->disks[i].base, dir, len) == 0 && def->disks[i].base[len] == '/')
			return true;
	return false;
}
