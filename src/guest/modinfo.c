#include "guest/modinfo.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODINFO_SECTION ".modinfo"
#define MODINFO_KEY	"depends="

/* True when [off, off+size) lies inside a buffer of len bytes, without overflow. */
static int modinfo_in_bounds(uint64_t off, uint64_t size, size_t len)
{
	return off <= len && size <= len - off;
}

/* Section headers may sit at any offset: copy them out rather than cast. */
static int modinfo_shdr(const uint8_t *buf, size_t len, const Elf64_Ehdr *eh, unsigned int i,
			Elf64_Shdr *sh)
{
	uint64_t off = eh->e_shoff + (uint64_t)i * sizeof(*sh);

	if (!modinfo_in_bounds(off, sizeof(*sh), len))
		return -ENOEXEC;
	memcpy(sh, buf + off, sizeof(*sh));
	if (sh->sh_type != SHT_NOBITS && !modinfo_in_bounds(sh->sh_offset, sh->sh_size, len))
		return -ENOEXEC;
	return 0;
}

static int modinfo_ehdr(const uint8_t *buf, size_t len, Elf64_Ehdr *eh)
{
	if (len < sizeof(*eh))
		return -ENOEXEC;
	memcpy(eh, buf, sizeof(*eh));
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    eh->e_shstrndx >= eh->e_shnum ||
	    !modinfo_in_bounds(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr), len))
		return -ENOEXEC;
	return 0;
}

/* Finds the .modinfo section; its bounds are checked by modinfo_shdr(). */
static int modinfo_find(const uint8_t *buf, size_t len, Elf64_Shdr *out)
{
	static const char want[] = MODINFO_SECTION;
	Elf64_Ehdr eh;
	Elf64_Shdr strtab;
	int err;

	err = modinfo_ehdr(buf, len, &eh);
	if (!err)
		err = modinfo_shdr(buf, len, &eh, eh.e_shstrndx, &strtab);
	if (err)
		return err;
	if (strtab.sh_type == SHT_NOBITS)
		return -ENOEXEC;
	for (unsigned int i = 0; i < eh.e_shnum; i++) {
		err = modinfo_shdr(buf, len, &eh, i, out);
		if (err)
			return err;
		/* The name, NUL included, must lie inside the string table. */
		if (out->sh_name >= strtab.sh_size || strtab.sh_size - out->sh_name < sizeof(want))
			continue;
		if (out->sh_type != SHT_NOBITS &&
		    memcmp(buf + strtab.sh_offset + out->sh_name, want, sizeof(want)) == 0)
			return 0;
	}
	return -ENOENT;
}

int modinfo_depends(const void *buf, size_t len, char *out, size_t outlen)
{
	const size_t keylen = strlen(MODINFO_KEY);
	const char *p, *end;
	Elf64_Shdr sh;
	int err;

	err = modinfo_find(buf, len, &sh);
	if (err)
		return err;
	p = (const char *)buf + sh.sh_offset;
	end = p + sh.sh_size;
	/* NUL-separated "key=value" strings, possibly with NUL padding between them. */
	while (p < end) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);

		if (n >= keylen && memcmp(p, MODINFO_KEY, keylen) == 0) {
			if (n - keylen >= outlen)
				return -ENAMETOOLONG;
			memcpy(out, p + keylen, n - keylen);
			out[n - keylen] = '\0';
			return 0;
		}
		p += n + 1;
	}
	return -ENOENT;
}

static int modinfo_read_all(int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

int modinfo_depends_file(const char *path, char *out, size_t outlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	err = !S_ISREG(st.st_mode) ? -EINVAL : st.st_size > MODINFO_MAX_FILE ? -EFBIG : 0;
	if (err)
		goto out;
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	err = modinfo_read_all(fd, buf, (size_t)st.st_size);
	if (!err)
		err = modinfo_depends(buf, (size_t)st.st_size, out, outlen);
out:
	free(buf);
	close(fd);
	return err;
}
