/* The default guest's building blocks: the newc cpio writer (checked with GNU
 * cpio), the .modinfo parser and the module ordering. */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/cpio.h"
#include "guest/default_guest.h"
#include "guest/kmods.h"
#include "guest/modinfo.h"
#include "guest/spawn.h"

static char tdir[64];

static void tmp_setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/tabique-test-cpio.XXXXXX");
	cr_assert_not_null(mkdtemp(tdir));
}

static void tmp_teardown(void)
{
	const char *argv[] = {"rm", "-rf", tdir, NULL};

	spawn_run(argv, NULL, NULL, 0);
}

static void tpath(char *buf, const char *name)
{
	cr_assert_lt(snprintf(buf, PATH_MAX, "%s/%s", tdir, name), PATH_MAX);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "cannot create %s", path);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* ---- cpio ---- */

/* Contents of sizes 0..5 and one odd large size exercise every padding case. */
static void fill(uint8_t *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 8));
}

static const size_t sizes[] = {0, 1, 2, 3, 4, 5, 70001};

static void build_sample(const char *archive, const char *hostfile)
{
	static uint8_t data[70001];
	struct cpio *c = cpio_create(archive);
	char name[64];

	cr_assert_not_null(c);
	cr_assert_eq(cpio_add_dir(c, "/etc", 0755), 0);
	cr_assert_eq(cpio_add_dir(c, "tmp", 01777), 0);
	cr_assert_eq(cpio_add_dir(c, "dev", 0755), 0);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fill(data, sizes[i], (unsigned int)i);
		snprintf(name, sizeof(name), "etc/f%zu", sizes[i]);
		cr_assert_eq(cpio_add_file(c, name, i == 1 ? 0600 : 0644, data, sizes[i]), 0);
	}
	cr_assert_eq(cpio_add_symlink(c, "etc/link", "f3"), 0);
	cr_assert_eq(cpio_add_symlink(c, "etc/abslink", "/bin/busybox"), 0);
	cr_assert_eq(cpio_add_node(c, "/dev/console", S_IFCHR, 0600, 5, 1), 0);
	cr_assert_eq(cpio_add_node(c, "dev/vda", S_IFBLK, 0660, 254, 0), 0);
	cr_assert_eq(cpio_add_file_from(c, "init", 0755, hostfile), 0);
	cr_assert_eq(cpio_close(c), 0);
}

static void make_hostfile(char *path)
{
	static uint8_t data[12345];

	tpath(path, "host.bin");
	fill(data, sizeof(data), 99);
	write_file(path, data, sizeof(data));
}

Test(cpio, listing_by_gnu_cpio, .init = tmp_setup, .fini = tmp_teardown)
{
	char archive[PATH_MAX], host[PATH_MAX], out[16384];
	const char *argv[] = {"cpio", "-itv", "--quiet", "-F", archive, NULL};
	static const char *const want[] = {
	    "drwxr-xr-x   2 root     root            0 Jan  1  1970 etc\n",
	    "drwxrwxrwt   2 root     root            0 Jan  1  1970 tmp\n",
	    "-rw-------   1 root     root            1 Jan  1  1970 etc/f1\n",
	    "-rw-r--r--   1 root     root        70001 Jan  1  1970 etc/f70001\n",
	    "lrwxrwxrwx   1 root     root            2 Jan  1  1970 etc/link -> f3\n",
	    "lrwxrwxrwx   1 root     root           12 Jan  1  1970 etc/abslink -> /bin/busybox\n",
	    "crw-------   1 root     root       5,   1 Jan  1  1970 dev/console\n",
	    "brw-rw----   1 root     root     254,   0 Jan  1  1970 dev/vda\n",
	    "-rwxr-xr-x   1 root     root        12345 Jan  1  1970 init\n",
	};

	tpath(archive, "a.cpio");
	make_hostfile(host);
	build_sample(archive, host);
	cr_assert_eq(spawn_run(argv, NULL, out, sizeof(out)), 0, "cpio -t failed: %s", out);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_expect_not_null(strstr(out, want[i]), "missing '%s' in:\n%s", want[i], out);
	cr_expect_null(strstr(out, "TRAILER"), "the trailer is listed as a file");
}

Test(cpio, extraction_is_byte_exact, .init = tmp_setup, .fini = tmp_teardown)
{
	char archive[PATH_MAX], host[PATH_MAX], dir[PATH_MAX], p[PATH_MAX], out[4096], link[64];
	/* -f: everything but the device nodes, which need root to create. */
	const char *argv[] = {"cpio", "-id",   "--quiet", "--no-absolute-filenames", "-F", archive,
			      "-f",   "dev/*", NULL};
	static uint8_t want[70001];
	uint8_t *got;
	size_t len;
	struct stat st;

	tpath(archive, "a.cpio");
	tpath(dir, "x");
	make_hostfile(host);
	build_sample(archive, host);
	cr_assert_eq(mkdir(dir, 0755), 0);
	cr_assert_eq(spawn_run(argv, dir, out, sizeof(out)), 0, "cpio -i failed: %s", out);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(link, sizeof(link), "x/etc/f%zu", sizes[i]);
		tpath(p, link);
		got = read_file(p, &len);
		fill(want, sizes[i], (unsigned int)i);
		cr_expect_eq(len, sizes[i], "%s: %zu bytes", p, len);
		cr_expect(memcmp(got, want, sizes[i]) == 0, "%s differs", p);
		free(got);
	}
	tpath(p, "x/etc/link");
	cr_assert_eq(readlink(p, link, sizeof(link)), 2);
	cr_expect(memcmp(link, "f3", 2) == 0);
	tpath(p, "x/init");
	cr_assert_eq(stat(p, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0755);
	got = read_file(p, &len);
	fill(want, 12345, 99);
	cr_expect(len == 12345 && memcmp(got, want, len) == 0, "init differs from its host file");
	free(got);
}

static uint32_t hex8(const uint8_t *p)
{
	char s[9];

	memcpy(s, p, 8);
	s[8] = '\0';
	return (uint32_t)strtoul(s, NULL, 16);
}

/* Walks the raw archive the way the kernel does and checks the newc rules. */
Test(cpio, layout_alignment_and_trailer, .init = tmp_setup, .fini = tmp_teardown)
{
	char archive[PATH_MAX], host[PATH_MAX];
	size_t len, off = 0, entries = 0;
	uint8_t *a;
	int trailer = 0;

	tpath(archive, "a.cpio");
	make_hostfile(host);
	build_sample(archive, host);
	a = read_file(archive, &len);
	cr_assert_eq(len % 4, 0, "archive length %zu is not a multiple of 4", len);
	while (off < len && !trailer) {
		cr_assert_eq(off % 4, 0, "entry at %zu is not 4-byte aligned", off);
		cr_assert(off + 110 <= len);
		cr_assert(memcmp(a + off, "070701", 6) == 0, "bad magic at %zu", off);
		uint32_t ino = hex8(a + off + 6), nlink = hex8(a + off + 38);
		uint32_t size = hex8(a + off + 54), namesize = hex8(a + off + 94);
		const char *name = (const char *)a + off + 110;

		cr_assert(namesize >= 2 && off + 110 + namesize <= len);
		cr_assert_eq(name[namesize - 1], '\0', "name not NUL-terminated at %zu", off);
		cr_assert_neq(name[0], '/', "absolute name %s", name);
		trailer = strcmp(name, "TRAILER!!!") == 0;
		if (trailer)
			cr_expect(ino == 0 && nlink == 1 && size == 0, "odd trailer");
		size_t hend = off + 110 + namesize, hpad = (hend + 3) & ~(size_t)3;
		size_t dend = hpad + size, dpad = (dend + 3) & ~(size_t)3;

		cr_assert(dpad <= len, "entry %s runs past the end", name);
		for (size_t i = hend; i < hpad; i++)
			cr_assert_eq(a[i], 0, "non-zero padding after the name at %zu", i);
		for (size_t i = dend; i < dpad; i++)
			cr_assert_eq(a[i], 0, "non-zero padding after the data at %zu", i);
		off = dpad;
		entries++;
	}
	cr_expect(trailer, "no trailer");
	cr_expect_eq(off, len, "%zu bytes after the trailer", len - off);
	cr_expect_eq(entries, 3 + 7 + 2 + 2 + 1 + 1);
	free(a);
}

Test(cpio, errors_are_sticky, .init = tmp_setup, .fini = tmp_teardown)
{
	char archive[PATH_MAX], dirpath[PATH_MAX];
	struct cpio *c;

	tpath(archive, "a.cpio");
	c = cpio_create(archive);
	cr_assert_not_null(c);
	cr_expect_eq(cpio_add_dir(c, "/", 0755), -EINVAL, "an empty name was accepted");
	cr_expect_eq(cpio_add_dir(c, "ok", 0755), -EINVAL, "the error was forgotten");
	cr_expect_eq(cpio_close(c), -EINVAL);

	c = cpio_create(archive);
	cr_expect_eq(cpio_add_node(c, "dev/x", S_IFREG, 0600, 1, 1), -EINVAL);
	cr_expect_eq(cpio_close(c), -EINVAL);

	c = cpio_create(archive);
	tpath(dirpath, "missing");
	cr_expect_eq(cpio_add_file_from(c, "x", 0644, dirpath), -ENOENT);
	cr_expect_eq(cpio_close(c), -ENOENT);

	c = cpio_create(archive);
	cr_expect_eq(cpio_add_file_from(c, "x", 0644, tdir), -EINVAL, "a directory was copied");
	cr_expect_eq(cpio_close(c), -EINVAL);

	c = cpio_create(archive);
	cr_expect_eq(cpio_add_symlink(c, "x", ""), -EINVAL);
	cr_expect_eq(cpio_close(c), -EINVAL);

	tpath(dirpath, "no/such/dir/a.cpio");
	cr_expect_null(cpio_create(dirpath));
}

/* ---- .modinfo ---- */

/* A minimal relocatable ELF64 with sections: null, .shstrtab, secname (holding info). */
static size_t make_elf(uint8_t *buf, size_t cap, const char *secname, const void *info, size_t ilen)
{
	Elf64_Ehdr eh = {0};
	Elf64_Shdr sh[3] = {{0}};
	char strtab[64];
	size_t slen, off;

	slen = (size_t)snprintf(strtab, sizeof(strtab), "%c.shstrtab%c%s", 0, 0, secname) + 1;
	memset(buf, 0, cap);
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_REL;
	eh.e_machine = EM_X86_64;
	eh.e_ehsize = sizeof(eh);
	eh.e_shentsize = sizeof(Elf64_Shdr);
	eh.e_shnum = 3;
	eh.e_shstrndx = 1;
	off = sizeof(eh);
	memcpy(buf + off, strtab, slen);
	sh[1] =
	    (Elf64_Shdr){.sh_name = 1, .sh_type = SHT_STRTAB, .sh_offset = off, .sh_size = slen};
	off += slen;
	memcpy(buf + off, info, ilen);
	sh[2] =
	    (Elf64_Shdr){.sh_name = 11, .sh_type = SHT_PROGBITS, .sh_offset = off, .sh_size = ilen};
	off = (off + ilen + 7) & ~(size_t)7;
	eh.e_shoff = off;
	memcpy(buf + off, sh, sizeof(sh));
	memcpy(buf, &eh, sizeof(eh));
	cr_assert(off + sizeof(sh) <= cap);
	return off + sizeof(sh);
}

static const char sample_info[] = "license=GPL\0\0\0\0alias=fs-x\0depends=virtio,virtio_ring\0"
				  "retpoline=Y\0name=x\0";

Test(modinfo, synthetic_depends)
{
	uint8_t buf[1024];
	char out[64];
	size_t len;

	len = make_elf(buf, sizeof(buf), ".modinfo", sample_info, sizeof(sample_info));
	cr_assert_eq(modinfo_depends(buf, len, out, sizeof(out)), 0);
	cr_expect_str_eq(out, "virtio,virtio_ring");
	cr_expect_eq(modinfo_depends(buf, len, out, 18), -ENAMETOOLONG);
	cr_expect_eq(modinfo_depends(buf, len, out, 19), 0);

	len = make_elf(buf, sizeof(buf), ".modinfo", "depends=\0name=y", 16);
	cr_assert_eq(modinfo_depends(buf, len, out, sizeof(out)), 0);
	cr_expect_str_eq(out, "", "a module without dependencies");

	/* The last entry may lack its NUL: the value stops at the section's end. */
	len = make_elf(buf, sizeof(buf), ".modinfo", "name=z\0depends=a,b", 18);
	cr_assert_eq(modinfo_depends(buf, len, out, sizeof(out)), 0);
	cr_expect_str_eq(out, "a,b");

	len = make_elf(buf, sizeof(buf), ".modinfo", "name=z\0dependsX=a", 17);
	cr_expect_eq(modinfo_depends(buf, len, out, sizeof(out)), -ENOENT);
	len = make_elf(buf, sizeof(buf), ".modinfX", sample_info, sizeof(sample_info));
	cr_expect_eq(modinfo_depends(buf, len, out, sizeof(out)), -ENOENT, "wrong section used");
}

Test(modinfo, truncated_files_fail_cleanly)
{
	uint8_t buf[1024], *copy;
	char out[64];
	size_t len;

	len = make_elf(buf, sizeof(buf), ".modinfo", sample_info, sizeof(sample_info));
	/* Exact-size heap copies, so that a read past the end would be a real overrun. */
	for (size_t n = 0; n < len; n++) {
		copy = malloc(n ? n : 1);
		memcpy(copy, buf, n);
		cr_expect_eq(modinfo_depends(copy, n, out, sizeof(out)), -ENOEXEC,
			     "truncated to %zu bytes", n);
		free(copy);
	}
}

static void corrupt_check(const char *what, uint8_t *buf, size_t len)
{
	char out[64];
	int rc = modinfo_depends(buf, len, out, sizeof(out));

	cr_expect(rc == -ENOEXEC || rc == -ENOENT, "%s: returned %d", what, rc);
}

Test(modinfo, corrupt_headers_fail_cleanly)
{
	uint8_t buf[1024], good[1024];
	Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
	Elf64_Shdr *sh;
	size_t len;

	len = make_elf(good, sizeof(good), ".modinfo", sample_info, sizeof(sample_info));
#define CORRUPT(what, stmt)                                                                        \
	do {                                                                                       \
		memcpy(buf, good, sizeof(buf));                                                    \
		sh = (Elf64_Shdr *)(buf + eh->e_shoff);                                            \
		stmt;                                                                              \
		corrupt_check(what, buf, len);                                                     \
	} while (0)
	CORRUPT("bad magic", buf[1] = 'X');
	CORRUPT("32-bit class", eh->e_ident[EI_CLASS] = ELFCLASS32);
	CORRUPT("big endian", eh->e_ident[EI_DATA] = ELFDATA2MSB);
	CORRUPT("shoff past the end", eh->e_shoff = len);
	CORRUPT("shoff huge", eh->e_shoff = UINT64_MAX - 8);
	CORRUPT("shnum huge", eh->e_shnum = 0xffff);
	CORRUPT("shnum zero", eh->e_shnum = 0);
	CORRUPT("shentsize", eh->e_shentsize = 32);
	CORRUPT("shstrndx", eh->e_shstrndx = 3);
	CORRUPT("strtab offset", sh[1].sh_offset = UINT64_MAX);
	CORRUPT("strtab size", sh[1].sh_size = UINT64_MAX);
	CORRUPT("strtab nobits", sh[1].sh_type = SHT_NOBITS);
	CORRUPT("name offset", sh[2].sh_name = 0xffffffff);
	CORRUPT("name at strtab end", sh[2].sh_name = (Elf64_Word)sh[1].sh_size - 1);
	CORRUPT("modinfo offset", sh[2].sh_offset = len);
	CORRUPT("modinfo size", sh[2].sh_size = UINT64_MAX - 10);
	CORRUPT("modinfo wraps", (sh[2].sh_offset = 100, sh[2].sh_size = UINT64_MAX - 50));
	CORRUPT("modinfo nobits", sh[2].sh_type = SHT_NOBITS);
#undef CORRUPT
	/* Noise must not crash either. */
	for (unsigned int seed = 1; seed < 200; seed++) {
		srand(seed);
		memcpy(buf, good, sizeof(buf));
		for (int i = 0; i < 8; i++)
			buf[(size_t)rand() % len] = (uint8_t)rand();
		char out[64];
		int rc = modinfo_depends(buf, len, out, sizeof(out));
		cr_expect(rc == 0 || rc == -ENOEXEC || rc == -ENOENT || rc == -ENAMETOOLONG);
	}
}

/* A module from the kernel package: an installed one, TABIQUE_TEST_MODULE, or
 * one carried by the default guest in the cache. */
static int find_real_module(char *path)
{
	const char *env = getenv("TABIQUE_TEST_MODULE");
	char cache[PATH_MAX], gz[PATH_MAX], out[1024];
	glob_t g;
	int found;

	if (env && env[0]) {
		snprintf(path, PATH_MAX, "%s", env);
		return 1;
	}
	found = glob("/lib/modules/*-amd64/kernel/fs/ext4/ext4.ko", 0, NULL, &g) == 0;
	if (found)
		snprintf(path, PATH_MAX, "%s", g.gl_pathv[0]);
	globfree(&g);
	if (found || default_guest_cache_dir(cache, sizeof(cache)) < 0)
		return found;
	if (snprintf(gz, sizeof(gz), "%s/default-guest/initrd.img", cache) >= PATH_MAX ||
	    access(gz, R_OK) < 0)
		return 0;
	const char *cp[] = {"cp", gz, "initrd.gz", NULL},
		   *gzip[] = {"gzip", "-d", "initrd.gz", NULL};
	const char *cpio[] = {"cpio", "-id", "--quiet", "-F", "initrd", "*/ext4.ko", NULL};
	const char *find[] = {"find", ".", "-name", "ext4.ko", NULL};
	if (spawn_run(cp, tdir, NULL, 0) || spawn_run(gzip, tdir, NULL, 0) ||
	    spawn_run(cpio, tdir, NULL, 0) || spawn_run(find, tdir, out, sizeof(out)) || !out[0])
		return 0;
	out[strcspn(out, "\n")] = '\0';
	snprintf(path, PATH_MAX, "%s/%s", tdir, out + 2);
	return 1;
}

Test(modinfo, real_module, .init = tmp_setup, .fini = tmp_teardown)
{
	char path[PATH_MAX], out[512];
	Elf64_Ehdr eh;
	uint64_t end;
	uint8_t *buf;
	size_t len;

	if (!find_real_module(path)) {
		cr_log_warn("modinfo::real_module skipped: no ext4.ko found");
		cr_skip_test(
		    "no ext4.ko found (no installed Debian kernel, no TABIQUE_TEST_MODULE, "
		    "no prepared default guest): the real-module check did not run");
	}
	cr_log_info("checking %s", path);
	cr_assert_eq(modinfo_depends_file(path, out, sizeof(out)), 0, "%s", path);
	cr_expect(strstr(out, "jbd2") && strstr(out, "mbcache"), "ext4 depends on '%s'", out);
	buf = read_file(path, &len);
	cr_assert_gt(len, sizeof(Elf64_Ehdr));
	memcpy(&eh, buf, sizeof(eh));
	end = eh.e_shoff + (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr);
	cr_assert_leq(end, len);
	/* The section headers come last (before the signature): any cut into them fails. */
	for (size_t n = (size_t)end - 1; n > 0; n /= 3)
		cr_expect_eq(modinfo_depends(buf, n, out, sizeof(out)), -ENOEXEC, "cut at %zu", n);
	free(buf);
}

Test(modinfo, file_errors, .init = tmp_setup, .fini = tmp_teardown)
{
	char path[PATH_MAX], out[64];

	tpath(path, "missing.ko");
	cr_expect_eq(modinfo_depends_file(path, out, sizeof(out)), -ENOENT);
	cr_expect_eq(modinfo_depends_file(tdir, out, sizeof(out)), -EINVAL);
	tpath(path, "garbage.ko");
	write_file(path,
		   "\x7f"
		   "ELF garbage",
		   11);
	cr_expect_eq(modinfo_depends_file(path, out, sizeof(out)), -ENOEXEC);
	tpath(path, "empty.ko");
	write_file(path, "", 0);
	cr_expect_eq(modinfo_depends_file(path, out, sizeof(out)), -ENOEXEC);
}

/* ---- module selection and order ---- */

static const struct {
	const char *path, *depends;
} fake_mods[] = {
    {"kernel/drivers/virtio/virtio_ring.ko", ""},
    {"kernel/drivers/virtio/virtio.ko", "virtio_ring"},
    {"kernel/drivers/virtio/virtio-pci.ko", "virtio,virtio_ring,crc_builtin"},
    {"kernel/fs/foo.ko", "bar_baz"},
    {"kernel/fs/bar-baz.ko", ""},
    {"kernel/fs/loop_a.ko", "loop_b"},
    {"kernel/fs/loop_b.ko", "loop_a"},
    {"kernel/fs/broken.ko", "nosuch"},
};

static void fake_moddir_setup(void)
{
	char path[PATH_MAX], info[128];
	uint8_t elf[1024];
	FILE *order;
	size_t len;

	tmp_setup();
	tpath(path, "kernel");
	mkdir(path, 0755);
	tpath(path, "kernel/drivers");
	mkdir(path, 0755);
	tpath(path, "kernel/drivers/virtio");
	mkdir(path, 0755);
	tpath(path, "kernel/fs");
	mkdir(path, 0755);
	tpath(path, "modules.order");
	order = fopen(path, "w");
	cr_assert_not_null(order);
	for (size_t i = 0; i < sizeof(fake_mods) / sizeof(fake_mods[0]); i++) {
		len = (size_t)snprintf(info, sizeof(info), "name=x%cdepends=%s", 0,
				       fake_mods[i].depends);
		len = make_elf(elf, sizeof(elf), ".modinfo", info, len + 1);
		tpath(path, fake_mods[i].path);
		write_file(path, elf, len);
		fprintf(order, "%s\n", fake_mods[i].path);
	}
	fclose(order);
	tpath(path, "modules.builtin");
	write_file(path, "kernel/lib/crc_builtin.ko\nkernel/fs/ext4/ext4.ko\n", 48);
}

static int resolve(struct kmod_list *l, const char *const *want, size_t n)
{
	return kmods_resolve(tdir, want, n, l);
}

Test(kmods, dependencies_first_once_each, .init = fake_moddir_setup, .fini = tmp_teardown)
{
	static const char *const want[] = {"foo", "drivers/virtio/", "virtio_pci", "bar-baz"};
	static const char *const order[] = {
	    "kernel/fs/bar-baz.ko",
	    "kernel/fs/foo.ko",
	    "kernel/drivers/virtio/virtio_ring.ko",
	    "kernel/drivers/virtio/virtio.ko",
	    "kernel/drivers/virtio/virtio-pci.ko",
	};
	struct kmod_list l;

	cr_assert_eq(resolve(&l, want, 4), 0);
	cr_assert_eq(l.n, 5);
	for (size_t i = 0; i < l.n; i++)
		cr_expect_str_eq(l.paths[i], order[i]);
	kmods_free(&l);
}

Test(kmods, builtin_and_absent_are_skipped, .init = fake_moddir_setup, .fini = tmp_teardown)
{
	static const char *const want[] = {"ext4", "no_such_module", "fs/nothing-here/"};
	struct kmod_list l;

	cr_assert_eq(resolve(&l, want, 3), 0);
	cr_expect_eq(l.n, 0);
	kmods_free(&l);
}

Test(kmods, broken_packages_are_errors, .init = fake_moddir_setup, .fini = tmp_teardown)
{
	static const char *const loop[] = {"loop_a"}, *const broken[] = {"broken"};
	char path[PATH_MAX];
	struct kmod_list l;

	cr_expect_eq(resolve(&l, loop, 1), -ELOOP);
	cr_expect_eq(resolve(&l, broken, 1), -ENOENT);
	tpath(path, "kernel/fs/foo.ko");
	write_file(path, "junk", 4);
	cr_expect_eq(resolve(&l, (const char *const[]){"foo"}, 1), -ENOEXEC);
	tpath(path, "modules.order");
	unlink(path);
	cr_expect_eq(resolve(&l, loop, 1), -ENOENT);
}
