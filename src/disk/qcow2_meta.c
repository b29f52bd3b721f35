/* qcow2 metadata: table caches, guest-to-host mapping, reading, overlap checks. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "disk/qcow2_int.h"
#include "util/log.h"

/* ---- bytes ---- */

uint32_t q2_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t q2_be64(const uint8_t *p)
{
	return (uint64_t)q2_be32(p) << 32 | q2_be32(p + 4);
}

void q2_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void q2_put_be64(uint8_t *p, uint64_t v)
{
	q2_put_be32(p, (uint32_t)(v >> 32));
	q2_put_be32(p + 4, (uint32_t)v);
}

/* ---- file I/O ---- */

/* All of [off, off + len): a file that ends early is -EIO. */
int q2_pread(struct q2_image *img, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(img->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int q2_pwrite(struct q2_image *img, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(img->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	if (off > img->file_size)
		img->file_size = off;
	return 0;
}

int q2_datasync(struct q2_image *img)
{
	while (fdatasync(img->fd) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

int q2_corrupt(struct q2_image *img, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (img->complained)
		return -EIO;
	img->complained = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("disk %s: %s: the image is corrupt (qemu-img check tells more)", img->path, msg);
	return -EIO;
}

/* ---- table caches ---- */

int q2_cache_init(struct q2_cache *c, unsigned nslots, uint64_t nkeys, bool is_l2)
{
	memset(c, 0, sizeof(*c));
	c->is_l2 = is_l2;
	c->slots = calloc(nslots, sizeof(*c->slots));
	c->where = calloc(nkeys > 0 ? nkeys : 1, sizeof(*c->where));
	if (c->slots == NULL || c->where == NULL) {
		q2_cache_free(c);
		return -ENOMEM;
	}
	c->nslots = nslots;
	c->nkeys = nkeys;
	return 0;
}

void q2_cache_free(struct q2_cache *c)
{
	for (unsigned i = 0; c->slots != NULL && i < c->nslots; i++)
		free(c->slots[i].buf);
	free(c->slots);
	free(c->where);
	memset(c, 0, sizeof(*c));
}

int q2_cache_resize(struct q2_cache *c, uint64_t nkeys)
{
	uint32_t *where;

	if (nkeys <= c->nkeys)
		return 0;
	where = realloc(c->where, nkeys * sizeof(*where));
	if (where == NULL)
		return -ENOMEM;
	memset(where + c->nkeys, 0, (nkeys - c->nkeys) * sizeof(*where));
	c->where = where;
	c->nkeys = nkeys;
	return 0;
}

static uint64_t q2_table_host(const struct q2_image *img, const struct q2_cache *c, uint64_t key)
{
	return (c->is_l2 ? img->l1[key] : img->reftable[key]) & Q2_OFFSET_MASK;
}

static int q2_slot_write(struct q2_image *img, struct q2_cache *c, struct q2_slot *s)
{
	uint64_t host = q2_table_host(img, c, s->key);
	int ret;

	if (host == 0)
		return -EIO; /* a table nothing points at: never happens */
	ret = q2_pwrite(img, s->buf, img->cs, host);
	if (ret == 0) {
		s->dirty = false;
		c->ndirty--;
	}
	return ret;
}

int q2_cache_write(struct q2_image *img, struct q2_cache *c)
{
	for (unsigned i = 0; i < c->nslots && c->ndirty > 0; i++) {
		struct q2_slot *s = &c->slots[i];
		int ret = s->used && s->dirty ? q2_slot_write(img, c, s) : 0;

		if (ret != 0)
			return ret;
	}
	return 0;
}

/* Frees a slot for another table. */
static int q2_slot_evict(struct q2_image *img, struct q2_cache *c, struct q2_slot *s)
{
	int ret = 0;

	if (!s->used)
		return 0;
	/* An L2 table goes to disk only after the data and refcounts it uses. */
	if (s->dirty)
		ret = c->is_l2 ? q2_flush(img, 0) : q2_slot_write(img, c, s);
	if (ret != 0)
		return ret;
	c->where[s->key] = 0;
	s->used = false;
	return 0;
}

static struct q2_slot *q2_slot_victim(struct q2_cache *c)
{
	struct q2_slot *victim = &c->slots[0];

	for (unsigned i = 0; i < c->nslots; i++) {
		if (!c->slots[i].used)
			return &c->slots[i];
		if (c->slots[i].stamp < victim->stamp)
			victim = &c->slots[i];
	}
	return victim;
}

int q2_table_get(struct q2_image *img, struct q2_cache *c, uint64_t key, uint64_t host, bool fresh,
		 uint8_t **buf)
{
	struct q2_slot *s;
	int ret;

	if (key >= c->nkeys)
		return -EIO;
	if (c->where[key] != 0) {
		s = &c->slots[c->where[key] - 1];
		s->stamp = ++c->clock;
		*buf = s->buf;
		return 0;
	}
	s = q2_slot_victim(c);
	ret = q2_slot_evict(img, c, s);
	if (ret != 0)
		return ret;
	if (s->buf == NULL && (s->buf = malloc(img->cs)) == NULL)
		return -ENOMEM;
	if (fresh)
		memset(s->buf, 0, img->cs);
	else if ((ret = q2_pread(img, s->buf, img->cs, host)) != 0)
		return ret;
	s->key = key;
	s->used = true;
	s->dirty = false;
	s->stamp = ++c->clock;
	c->where[key] = (uint32_t)(s - c->slots) + 1;
	*buf = s->buf;
	return 0;
}

void q2_table_dirty(struct q2_image *img, struct q2_cache *c, uint64_t key)
{
	struct q2_slot *s;

	(void)img;
	if (key >= c->nkeys || c->where[key] == 0)
		return;
	s = &c->slots[c->where[key] - 1];
	if (!s->dirty) {
		s->dirty = true;
		c->ndirty++;
	}
}

/* ---- guest clusters ---- */

int q2_l2_table(struct q2_image *img, uint64_t gc, uint8_t **table)
{
	uint64_t l1i = gc >> img->l2_bits, host;

	*table = NULL;
	if (l1i >= img->l1_entries)
		return 0;
	host = img->l1[l1i] & Q2_OFFSET_MASK;
	if (host == 0)
		return 0;
	return q2_table_get(img, &img->l2c, l1i, host, false, table);
}

uint64_t q2_table_entry(const struct q2_image *img, const uint8_t *table, uint64_t gc)
{
	return table == NULL ? 0 : q2_be64(table + 8 * (gc & ((1ull << img->l2_bits) - 1)));
}

int q2_l2_entry(struct q2_image *img, uint64_t gc, uint64_t *entry)
{
	uint8_t *table;
	int ret = q2_l2_table(img, gc, &table);

	*entry = ret == 0 ? q2_table_entry(img, table, gc) : 0;
	return ret;
}

enum q2_kind q2_classify(const struct q2_image *img, uint64_t entry)
{
	uint64_t off = entry & Q2_OFFSET_MASK;

	if (entry & Q2_COMPRESSED)
		return (entry & Q2_COPIED) ? Q2_BAD : Q2_COMPRESSED_DATA;
	if ((entry & Q2_L2_RESERVED) || (off & (img->cs - 1)))
		return Q2_BAD;
	if (entry & Q2_ZERO)
		return img->h.version >= 3 ? Q2_ZEROES : Q2_BAD;
	if (off == 0)
		return (entry & Q2_COPIED) ? Q2_BAD : Q2_UNALLOCATED;
	return Q2_NORMAL;
}

/* Compressed descriptor: offset in the low x bits, then extra 512-byte sectors. */
static unsigned q2_csize_shift(const struct q2_image *img)
{
	return 62 - (img->cb - 8);
}

void q2_compressed_span(const struct q2_image *img, uint64_t entry, uint64_t *first,
			uint64_t *count)
{
	unsigned x = q2_csize_shift(img);
	uint64_t off = entry & ((1ull << x) - 1), nsec = (entry >> x) & ((1ull << (62 - x)) - 1);
	uint64_t start = off & ~511ull, end = start + (nsec + 1) * 512;

	*first = start >> img->cb;
	*count = ((end - 1) >> img->cb) - *first + 1;
}

/* ---- mapping ---- */

/* How many clusters from gc on (in its L2 table, up to gc_end) read as kind. */
static uint64_t q2_run(const struct q2_image *img, const uint8_t *table, uint64_t gc,
		       uint64_t gc_end, enum q2_kind kind)
{
	uint64_t n = 1;

	while (gc + n < gc_end && q2_classify(img, q2_table_entry(img, table, gc + n)) == kind)
		n++;
	return n;
}

uint64_t q2_run_end(const struct q2_image *img, uint64_t gc, uint64_t off, uint64_t len)
{
	uint64_t end = (off + len + img->cs - 1) >> img->cb;
	uint64_t table_end = ((gc >> img->l2_bits) + 1) << img->l2_bits;

	return end < table_end ? end : table_end;
}

static int q2_map_normal(struct q2_image *img, const uint8_t *table, uint64_t gc, uint64_t off,
			 uint64_t len, struct q2_ext *ext)
{
	uint64_t entry = q2_table_entry(img, table, gc), gc_end = q2_run_end(img, gc, off, len);
	uint64_t cluster = entry & Q2_OFFSET_MASK, in = off & (img->cs - 1), n = 1;

	if (cluster >= img->file_size)
		return q2_corrupt(img, "data cluster at %#llx lies outside the file",
				  (unsigned long long)cluster);
	while (gc + n < gc_end) {
		uint64_t next = q2_table_entry(img, table, gc + n);

		if (q2_classify(img, next) != Q2_NORMAL ||
		    (next & Q2_OFFSET_MASK) != cluster + n * img->cs)
			break;
		n++;
	}
	ext->img = img;
	ext->host = cluster + in;
	ext->len = n * img->cs - in < len ? n * img->cs - in : len;
	/* The file may end inside its last cluster (compressed images): zeroes past it. */
	if (ext->host >= img->file_size) {
		ext->kind = Q2_EXT_ZERO;
		ext->len = img->cs - in < ext->len ? img->cs - in : ext->len;
	} else if (ext->len > img->file_size - ext->host) {
		ext->len = img->file_size - ext->host;
	}
	return 0;
}

static int q2_map_raw(struct q2_image *img, uint64_t off, uint64_t len, struct q2_ext *ext)
{
	ext->img = img;
	ext->host = off;
	ext->len = len;
	if (off >= img->file_size)
		ext->kind = Q2_EXT_ZERO;
	else if (len > img->file_size - off)
		ext->len = img->file_size - off;
	return 0;
}

int q2_map(struct q2_image *img, uint64_t off, uint64_t len, struct q2_ext *ext)
{
	uint64_t gc = off >> img->cb, entry;
	enum q2_kind kind;
	uint8_t *table;
	int ret;

	memset(ext, 0, sizeof(*ext));
	ext->kind = off >= img->size ? Q2_EXT_ZERO : Q2_EXT_DATA;
	ext->len = len;
	if (off >= img->size)
		return 0; /* a backing file smaller than the disk reads as zeroes */
	if (len > img->size - off)
		ext->len = len = img->size - off;
	if (img->raw)
		return q2_map_raw(img, off, len, ext);
	if ((ret = q2_l2_table(img, gc, &table)) != 0)
		return ret;
	entry = q2_table_entry(img, table, gc);
	kind = q2_classify(img, entry);
	switch (kind) {
	case Q2_NORMAL:
		return q2_map_normal(img, table, gc, off, len, ext);
	case Q2_COMPRESSED_DATA:
		ext->kind = Q2_EXT_COMPRESSED;
		ext->img = img;
		ext->entry = entry;
		ext->skip = off & (img->cs - 1);
		ext->len = img->cs - ext->skip < len ? img->cs - ext->skip : len;
		return 0;
	case Q2_BAD:
		return q2_corrupt(img, "invalid L2 entry %#llx for guest offset %llu",
				  (unsigned long long)entry, (unsigned long long)off);
	default:
		break;
	}
	ext->len = q2_run(img, table, gc, q2_run_end(img, gc, off, len), kind) * img->cs -
		   (off & (img->cs - 1));
	ext->len = ext->len < len ? ext->len : len;
	if (kind == Q2_UNALLOCATED && img->backing != NULL)
		return q2_map(img->backing, off, ext->len, ext);
	ext->kind = Q2_EXT_ZERO;
	return 0;
}

/* ---- reading ---- */

static int q2_inflate(struct q2_image *img, size_t in_len)
{
	z_stream z;
	int ret;

	memset(&z, 0, sizeof(z));
	/* Raw deflate; the largest window accepts QEMU's smaller one. */
	if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
		return -ENOMEM;
	z.next_in = img->zin;
	z.avail_in = (uInt)in_len;
	z.next_out = img->zout;
	z.avail_out = (uInt)img->cs;
	ret = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	/* Decompression stops once it has a cluster: the stream may go on. */
	if (z.avail_out != 0 || (ret != Z_STREAM_END && ret != Z_OK && ret != Z_BUF_ERROR))
		return -EIO;
	return 0;
}

static int q2_compressed_buffers(struct q2_image *img)
{
	if (img->zin == NULL)
		img->zin = malloc(2 * img->cs);
	if (img->zout == NULL)
		img->zout = malloc(img->cs);
	return img->zin != NULL && img->zout != NULL ? 0 : -ENOMEM;
}

int q2_read_compressed(struct q2_image *img, uint64_t entry)
{
	unsigned x = q2_csize_shift(img);
	uint64_t off = entry & ((1ull << x) - 1), nsec = (entry >> x) & ((1ull << (62 - x)) - 1);
	uint64_t len = (nsec + 1) * 512 - (off & 511);
	int ret;

	if (img->zentry == entry && entry != 0)
		return 0;
	if ((ret = q2_compressed_buffers(img)) != 0)
		return ret;
	if (off >= img->file_size || (off >> 56) != 0)
		return q2_corrupt(img, "compressed cluster at %#llx lies outside the file",
				  (unsigned long long)off);
	/* The last compressed cluster may claim sectors past the end of the file. */
	if (len > img->file_size - off)
		len = img->file_size - off;
	img->zentry = 0;
	if ((ret = q2_pread(img, img->zin, len, off)) != 0)
		return ret;
	if (q2_inflate(img, len) != 0)
		return q2_corrupt(img, "compressed cluster at %#llx does not decompress",
				  (unsigned long long)off);
	img->zentry = entry;
	return 0;
}

static int q2_read_ext(const struct q2_ext *e, uint8_t *buf)
{
	int ret;

	switch (e->kind) {
	case Q2_EXT_ZERO:
		memset(buf, 0, e->len);
		return 0;
	case Q2_EXT_DATA:
		return q2_pread(e->img, buf, e->len, e->host);
	default:
		ret = q2_read_compressed(e->img, e->entry);
		if (ret == 0)
			memcpy(buf, e->img->zout + e->skip, e->len);
		return ret;
	}
}

int q2_read_sync(struct q2_image *img, uint64_t off, void *buf, uint64_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		struct q2_ext e;
		int ret = q2_map(img, off, len, &e);

		if (ret == 0)
			ret = q2_read_ext(&e, p);
		if (ret != 0)
			return ret;
		off += e.len;
		p += e.len;
		len -= e.len;
	}
	return 0;
}

/* ---- metadata ranges ---- */

const char *q2_meta_name(enum q2_meta_kind kind)
{
	static const char *const names[] = {
	    [Q2_META_HEADER] = "the header",	       [Q2_META_L1] = "the L1 table",
	    [Q2_META_REFTABLE] = "the refcount table", [Q2_META_SNAPSHOTS] = "the snapshot table",
	    [Q2_META_REFBLOCK] = "a refcount block",   [Q2_META_L2] = "an L2 table",
	};

	return names[kind];
}

/* The index of the first range that ends after start. */
static size_t q2_meta_search(const struct q2_image *img, uint64_t start)
{
	size_t lo = 0, hi = img->nmeta;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (img->meta[mid].end <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct q2_meta *q2_meta_find(const struct q2_image *img, uint64_t start, uint64_t len)
{
	size_t i = q2_meta_search(img, start);

	if (i < img->nmeta && img->meta[i].start < start + len)
		return &img->meta[i];
	return NULL;
}

int q2_meta_add(struct q2_image *img, uint64_t start, uint64_t len, enum q2_meta_kind kind)
{
	size_t i = q2_meta_search(img, start);

	if (i < img->nmeta && img->meta[i].start < start + len)
		return -EEXIST;
	if (img->nmeta == img->meta_cap) {
		size_t cap = img->meta_cap ? 2 * img->meta_cap : 64;
		struct q2_meta *m = realloc(img->meta, cap * sizeof(*m));

		if (m == NULL)
			return -ENOMEM;
		img->meta = m;
		img->meta_cap = cap;
	}
	memmove(&img->meta[i + 1], &img->meta[i], (img->nmeta - i) * sizeof(*img->meta));
	img->meta[i] = (struct q2_meta){.start = start, .end = start + len, .kind = kind};
	img->nmeta++;
	return 0;
}

void q2_meta_remove(struct q2_image *img, uint64_t start)
{
	size_t i = q2_meta_search(img, start);

	if (i >= img->nmeta || img->meta[i].start != start)
		return;
	memmove(&img->meta[i], &img->meta[i + 1], (img->nmeta - i - 1) * sizeof(*img->meta));
	img->nmeta--;
}
