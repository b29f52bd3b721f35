#include "guest/default_guest.h"

#include "guest/initramfs.h"
#include "guest/spawn.h"
#include "util/log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Cache layout: <cache>/default-guest/{vmlinuz,initrd.img,stamp} is the guest,
 * swapped in whole once complete; <cache>/default-guest.prep.XXXXXX/ is a
 * preparation in progress (downloads, unpacked packages, the next guest);
 * <cache>/default-guest.lock serializes preparations. Other cache entries
 * belong to other parts of tabique. */
#define GUEST_DIR	 "default-guest"
#define GUEST_KERNEL	 "vmlinuz"
#define GUEST_INITRD	 "initrd.img"
#define GUEST_STAMP	 "stamp"
#define GUEST_LOCK	 "default-guest.lock"
#define GUEST_WORK	 "default-guest.prep."
#define GUEST_STAMP_HEAD "tabique-default-guest recipe"
#define GUEST_META_PKG	 "linux-image-amd64"
#define GUEST_BUSYBOX	 "busybox-static"
#define GUEST_STEPS	 5
#define GUEST_NAME_MAX	 128

/* console=ttyS0: the serial port is the console tabique connects to the
 * terminal. panic=-1: reboot at once after a panic instead of hanging forever;
 * tabique's pvpanic device has already reported the crash, so the VMM ends the
 * run with a crash status. quiet: boot messages cost a VM exit per byte on the
 * emulated UART, which makes a noisy boot slow; `dmesg` still has them. */
#define GUEST_CMDLINE "console=ttyS0 panic=-1 quiet"

enum guest_mode { GUEST_USE_CACHE, GUEST_CHECK_UPDATE, GUEST_FORCE };

struct guest_stamp {
	char kernel_pkg[GUEST_NAME_MAX];
	char kernel_ver[GUEST_NAME_MAX];
};

/* One preparation: paths inside the work directory and what it found. */
struct guest_prep {
	char cache[PATH_MAX];
	char work[PATH_MAX];
	char kernel_pkg[GUEST_NAME_MAX];
	char kernel_ver[GUEST_NAME_MAX];
	char busybox_ver[GUEST_NAME_MAX];
	char release[GUEST_NAME_MAX];
	size_t nmods;
};

/* snprintf into a PATH_MAX buffer, refusing to truncate. */
static int __attribute__((format(printf, 2, 3))) guest_path(char *buf, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX) {
		log_error(
		    "path too long in the cache directory; set TABIQUE_CACHE to a shorter one");
		return -ENAMETOOLONG;
	}
	return 0;
}

int default_guest_cache_dir(char *buf, size_t len)
{
	const char *env = getenv("TABIQUE_CACHE");
	const char *home;
	struct passwd *pw;
	int n;

	if (env && env[0])
		n = snprintf(buf, len, "%s", env);
	else if ((env = getenv("XDG_CACHE_HOME")) && env[0] == '/') /* relative: ignored, per XDG */
		n = snprintf(buf, len, "%s/tabique", env);
	else {
		home = getenv("HOME");
		if ((!home || !home[0]) && (pw = getpwuid(getuid())))
			home = pw->pw_dir;
		if (!home || !home[0])
			return -ENOENT;
		n = snprintf(buf, len, "%s/.cache/tabique", home);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* mkdir -p; the cache may be the first thing under ~/.cache. */
static int guest_mkdirs(const char *path)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int guest_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf of a directory tabique made: never follows symlinks or leaves the filesystem. */
static int guest_rm_tree(const char *path)
{
	if (nftw(path, guest_rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Serializes preparations, so that two `tabique run` never build over each other. */
static int guest_lock(const char *cache)
{
	char path[PATH_MAX];
	int fd;

	if (guest_path(path, "%s/%s", cache, GUEST_LOCK) < 0)
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 && (errno == EACCES || errno == EROFS))
		fd = open(path, O_RDONLY | O_CLOEXEC); /* a shared, read-only cache */
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	fprintf(stderr, "tabique: waiting for another tabique preparing the default guest ...\n");
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return -errno;
		}
	}
	return fd;
}

static int guest_file_ok(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	if (guest_path(path, "%s/%s", dir, name) < 0)
		return 0;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* A guest directory is valid when its stamp names the current recipe and its
 * files exist and are not empty. Apt is not asked: that costs a second. */
static int guest_valid(const char *dir, struct guest_stamp *st)
{
	char path[PATH_MAX], line[256];
	int ok = 0, recipe = -1;
	FILE *f;

	if (guest_path(path, "%s/%s", dir, GUEST_STAMP) < 0)
		return 0;
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(line, sizeof(line), f) && sscanf(line, GUEST_STAMP_HEAD " %d", &recipe) == 1 &&
	    recipe == INITRAMFS_RECIPE && fgets(line, sizeof(line), f) &&
	    sscanf(line, "kernel %127s %127s", st->kernel_pkg, st->kernel_ver) == 2)
		ok = 1;
	fclose(f);
	return ok && guest_file_ok(dir, GUEST_KERNEL) && guest_file_ok(dir, GUEST_INITRD);
}

static int guest_fill(const char *dir, struct default_guest *out)
{
	if (guest_path(out->kernel, "%s/%s", dir, GUEST_KERNEL) < 0 ||
	    guest_path(out->initrd, "%s/%s", dir, GUEST_INITRD) < 0)
		return -ENAMETOOLONG;
	snprintf(out->cmdline, sizeof(out->cmdline), "%s", GUEST_CMDLINE);
	return 0;
}

static void __attribute__((format(printf, 2, 3))) guest_step(int n, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fprintf(stderr, "tabique: preparing the default guest [%d/%d] %s ...\n", n, GUEST_STEPS,
		what);
}

/* The line of a helper's output worth quoting: apt's "E: ..." or the last one. */
static const char *guest_reason(char *msg)
{
	char *line, *save = NULL, *best = NULL;

	for (line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!line[0] || (best && strncmp(best, "E: ", 3) == 0))
			continue;
		best = line;
	}
	if (!best)
		return "no message";
	if (strlen(best) > 200)
		strcpy(best + 197, "...");
	return best;
}

/* Package names and versions go into argv and paths: allow only Debian's characters. */
static int guest_name_ok(const char *s)
{
	if (!s[0] || s[0] == '-' || s[0] == '.')
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(".+-~:", *s))
			return 0;
	return 1;
}

static int guest_apt_missing(const char *tool)
{
	log_error("%s not found: the default guest is made from Debian's packages; on other "
		  "systems pass --kernel to 'tabique run'",
		  tool);
	return -ENOENT;
}

/* linux-image-amd64 is a metapackage: its dependency names today's kernel. */
static int guest_resolve(struct guest_prep *p)
{
	const char *argv[] = {"apt-cache", "depends", GUEST_META_PKG, NULL};
	static const char key[] = "Depends: linux-image-";
	char out[8192], *line, *save = NULL;
	const char *why;
	int rc;

	guest_step(1, "resolving the kernel of %s", GUEST_META_PKG);
	rc = spawn_run(argv, NULL, out, sizeof(out));
	if (rc == -ENOENT)
		return guest_apt_missing("apt-cache");
	line = rc == 0 ? strtok_r(out, "\n", &save) : NULL; /* else keep out intact for errors */
	for (; line; line = strtok_r(NULL, "\n", &save)) {
		line += strspn(line, " |");
		if (strncmp(line, key, sizeof(key) - 1) != 0)
			continue;
		line += strlen("Depends: ");
		line[strcspn(line, " \t")] = '\0';
		if (strlen(line) < sizeof(p->kernel_pkg) && guest_name_ok(line)) {
			strcpy(p->kernel_pkg, line);
			return 0;
		}
	}
	why = rc < 0 ? strerror(-rc) : rc > 0 ? guest_reason(out) : "no linux-image dependency";
	log_error("apt-cache does not know which kernel %s depends on (%s): run apt-get update "
		  "(Debian's package lists are needed)",
		  GUEST_META_PKG, why);
	return -ENOENT;
}

/* apt-get download works without root and installs nothing. */
static int guest_download(struct guest_prep *p, const char *dl)
{
	const char *argv[] = {"apt-get", "download", "-q", p->kernel_pkg, GUEST_BUSYBOX, NULL};
	char out[8192];
	int rc;

	if (mkdir(dl, 0755) < 0) {
		rc = -errno;
		log_error("cannot create %s: %s", dl, strerror(errno));
		return rc;
	}
	guest_step(2, "downloading %s and %s", p->kernel_pkg, GUEST_BUSYBOX);
	rc = spawn_run(argv, dl, out, sizeof(out));
	if (rc == -ENOENT)
		return guest_apt_missing("apt-get");
	if (rc == 0)
		return 0;
	log_error("cannot download %s and %s (%s): run apt-get update (Debian's package lists are "
		  "needed) and check the network",
		  p->kernel_pkg, GUEST_BUSYBOX, rc < 0 ? strerror(-rc) : guest_reason(out));
	return rc < 0 ? rc : -EIO;
}

/* Finds the one <pkg>_<version>_<arch>.deb apt-get left in dir. */
static int guest_find_deb(const char *dir, const char *pkg, char *path)
{
	size_t len = strlen(pkg), n;
	struct dirent *de;
	int found = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		n = strlen(de->d_name);
		if (strncmp(de->d_name, pkg, len) == 0 && de->d_name[len] == '_' && n > 4 &&
		    strcmp(de->d_name + n - 4, ".deb") == 0 && !found++ &&
		    guest_path(path, "%s/%s", dir, de->d_name) < 0)
			found = 2; /* too long: as bad as ambiguous */
	}
	closedir(d);
	if (found == 1)
		return 0;
	log_error("apt-get download left %s %s package file in %s; run 'tabique prepare-guest "
		  "--force'",
		  found ? "more than one" : "no", pkg, dir);
	return -ENOENT;
}

static int guest_dpkg_failed(int rc, const char *what, char *out)
{
	if (rc == -ENOENT) {
		log_error("dpkg-deb not found: install dpkg to prepare the default guest");
		return rc;
	}
	log_error("dpkg-deb cannot %s (%s); check the free space in the cache directory or run "
		  "'tabique prepare-guest --force'",
		  what, rc < 0 ? strerror(-rc) : guest_reason(out));
	return rc < 0 ? rc : -EIO;
}

static int guest_deb_version(const char *deb, char *ver, size_t len)
{
	const char *argv[] = {"dpkg-deb", "--field", deb, "Version", NULL};
	char out[1024];
	int rc;

	rc = spawn_run(argv, NULL, out, sizeof(out));
	if (rc != 0)
		return guest_dpkg_failed(rc, "read a package's version", out);
	out[strcspn(out, "\n")] = '\0';
	if (!guest_name_ok(out) || strlen(out) >= len) {
		log_error("%s has an odd version '%s'; run 'tabique prepare-guest --force'", deb,
			  out);
		return -EINVAL;
	}
	strcpy(ver, out);
	return 0;
}

/* dpkg-deb -x unpacks without running any maintainer script. */
static int guest_unpack(int step, const char *dl, const char *pkg, const char *root, char *ver)
{
	char deb[PATH_MAX], out[4096];
	const char *argv[] = {"dpkg-deb", "-x", deb, root, NULL};
	int rc;

	guest_step(step, "unpacking %s", pkg);
	rc = guest_find_deb(dl, pkg, deb);
	if (!rc)
		rc = guest_deb_version(deb, ver, GUEST_NAME_MAX);
	if (rc)
		return rc;
	rc = spawn_run(argv, NULL, out, sizeof(out));
	if (rc != 0)
		return guest_dpkg_failed(rc, "unpack the package", out);
	unlink(deb); /* the space is better used by the unpacked tree */
	return 0;
}

/* The release is in the kernel's file name: boot/vmlinuz-<release>. */
static int guest_find_release(const char *kroot, char *release)
{
	char boot[PATH_MAX];
	struct dirent *de;
	int found = 0;
	DIR *d;

	if (guest_path(boot, "%s/boot", kroot) < 0)
		return -ENAMETOOLONG;
	d = opendir(boot);
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "vmlinuz-", 8) != 0 ||
		    strlen(de->d_name + 8) >= GUEST_NAME_MAX)
			continue;
		if (!found++)
			strcpy(release, de->d_name + 8);
	}
	if (d)
		closedir(d);
	if (found == 1 && guest_name_ok(release))
		return 0;
	log_error("the kernel package does not hold exactly one boot/vmlinuz-*; it is not a "
		  "kernel image package");
	return -ENOENT;
}

/* Debian 12 has /lib/modules; merged-/usr releases will have /usr/lib/modules. */
static int guest_find_moddir(const char *kroot, const char *release, char *moddir)
{
	static const char *const bases[] = {"lib", "usr/lib"};
	struct stat st;

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (guest_path(moddir, "%s/%s/modules/%s", kroot, bases[i], release) < 0)
			return -ENAMETOOLONG;
		if (stat(moddir, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
	}
	log_error("the kernel package has no lib/modules/%s; it is not a kernel image package",
		  release);
	return -ENOENT;
}

static int guest_find_busybox(const char *broot, char *path)
{
	static const char *const cands[] = {"bin/busybox", "usr/bin/busybox"};
	struct stat st;

	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		if (guest_path(path, "%s/%s", broot, cands[i]) < 0)
			return -ENAMETOOLONG;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
			return 0;
	}
	log_error("the %s package has no bin/busybox; run 'tabique prepare-guest --force'",
		  GUEST_BUSYBOX);
	return -ENOENT;
}

static int guest_fsync_path(const char *path, int flags)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | flags);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

static int guest_write_stamp(const struct guest_prep *p, const char *dir)
{
	char path[PATH_MAX];
	FILE *f;
	int err = 0;

	if (guest_path(path, "%s/%s", dir, GUEST_STAMP) < 0)
		return -ENAMETOOLONG;
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "%s %d\nkernel %s %s\nbusybox %s %s\nrelease %s\nmodules %zu\n",
		GUEST_STAMP_HEAD, INITRAMFS_RECIPE, p->kernel_pkg, p->kernel_ver, GUEST_BUSYBOX,
		p->busybox_ver, p->release, p->nmods);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		err = -errno;
	if (fclose(f) != 0 && !err)
		err = -errno;
	return err;
}

/* Moves the unpacked kernel into dir. */
static int guest_take_kernel(const struct guest_prep *p, const char *kroot, const char *dir)
{
	char from[PATH_MAX], to[PATH_MAX];

	if (guest_path(from, "%s/boot/vmlinuz-%s", kroot, p->release) < 0 ||
	    guest_path(to, "%s/%s", dir, GUEST_KERNEL) < 0)
		return -ENAMETOOLONG;
	if (rename(from, to) < 0 || guest_fsync_path(to, 0) < 0)
		return -errno;
	return 0;
}

/* Fills dir with the kernel, the initramfs and, last, the stamp, all synced. */
static int guest_assemble(struct guest_prep *p, const char *kroot, const char *broot,
			  const char *dir)
{
	char moddir[PATH_MAX], busybox[PATH_MAX], initrd[PATH_MAX];
	struct initramfs_src src = {.moddir = moddir, .release = p->release, .busybox = busybox};
	int err;

	guest_step(5, "building the initramfs");
	if ((err = guest_find_release(kroot, p->release)) ||
	    (err = guest_find_busybox(broot, busybox)) ||
	    (err = guest_find_moddir(kroot, p->release, moddir)) ||
	    (err = guest_path(initrd, "%s/%s", dir, GUEST_INITRD)))
		return err;
	err = mkdir(dir, 0755) < 0 ? -errno : guest_take_kernel(p, kroot, dir);
	if (!err)
		err = initramfs_build(&src, initrd, &p->nmods);
	else
		log_error("cannot write the kernel into %s: %s; check the free space there", dir,
			  strerror(-err));
	if (err)
		return err;
	err = guest_write_stamp(p, dir);
	if (!err)
		err = guest_fsync_path(dir, O_DIRECTORY);
	if (err)
		log_error("cannot write the stamp in %s: %s; check the free space there", dir,
			  strerror(-err));
	return err;
}

/* Work directories left by interrupted preparations; the caller holds the lock,
 * so none of them is in use. */
static void guest_clean_stale(const char *cache)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(cache);

	while (d && (de = readdir(d))) {
		/* A helper orphaned by a killed tabique may still write there: retried next time.
		 */
		if (strncmp(de->d_name, GUEST_WORK, strlen(GUEST_WORK)) == 0 &&
		    guest_path(path, "%s/%s", cache, de->d_name) == 0 && guest_rm_tree(path) < 0)
			log_debug("cannot remove %s yet: %s", path, strerror(errno));
	}
	if (d)
		closedir(d);
}

/* Puts the new guest directory in place in one step: a reader sees the old
 * guest or the new one, never a mix. The old one ends up in the work directory. */
static int guest_install(const char *cache, const char *newdir, const char *work)
{
	char final[PATH_MAX], old[PATH_MAX];

	if (guest_path(final, "%s/%s", cache, GUEST_DIR) < 0 || guest_path(old, "%s/old", work) < 0)
		return -ENAMETOOLONG;
	if (renameat2(AT_FDCWD, newdir, AT_FDCWD, final, RENAME_EXCHANGE) == 0)
		return guest_fsync_path(cache, O_DIRECTORY);
	if (errno == ENOENT) {
		if (rename(newdir, final) == 0)
			return guest_fsync_path(cache, O_DIRECTORY);
	} else if (errno == EINVAL || errno == ENOSYS) {
		/* No exchange on this filesystem: briefly no guest, which only looks invalid. */
		if (rename(final, old) == 0 && rename(newdir, final) == 0)
			return guest_fsync_path(cache, O_DIRECTORY);
	}
	log_error("cannot move the new default guest to %s: %s", final, strerror(errno));
	return -errno;
}

static int guest_build(struct guest_prep *p)
{
	char dl[PATH_MAX], kroot[PATH_MAX], broot[PATH_MAX], dir[PATH_MAX];
	int err;

	guest_clean_stale(p->cache);
	if ((err = guest_path(p->work, "%s/%sXXXXXX", p->cache, GUEST_WORK)))
		return err;
	if (!mkdtemp(p->work)) {
		err = -errno;
		log_error("cannot create a directory in %s: %s; set TABIQUE_CACHE to a writable "
			  "directory",
			  p->cache, strerror(errno));
		return err;
	}
	if (!(err = guest_path(dl, "%s/download", p->work)) &&
	    !(err = guest_path(kroot, "%s/kernel", p->work)) &&
	    !(err = guest_path(broot, "%s/busybox", p->work)) &&
	    !(err = guest_path(dir, "%s/%s", p->work, GUEST_DIR)))
		err = guest_download(p, dl);
	if (!err)
		err = guest_unpack(3, dl, p->kernel_pkg, kroot, p->kernel_ver);
	if (!err)
		err = guest_unpack(4, dl, GUEST_BUSYBOX, broot, p->busybox_ver);
	if (!err)
		err = guest_assemble(p, kroot, broot, dir);
	if (!err)
		err = guest_install(p->cache, dir, p->work);
	if (guest_rm_tree(p->work) < 0)
		log_warn("cannot remove %s: %s; delete it by hand", p->work, strerror(errno));
	return err;
}

/* Decides whether to prepare, under the lock, then fills out. */
static int guest_ensure_locked(struct guest_prep *p, enum guest_mode mode,
			       struct default_guest *out)
{
	char dir[PATH_MAX];
	struct guest_stamp st;
	struct timespec t0, t1;
	int valid, err;

	if ((err = guest_path(dir, "%s/%s", p->cache, GUEST_DIR)))
		return err;
	valid = guest_valid(dir, &st);
	if (valid && mode == GUEST_USE_CACHE)
		return guest_fill(dir, out);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((err = guest_resolve(p)))
		return err;
	if (valid && mode == GUEST_CHECK_UPDATE && strcmp(st.kernel_pkg, p->kernel_pkg) == 0) {
		fprintf(stderr, "tabique: the default guest is up to date (%s %s)\n", st.kernel_pkg,
			st.kernel_ver);
		return guest_fill(dir, out);
	}
	if ((err = guest_build(p)))
		return err;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "tabique: default guest prepared in %.0f s (%s %s, %zu modules)\n",
		(double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, p->kernel_pkg,
		p->kernel_ver, p->nmods);
	return guest_fill(dir, out);
}

static int guest_ensure(enum guest_mode mode, struct default_guest *out)
{
	struct guest_prep *p;
	int err, lock;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	err = default_guest_cache_dir(p->cache, sizeof(p->cache));
	if (err) {
		log_error("cannot find a cache directory (%s): set TABIQUE_CACHE", strerror(-err));
		goto out;
	}
	err = guest_mkdirs(p->cache);
	lock = err ? err : guest_lock(p->cache);
	if (lock < 0) {
		err = lock;
		log_error("cannot use the cache directory %s: %s; set TABIQUE_CACHE to a writable "
			  "directory",
			  p->cache, strerror(-err));
		goto out;
	}
	err = guest_ensure_locked(p, mode, out);
	close(lock); /* releases the flock */
out:
	free(p);
	return err;
}

int default_guest_prepare(struct default_guest *out)
{
	return guest_ensure(GUEST_USE_CACHE, out);
}

static void guest_usage(FILE *f)
{
	fprintf(f, "usage: tabique prepare-guest [--force]\n\n"
		   "Builds the default guest (Debian's kernel and a busybox initramfs) into the\n"
		   "cache, or again when Debian's kernel package changed, and prints its paths.\n"
		   "  --force  build it again in any case\n");
}

int default_guest_main(int argc, char **argv)
{
	enum guest_mode mode = GUEST_CHECK_UPDATE;
	struct default_guest g;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0) {
			mode = GUEST_FORCE;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			guest_usage(stdout);
			return 0;
		} else {
			log_error(
			    "prepare-guest: unknown argument '%s': see 'tabique prepare-guest "
			    "--help'",
			    argv[i]);
			return 2;
		}
	}
	if (guest_ensure(mode, &g) < 0)
		return 1;
	printf("kernel  %s\ninitrd  %s\ncmdline %s\n", g.kernel, g.initrd, g.cmdline);
	return 0;
}
