/* qcow2: opening an image and its backing chain, and checking everything it claims. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "disk/qcow2_int.h"
#include "util/log.h"

#define Q2_L2_CACHE_BYTES (2u << 20)
#define Q2_RB_CACHE_BYTES (256u << 10)

/* The files of a chain being opened, top first: a file seen twice is a loop. */
struct q2_chain {
	unsigned n;
	dev_t dev[QCOW2_MAX_CHAIN + 2];
	ino_t ino[QCOW2_MAX_CHAIN + 2];
	const char *name[QCOW2_MAX_CHAIN + 2];
};

bool qcow2_probe(const uint8_t *head, size_t len)
{
	return len >= 4 && q2_be32(head) == Q2_MAGIC;
}

/* Every refusal: one line naming the file; returns -EINVAL. */
static int __attribute__((format(printf, 2, 3)))
q2_refuse(const struct q2_image *img, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("disk %s %s", img->path, msg);
	return -EINVAL;
}

/* ---- the header ---- */

static void q2_parse_fields(struct q2_header *h, const uint8_t *b)
{
	h->version = q2_be32(b + 4);
	h->backing_offset = q2_be64(b + 8);
	h->backing_len = q2_be32(b + 16);
	h->cluster_bits = q2_be32(b + 20);
	h->size = q2_be64(b + Q2_HDR_SIZE);
	h->crypt_method = q2_be32(b + 32);
	h->l1_size = q2_be32(b + Q2_HDR_L1_SIZE);
	h->l1_offset = q2_be64(b + Q2_HDR_L1_OFFSET);
	h->rt_offset = q2_be64(b + Q2_HDR_RT_OFFSET);
	h->rt_clusters = q2_be32(b + Q2_HDR_RT_CLUSTERS);
	h->nb_snapshots = q2_be32(b + 60);
	h->snapshots_offset = q2_be64(b + 64);
	h->refcount_order = 4;
	h->header_length = Q2_V2_HEADER;
	if (h->version < 3)
		return;
	h->incompatible = q2_be64(b + Q2_HDR_INCOMPATIBLE);
	h->compatible = q2_be64(b + 80);
	h->autoclear = q2_be64(b + Q2_HDR_AUTOCLEAR);
	h->refcount_order = q2_be32(b + 96);
	h->header_length = q2_be32(b + Q2_HDR_HEADER_LENGTH);
}

/* Reads the first cluster (as much as the file has) into *first. */
static int q2_read_first(struct q2_image *img, uint8_t **first, size_t *len)
{
	uint8_t head[Q2_V3_HEADER];
	size_t want;
	int ret;

	if (img->file_size < Q2_V2_HEADER)
		return q2_refuse(img, "is truncated (%llu bytes): too short for a qcow2 header",
				 (unsigned long long)img->file_size);
	if ((ret = q2_pread(img, head, Q2_V2_HEADER, 0)) != 0)
		return q2_refuse(img, "cannot be read: %s", strerror(-ret));
	if (q2_be32(head) != Q2_MAGIC)
		return q2_refuse(img, "is not a qcow2 image (no QFI\\xfb magic)");
	img->h.cluster_bits = q2_be32(head + 20);
	if (img->h.cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
	    img->h.cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return q2_refuse(img, "has clusters of 2^%u bytes: out of range (512 B to 2 MiB)",
				 img->h.cluster_bits);
	want = (size_t)1 << img->h.cluster_bits;
	*len = img->file_size < want ? (size_t)img->file_size : want;
	*first = calloc(1, want);
	if (*first == NULL)
		return -ENOMEM;
	if ((ret = q2_pread(img, *first, *len, 0)) != 0)
		return q2_refuse(img, "cannot be read: %s", strerror(-ret));
	q2_parse_fields(&img->h, *first);
	return 0;
}

/* A feature's name from the feature name table, for the error message. */
static void q2_feature_name(const uint8_t *first, size_t len, unsigned type, unsigned bit,
			    char *out, size_t outlen)
{
	snprintf(out, outlen, "unnamed");
	for (size_t at = 0; first != NULL && at + 48 <= len; at += 48)
		if (first[at] == type && first[at + 1] == bit)
			snprintf(out, outlen, "%.46s", (const char *)first + at + 2);
}

static int q2_check_incompatible(struct q2_image *img, const uint8_t *names, size_t nlen)
{
	uint64_t bits = img->h.incompatible;
	char name[48];

	if (bits & ~Q2_INCOMPAT_KNOWN) {
		unsigned bit = (unsigned)__builtin_ctzll(bits & ~Q2_INCOMPAT_KNOWN);

		q2_feature_name(names, nlen, 0, bit, name, sizeof(name));
		return q2_refuse(img, "uses incompatible feature %u (%s), unknown to tabique", bit,
				 name);
	}
	if (bits & Q2_INCOMPAT_EXTL2)
		return q2_refuse(img, "uses extended L2 entries (subclusters), which tabique "
				      "does not support: qemu-img convert -O qcow2 removes them");
	if (bits & Q2_INCOMPAT_DATA_FILE)
		return q2_refuse(img, "keeps its data in an external data file, which tabique "
				      "does not support");
	if (bits & Q2_INCOMPAT_COMPRESSION)
		return q2_refuse(img,
				 "uses %s compression: tabique reads only zlib "
				 "(qemu-img convert -O qcow2 recompresses it)",
				 img->h.compression_type == 1 ? "zstd" : "an unknown");
	if (!img->readonly && (bits & Q2_INCOMPAT_DIRTY))
		return q2_refuse(img,
				 "was not closed cleanly (dirty bit set): run 'qemu-img "
				 "check -r all %s' first, or open it readonly",
				 img->path);
	if (!img->readonly && (bits & Q2_INCOMPAT_CORRUPT))
		return q2_refuse(img,
				 "is marked corrupt: run 'qemu-img check -r all %s' first, "
				 "or open it readonly",
				 img->path);
	return 0;
}

static int q2_check_version(struct q2_image *img, const uint8_t *first)
{
	const struct q2_header *h = &img->h;

	if (h->version != 2 && h->version != 3)
		return q2_refuse(img, "is qcow2 version %u: tabique reads versions 2 and 3",
				 h->version);
	if (h->version >= 3 && (img->file_size < Q2_V3_HEADER || h->header_length < Q2_V3_HEADER ||
				h->header_length % 8 != 0 || h->header_length > img->cs))
		return q2_refuse(img, "has an invalid header length (%u)", h->header_length);
	if (h->version >= 3 && h->header_length > Q2_V3_HEADER)
		img->h.compression_type = first[Q2_V3_HEADER];
	if (!img->readonly && h->version < 3)
		return q2_refuse(img,
				 "is qcow2 version 2: tabique writes only version 3 "
				 "(qemu-img amend -o compat=v3 %s), or open it readonly",
				 img->path);
	if (h->refcount_order > 6)
		return q2_refuse(img, "has an invalid refcount order (%u)", h->refcount_order);
	if (!img->readonly && h->refcount_order != 4)
		return q2_refuse(img,
				 "has %u-bit refcounts: tabique writes only 16-bit ones "
				 "(qemu-img amend -o refcount_bits=16 %s), or open it readonly",
				 1u << h->refcount_order, img->path);
	if (h->crypt_method != 0)
		return q2_refuse(img, "is encrypted (%s), which tabique does not support",
				 h->crypt_method == 1 ? "AES" : "LUKS or other");
	return 0;
}

/* Whether [off, off + len) lies inside the file, both ends checked without overflow. */
static bool q2_in_file(const struct q2_image *img, uint64_t off, uint64_t len)
{
	return off <= img->file_size && len <= img->file_size - off;
}

static bool q2_aligned(const struct q2_image *img, uint64_t off)
{
	return (off & (img->cs - 1)) == 0;
}

static int q2_check_size(struct q2_image *img)
{
	const struct q2_header *h = &img->h;
	uint64_t per_l1 = img->cs << img->l2_bits; /* bytes an L2 table maps */

	if (h->size % DISK_SECTOR != 0)
		return q2_refuse(img, "has a virtual size of %llu bytes, not a multiple of 512",
				 (unsigned long long)h->size);
	if (h->size > Q2_MAX_SIZE)
		return q2_refuse(img, "has a virtual size of %llu bytes: too large",
				 (unsigned long long)h->size);
	if ((uint64_t)h->l1_size * 8 > Q2_MAX_L1_BYTES)
		return q2_refuse(img, "has an L1 table of %u entries: too large (at most 32 MiB)",
				 h->l1_size);
	if (h->l1_size < (h->size + per_l1 - 1) / per_l1)
		return q2_refuse(img,
				 "has an L1 table of %u entries: too small for its virtual "
				 "size",
				 h->l1_size);
	if (h->l1_size > 0 && (h->l1_offset == 0 || !q2_aligned(img, h->l1_offset)))
		return q2_refuse(img, "has its L1 table at %#llx: not cluster-aligned",
				 (unsigned long long)h->l1_offset);
	if (!q2_in_file(img, h->l1_offset, (uint64_t)h->l1_size * 8))
		return q2_refuse(img, "has its L1 table past the end of the file (truncated?)");
	return 0;
}

static int q2_check_tables(struct q2_image *img)
{
	const struct q2_header *h = &img->h;
	uint64_t rt_bytes = (uint64_t)h->rt_clusters << img->cb;

	if (h->rt_clusters == 0 || rt_bytes > Q2_MAX_REFTABLE_BYTES)
		return q2_refuse(img,
				 "has a refcount table of %u clusters: out of range (1 "
				 "cluster to 8 MiB)",
				 h->rt_clusters);
	if (h->rt_offset == 0 || !q2_aligned(img, h->rt_offset))
		return q2_refuse(img, "has its refcount table at %#llx: not cluster-aligned",
				 (unsigned long long)h->rt_offset);
	if (!q2_in_file(img, h->rt_offset, rt_bytes))
		return q2_refuse(img, "has its refcount table past the end of the file "
				      "(truncated?)");
	if (h->nb_snapshots == 0)
		return 0;
	if (!img->readonly)
		return q2_refuse(img,
				 "has %u internal snapshots: tabique writes only images "
				 "without them (qemu-img snapshot -l %s), or open it readonly",
				 h->nb_snapshots, img->path);
	if (h->nb_snapshots > Q2_MAX_SNAPSHOTS || !q2_aligned(img, h->snapshots_offset) ||
	    h->snapshots_offset == 0 || !q2_in_file(img, h->snapshots_offset, 40))
		return q2_refuse(img, "has an invalid snapshot table");
	return 0;
}

/* ---- header extensions and the backing file name ---- */

static int q2_backing_format_ext(struct q2_image *img, const uint8_t *data, uint32_t len)
{
	char name[Q2_MAX_FORMAT_NAME + 1];

	if (len > Q2_MAX_FORMAT_NAME)
		len = Q2_MAX_FORMAT_NAME;
	memcpy(name, data, len);
	name[len] = '\0';
	if (disk_format_parse(name, &img->backing_format) != 0)
		return q2_refuse(img,
				 "has a backing file in format '%s': tabique reads raw and "
				 "qcow2 backing files",
				 name);
	return 0;
}

/* Walks the extensions after the header; *names: the feature name table. */
static int q2_parse_extensions(struct q2_image *img, const uint8_t *first, size_t len,
			       const uint8_t **names, size_t *nlen)
{
	size_t at = img->h.version >= 3 ? img->h.header_length : Q2_V2_HEADER;

	while (at + 8 <= len) {
		uint32_t type = q2_be32(first + at), elen = q2_be32(first + at + 4);
		int ret = 0;

		if (type == Q2_EXT_END)
			return 0;
		if (elen > len - at - 8)
			return q2_refuse(img,
					 "has a header extension (%#x) running past its first "
					 "cluster",
					 type);
		if (type == Q2_EXT_BACKING_FORMAT)
			ret = q2_backing_format_ext(img, first + at + 8, elen);
		if (type == Q2_EXT_FEATURE_NAMES) {
			*names = first + at + 8;
			*nlen = elen;
		}
		if (ret != 0)
			return ret;
		at += 8 + (((size_t)elen + 7) & ~(size_t)7);
	}
	/* No end marker inside the cluster: QEMU accepts that too. */
	return 0;
}

static int q2_parse_backing(struct q2_image *img, const uint8_t *first, size_t len)
{
	const struct q2_header *h = &img->h;

	if (h->backing_offset == 0)
		return 0;
	if (h->backing_len == 0 || h->backing_len > Q2_MAX_BACKING_NAME)
		return q2_refuse(img,
				 "has a backing file name of %u bytes: out of range (1 to "
				 "1023)",
				 h->backing_len);
	if (h->backing_offset > len || h->backing_len > len - h->backing_offset)
		return q2_refuse(img, "has its backing file name outside its first cluster");
	if (memchr(first + h->backing_offset, '\0', h->backing_len) != NULL)
		return q2_refuse(img, "has a backing file name with a NUL byte");
	img->backing_name = strndup((const char *)first + h->backing_offset, h->backing_len);
	return img->backing_name != NULL ? 0 : -ENOMEM;
}

/* ---- tables ---- */

static int q2_meta_push(struct q2_image *img, uint64_t start, uint64_t len, enum q2_meta_kind kind)
{
	if (img->nmeta == img->meta_cap) {
		size_t cap = img->meta_cap ? 2 * img->meta_cap : 64;
		struct q2_meta *m = realloc(img->meta, cap * sizeof(*m));

		if (m == NULL)
			return -ENOMEM;
		img->meta = m;
		img->meta_cap = cap;
	}
	img->meta[img->nmeta++] =
	    (struct q2_meta){.start = start, .end = start + len, .kind = kind};
	return 0;
}

static int q2_meta_cmp(const void *a, const void *b)
{
	const struct q2_meta *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sorts the ranges; any two that overlap make the image unusable. */
static int q2_meta_check(struct q2_image *img)
{
	qsort(img->meta, img->nmeta, sizeof(*img->meta), q2_meta_cmp);
	for (size_t i = 1; i < img->nmeta; i++) {
		const struct q2_meta *a = &img->meta[i - 1], *b = &img->meta[i];

		if (b->start < a->end)
			return q2_refuse(img,
					 "has overlapping metadata: %s at %#llx and %s at "
					 "%#llx",
					 q2_meta_name(a->kind), (unsigned long long)a->start,
					 q2_meta_name(b->kind), (unsigned long long)b->start);
	}
	return 0;
}

/* Reads n big-endian entries at off into a host-order array. */
static int q2_read_table(struct q2_image *img, uint64_t off, uint64_t n, uint64_t **out)
{
	uint64_t *t = calloc(n > 0 ? n : 1, sizeof(*t));
	int ret;

	*out = t;
	if (t == NULL)
		return -ENOMEM;
	if (n == 0)
		return 0;
	if ((ret = q2_pread(img, t, n * 8, off)) != 0)
		return q2_refuse(img, "cannot be read: %s", strerror(-ret));
	for (uint64_t i = 0; i < n; i++)
		t[i] = q2_be64((const uint8_t *)&t[i]);
	return 0;
}

/* Each entry of an L1 or refcount table: aligned, reserved bits clear, inside the file. */
static int q2_check_entries(struct q2_image *img, const uint64_t *t, uint64_t n, uint64_t reserved,
			    enum q2_meta_kind kind)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = t[i] & Q2_OFFSET_MASK;
		int ret;

		if (t[i] == 0)
			continue;
		if ((t[i] & reserved) || off == 0 || !q2_aligned(img, off))
			return q2_refuse(img, "has an invalid entry %llu (%#llx) pointing at %s",
					 (unsigned long long)i, (unsigned long long)t[i],
					 q2_meta_name(kind));
		if (!q2_in_file(img, off, img->cs))
			return q2_refuse(img,
					 "has %s at %#llx past the end of the file "
					 "(truncated?)",
					 q2_meta_name(kind), (unsigned long long)off);
		if ((ret = q2_meta_push(img, off, img->cs, kind)) != 0)
			return ret;
	}
	return 0;
}

static uint64_t q2_round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

static int q2_load_tables(struct q2_image *img)
{
	const struct q2_header *h = &img->h;
	int ret;

	img->l1_entries = h->l1_size;
	img->rt_entries = ((uint64_t)h->rt_clusters << img->cb) / 8;
	if ((ret = q2_read_table(img, h->l1_offset, img->l1_entries, &img->l1)) != 0 ||
	    (ret = q2_read_table(img, h->rt_offset, img->rt_entries, &img->reftable)) != 0)
		return ret;
	if ((ret = q2_meta_push(img, 0, img->cs, Q2_META_HEADER)) != 0 ||
	    (ret = q2_meta_push(img, h->rt_offset, (uint64_t)h->rt_clusters << img->cb,
				Q2_META_REFTABLE)) != 0 ||
	    (h->l1_size > 0 &&
	     (ret = q2_meta_push(img, h->l1_offset, q2_round_up((uint64_t)h->l1_size * 8, img->cs),
				 Q2_META_L1)) != 0) ||
	    (h->nb_snapshots > 0 &&
	     (ret = q2_meta_push(img, h->snapshots_offset, img->cs, Q2_META_SNAPSHOTS)) != 0))
		return ret;
	if ((ret = q2_check_entries(img, img->l1, img->l1_entries, Q2_L1_RESERVED, Q2_META_L2)) !=
		0 ||
	    (ret = q2_check_entries(img, img->reftable, img->rt_entries, ~Q2_OFFSET_MASK,
				    Q2_META_REFBLOCK)) != 0)
		return ret;
	return q2_meta_check(img);
}

static unsigned q2_slots(uint64_t budget, unsigned cb, unsigned min, unsigned max)
{
	uint64_t n = budget >> cb;

	return n < min ? min : n > max ? max : (unsigned)n;
}

/* Caches, buffers and the allocator's starting point. */
static int q2_setup(struct q2_image *img)
{
	int ret = q2_cache_init(&img->l2c, q2_slots(Q2_L2_CACHE_BYTES, img->cb, 4, 512),
				img->l1_entries, true);

	if (ret != 0 || img->readonly)
		return ret;
	ret = q2_cache_init(&img->rbc, q2_slots(Q2_RB_CACHE_BYTES, img->cb, 2, 64), img->rt_entries,
			    false);
	img->cow = malloc(img->cs);
	if (ret != 0 || img->cow == NULL)
		return -ENOMEM;
	img->end_cluster = (img->file_size + img->cs - 1) >> img->cb;
	img->l1_dirty_lo = img->rt_dirty_lo = UINT64_MAX;
	/* Autoclear features we do not know are dropped before we write: the spec's rule. */
	if (img->h.version >= 3 && img->h.autoclear != 0) {
		uint8_t zero[8] = {0};

		if ((ret = q2_pwrite(img, zero, 8, Q2_HDR_AUTOCLEAR)) != 0 ||
		    (ret = q2_datasync(img)) != 0)
			return q2_refuse(img, "cannot be written: %s", strerror(-ret));
		img->h.autoclear = 0;
	}
	return 0;
}

static int q2_parse(struct q2_image *img)
{
	const uint8_t *names = NULL;
	uint8_t *first = NULL;
	size_t len = 0, nlen = 0;
	int ret;

	if ((ret = q2_read_first(img, &first, &len)) != 0)
		goto out;
	img->cb = img->h.cluster_bits;
	img->cs = 1ull << img->cb;
	img->l2_bits = img->cb - 3;
	if ((ret = q2_check_version(img, first)) != 0 ||
	    (ret = q2_parse_extensions(img, first, len, &names, &nlen)) != 0 ||
	    (ret = q2_check_incompatible(img, names, nlen)) != 0 ||
	    (ret = q2_parse_backing(img, first, len)) != 0)
		goto out;
	img->rb_bits = img->cb + 3 - img->h.refcount_order;
	img->size = img->h.size;
	if ((ret = q2_check_size(img)) != 0 || (ret = q2_check_tables(img)) != 0 ||
	    (ret = q2_load_tables(img)) != 0)
		goto out;
	ret = q2_setup(img);
out:
	free(first);
	return ret;
}

/* ---- files ---- */

/* of: the image whose backing file path is, NULL for the top. */
static int q2_open_error(const char *path, int err, const char *of)
{
	if (of != NULL)
		log_error("disk %s: its backing file %s: %s", of, path, strerror(err));
	else if (err == EISDIR)
		log_error("disk %s is a directory, not an image file", path);
	else
		log_error("disk %s: %s", path, strerror(err));
	return -err;
}

static int q2_file_size(struct q2_image *img)
{
	struct stat st;
	uint64_t bytes;

	if (fstat(img->fd, &st) < 0)
		return q2_open_error(img->path, errno, NULL);
	if (S_ISDIR(st.st_mode))
		return q2_open_error(img->path, EISDIR, NULL);
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(img->fd, BLKGETSIZE64, &bytes) < 0)
			return q2_open_error(img->path, errno, NULL);
		img->file_size = bytes;
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("disk %s is neither an image file nor a block device", img->path);
		return -EINVAL;
	}
	img->file_size = (uint64_t)st.st_size;
	return 0;
}

static int q2_lock(struct q2_image *img)
{
	struct flock fl = {.l_type = img->readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};

	if (fcntl(img->fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES) {
		log_error("disk %s is in use by another VM (locked)", img->path);
		return -EBUSY;
	}
	return 0; /* a file system without locks: the image stays usable */
}

/* The chain so far, then this file: "a -> b -> a". */
static int q2_chain_loop(const struct q2_chain *chain, unsigned first, const char *path)
{
	char msg[1024];
	size_t at = 0;

	for (unsigned i = first; i < chain->n && at < sizeof(msg); i++)
		at += (size_t)snprintf(msg + at, sizeof(msg) - at, "%s -> ", chain->name[i]);
	if (at < sizeof(msg))
		snprintf(msg + at, sizeof(msg) - at, "%s", path);
	log_error("disk %s: backing chain loop: %s", chain->name[0], msg);
	return -ELOOP;
}

/* Adds the opened file to the chain, refusing a file that is already in it. */
static int q2_chain_add(struct q2_chain *chain, struct q2_image *img)
{
	struct stat st;

	if (fstat(img->fd, &st) < 0)
		return q2_open_error(img->path, errno, NULL);
	for (unsigned i = 0; i < chain->n; i++)
		if (chain->dev[i] == st.st_dev && chain->ino[i] == st.st_ino)
			return q2_chain_loop(chain, i, img->path);
	chain->dev[chain->n] = st.st_dev;
	chain->ino[chain->n] = st.st_ino;
	chain->name[chain->n] = img->path;
	chain->n++;
	return 0;
}

static int q2_probe_fd(struct q2_image *img, enum disk_format *format)
{
	uint8_t head[4];
	ssize_t n = pread(img->fd, head, sizeof(head), 0);

	if (n < 0)
		return q2_open_error(img->path, errno, NULL);
	*format = qcow2_probe(head, (size_t)n) ? DISK_FORMAT_QCOW2 : DISK_FORMAT_RAW;
	return 0;
}

static int q2_open_file(struct q2_image *img, const char *path, int fd,
			const struct q2_chain *chain)
{
	img->path = strdup(path);
	if (img->path == NULL)
		return -ENOMEM;
	img->fd = fd;
	if (fd < 0) {
		img->fd = open(path, (img->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
		if (img->fd < 0)
			return q2_open_error(path, errno, chain->n > 0 ? chain->name[0] : NULL);
		img->own_fd = true;
	}
	return q2_file_size(img);
}

int q2_backing_path(const char *image, const char *name, char *out, size_t outlen)
{
	const char *slash = strrchr(image, '/');
	int n;

	if (name[0] == '/' || slash == NULL)
		n = snprintf(out, outlen, "%s", name);
	else
		n = snprintf(out, outlen, "%.*s/%s", (int)(slash - image), image, name);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int q2_open_chain(struct q2_image **out, const char *path, int fd, enum disk_format format,
			 bool readonly, unsigned flags, struct q2_chain *chain);

/* A backing file without a recorded format: raw is safe, qcow2 is not guessed. */
static int q2_backing_unrecorded(struct q2_image *top, struct q2_image *b)
{
	enum disk_format probed;
	int ret = q2_probe_fd(b, &probed);

	if (ret != 0 || probed == DISK_FORMAT_RAW)
		return ret;
	log_error("disk %s: its backing file %s looks like qcow2 but the image does not say "
		  "so: record it with qemu-img rebase -u -F qcow2 -b '%s' '%s'",
		  top->path, b->path, top->backing_name, top->path);
	return -EINVAL;
}

static int q2_open_backing(struct q2_image *img, struct q2_chain *chain)
{
	char path[PATH_MAX];
	enum disk_format format = img->backing_format;
	int ret;

	if (chain->n > QCOW2_MAX_CHAIN) {
		log_error("disk %s: its backing chain is more than %d files deep", chain->name[0],
			  QCOW2_MAX_CHAIN);
		return -ELOOP;
	}
	if (q2_backing_path(img->path, img->backing_name, path, sizeof(path)) != 0) {
		log_error("disk %s: its backing file name is too long", img->path);
		return -ENAMETOOLONG;
	}
	ret = q2_open_chain(&img->backing, path, -1, format, true, Q2_OPEN_BACKING, chain);
	if (ret == 0 && format == DISK_FORMAT_AUTO)
		ret = q2_backing_unrecorded(img, img->backing);
	return ret;
}

static int q2_open_chain(struct q2_image **out, const char *path, int fd, enum disk_format format,
			 bool readonly, unsigned flags, struct q2_chain *chain)
{
	struct q2_image *img = calloc(1, sizeof(*img));
	int ret;

	*out = img;
	if (img == NULL)
		return -ENOMEM;
	img->readonly = readonly;
	img->fd = -1;
	if ((ret = q2_open_file(img, path, fd, chain)) != 0 ||
	    (ret = q2_chain_add(chain, img)) != 0)
		return ret;
	if (img->own_fd && !(flags & Q2_OPEN_NOLOCK) && (ret = q2_lock(img)) != 0)
		return ret;
	if (format == DISK_FORMAT_AUTO && (ret = q2_probe_fd(img, &format)) != 0)
		return ret;
	if (format == DISK_FORMAT_RAW) {
		img->raw = true;
		img->size = img->file_size;
		return 0;
	}
	if ((ret = q2_parse(img)) != 0)
		return ret;
	if ((flags & Q2_OPEN_BACKING) && img->backing_name != NULL)
		return q2_open_backing(img, chain);
	return 0;
}

int q2_open(struct q2_image **out, const char *path, int fd, enum disk_format format, bool readonly,
	    unsigned flags)
{
	struct q2_chain chain = {0};
	int ret = q2_open_chain(out, path, fd, format, readonly, flags, &chain);

	if (ret != 0) {
		q2_close(*out);
		*out = NULL;
	}
	return ret;
}

void q2_close(struct q2_image *img)
{
	while (img != NULL) {
		struct q2_image *next = img->backing;

		if (img->own_fd && img->fd >= 0)
			close(img->fd);
		q2_cache_free(&img->l2c);
		q2_cache_free(&img->rbc);
		free(img->l1);
		free(img->reftable);
		free(img->meta);
		free(img->frees);
		free(img->cow);
		free(img->zin);
		free(img->zout);
		free(img->backing_name);
		free(img->path);
		free(img);
		img = next;
	}
}
