/*
 * qcow2 allocation: refcounts (16-bit), free clusters, the refcount table's
 * growth, L2 updates and the flush order that keeps a crash harmless:
 *
 *   1. data and refcounts reach the disk (a refcount may run ahead of the
 *      tables: a crash then leaks a cluster, nothing worse);
 *   2. then the L2 tables that point at them, then the L1 table;
 *   3. only then are the clusters the tables stopped using freed (in
 *      memory, on disk at the next flush): no cluster is reused while a
 *      table on disk may still point at it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/qcow2_int.h"
#include "util/log.h"

static uint64_t q2_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- refcounts ---- */

/* The refcount block covering cluster c into *block, NULL when it has none. */
static int q2_refblock(struct q2_image *img, uint64_t c, uint8_t **block)
{
	uint64_t ti = c >> img->rb_bits, host;

	*block = NULL;
	if (ti >= img->rt_entries)
		return 0;
	host = img->reftable[ti] & Q2_OFFSET_MASK;
	if (host == 0)
		return 0;
	return q2_table_get(img, &img->rbc, ti, host, false, block);
}

static uint8_t *q2_rc_at(const struct q2_image *img, uint8_t *block, uint64_t c)
{
	return block + 2 * (c & ((1ull << img->rb_bits) - 1));
}

static unsigned q2_rc_read(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

int q2_refcount_add(struct q2_image *img, uint64_t first, uint64_t count, int delta)
{
	for (uint64_t c = first; c < first + count; c++) {
		uint8_t *block, *p;
		long rc;
		int ret = q2_refblock(img, c, &block);

		if (ret != 0)
			return ret;
		if (block == NULL)
			return q2_corrupt(img, "cluster %#llx has no refcount block",
					  (unsigned long long)(c << img->cb));
		p = q2_rc_at(img, block, c);
		rc = (long)q2_rc_read(p) + delta;
		if (rc < 0 || rc > (long)Q2_MAX_REFCOUNT)
			return q2_corrupt(img, "refcount of cluster %#llx out of range",
					  (unsigned long long)(c << img->cb));
		p[0] = (uint8_t)(rc >> 8);
		p[1] = (uint8_t)rc;
		q2_table_dirty(img, &img->rbc, c >> img->rb_bits);
		if (rc == 0 && c < img->free_hint)
			img->free_hint = c;
	}
	return 0;
}

/* ---- the refcount table ---- */

static void q2_dirty_range(uint64_t *lo, uint64_t *hi, uint64_t i)
{
	if (i < *lo)
		*lo = i;
	if (i + 1 > *hi)
		*hi = i + 1;
}

/* Writes host-order entries [lo, hi) of table t at off, big endian. */
static int q2_write_entries(struct q2_image *img, const uint64_t *t, uint64_t lo, uint64_t hi,
			    uint64_t off)
{
	uint8_t *buf;
	int ret;

	if (lo >= hi)
		return 0;
	buf = malloc((hi - lo) * 8);
	if (buf == NULL)
		return -ENOMEM;
	for (uint64_t i = lo; i < hi; i++)
		q2_put_be64(buf + 8 * (i - lo), t[i]);
	ret = q2_pwrite(img, buf, (hi - lo) * 8, off + lo * 8);
	free(buf);
	return ret;
}

/* A new refcount block for range ti at cluster c (at the end of the file). */
static int q2_refblock_create(struct q2_image *img, uint64_t ti, uint64_t c)
{
	uint8_t *block;
	int ret = q2_meta_add(img, c << img->cb, img->cs, Q2_META_REFBLOCK);

	if (ret != 0)
		return ret == -EEXIST ? q2_corrupt(img, "refcounts overlap metadata") : ret;
	ret = q2_table_get(img, &img->rbc, ti, 0, true, &block);
	if (ret != 0)
		return ret;
	img->reftable[ti] = c << img->cb;
	/* Written at the next flush: the block first, then the table entry. */
	q2_dirty_range(&img->rt_dirty_lo, &img->rt_dirty_hi, ti);
	q2_table_dirty(img, &img->rbc, ti);
	img->end_cluster = c + 1;
	return q2_refcount_add(img, c, 1, 1);
}

struct q2_growth {
	uint64_t entries; /* of the new table */
	uint64_t t0, tc;  /* the new table's clusters: [t0, t0 + tc) */
	uint64_t nb;	  /* new refcount blocks, right after it */
	uint64_t first_r; /* the ranges [t0, t0 + tc + nb) covers */
	uint64_t last_r;
};

static bool q2_range_lacks_block(const struct q2_image *img, uint64_t r)
{
	return r >= img->rt_entries || (img->reftable[r] & Q2_OFFSET_MASK) == 0;
}

/* Sizes the new table and the blocks that describe it: a fixed point, reached fast. */
static void q2_growth_plan(const struct q2_image *img, uint64_t need, struct q2_growth *g)
{
	uint64_t per = img->cs / 8;

	g->entries =
	    (q2_min(need > 2 * img->rt_entries ? need : 2 * img->rt_entries, UINT64_MAX / 16) +
	     per - 1) /
	    per * per;
	g->t0 = img->end_cluster;
	g->nb = 0;
	for (int i = 0; i < 64; i++) {
		uint64_t nb = 0;

		g->tc = g->entries / per;
		g->first_r = g->t0 >> img->rb_bits;
		g->last_r = (g->t0 + g->tc + g->nb - 1) >> img->rb_bits;
		if (g->last_r >= g->entries) {
			g->entries = (g->last_r + 1 + per - 1) / per * per;
			continue;
		}
		for (uint64_t r = g->first_r; r <= g->last_r; r++)
			nb += q2_range_lacks_block(img, r);
		if (nb == g->nb)
			return;
		g->nb = nb;
	}
}

/* The new clusters' refcounts: in the new blocks, or in existing ones (cached). */
static int q2_growth_counts(struct q2_image *img, const struct q2_growth *g, uint64_t *table,
			    uint8_t *blocks)
{
	uint64_t k = 0;

	for (uint64_t r = g->first_r; r <= g->last_r; r++)
		if (q2_range_lacks_block(img, r))
			table[r] = (g->t0 + g->tc + k++) << img->cb;
	for (uint64_t c = g->t0; c < g->t0 + g->tc + g->nb; c++) {
		uint64_t r = c >> img->rb_bits;
		int ret;

		if (q2_range_lacks_block(img, r)) {
			uint64_t b = (table[r] >> img->cb) - g->t0 - g->tc;

			if (table[r] == 0 || b >= g->nb)
				return -EIO; /* the plan did not settle: never seen */
			q2_rc_at(img, blocks + b * img->cs, c)[1] = 1;
		} else if ((ret = q2_refcount_add(img, c, 1, 1)) != 0) {
			return ret;
		}
	}
	return 0;
}

/* Writes the new blocks and table, then points the header at them. */
static int q2_growth_write(struct q2_image *img, const struct q2_growth *g, const uint64_t *table,
			   const uint8_t *blocks)
{
	uint8_t hdr[12];
	int ret;

	if ((ret = q2_pwrite(img, blocks, g->nb * img->cs, (g->t0 + g->tc) << img->cb)) != 0 ||
	    (ret = q2_write_entries(img, table, 0, g->entries, g->t0 << img->cb)) != 0 ||
	    (ret = q2_cache_write(img, &img->rbc)) != 0 || (ret = q2_datasync(img)) != 0)
		return ret;
	q2_put_be64(hdr, g->t0 << img->cb);
	q2_put_be32(hdr + 8, (uint32_t)g->tc);
	if ((ret = q2_pwrite(img, hdr, sizeof(hdr), Q2_HDR_RT_OFFSET)) != 0)
		return ret;
	return q2_datasync(img);
}

/* Switches to the new table in memory; the old one's clusters are free. */
static int q2_growth_adopt(struct q2_image *img, const struct q2_growth *g, uint64_t *table)
{
	uint64_t old = img->h.rt_offset, old_clusters = img->h.rt_clusters;
	int ret;

	free(img->reftable);
	img->reftable = table;
	img->rt_entries = g->entries;
	img->rt_dirty_lo = UINT64_MAX;
	img->rt_dirty_hi = 0;
	img->h.rt_offset = g->t0 << img->cb;
	img->h.rt_clusters = (uint32_t)g->tc;
	img->end_cluster = g->t0 + g->tc + g->nb;
	q2_meta_remove(img, old);
	if ((ret = q2_cache_resize(&img->rbc, g->entries)) != 0 ||
	    (ret = q2_meta_add(img, g->t0 << img->cb, g->tc << img->cb, Q2_META_REFTABLE)) != 0)
		return ret;
	for (uint64_t b = 0; b < g->nb; b++)
		if ((ret = q2_meta_add(img, (g->t0 + g->tc + b) << img->cb, img->cs,
				       Q2_META_REFBLOCK)) != 0)
			return ret;
	/* Nothing points at the old table since the header went to disk. */
	return q2_refcount_add(img, old >> img->cb, old_clusters, -1);
}

/* A bigger refcount table at the end of the file, with the blocks it needs. */
static int q2_reftable_grow(struct q2_image *img, uint64_t need)
{
	struct q2_growth g;
	uint64_t *table;
	uint8_t *blocks;
	int ret;

	q2_growth_plan(img, need, &g);
	if ((g.tc << img->cb) > Q2_MAX_REFTABLE_BYTES) {
		log_error("disk %s: the image has outgrown its refcount table (8 MiB)", img->path);
		return -ENOSPC;
	}
	if ((ret = q2_cache_write(img, &img->rbc)) != 0)
		return ret;
	table = calloc(g.entries, sizeof(*table));
	blocks = calloc(g.nb > 0 ? g.nb : 1, img->cs);
	if (table == NULL || blocks == NULL) {
		ret = -ENOMEM;
		goto fail;
	}
	memcpy(table, img->reftable, img->rt_entries * sizeof(*table));
	if ((ret = q2_growth_counts(img, &g, table, blocks)) != 0 ||
	    (ret = q2_growth_write(img, &g, table, blocks)) != 0)
		goto fail;
	free(blocks);
	return q2_growth_adopt(img, &g, table);
fail:
	free(table);
	free(blocks);
	return ret;
}

/* ---- allocating clusters ---- */

/* Free clusters below the end: [*first, *first + *count), *count 0 when none. */
static int q2_scan(struct q2_image *img, uint64_t max, uint64_t *first, uint64_t *count)
{
	uint64_t c = img->free_hint;

	*count = 0;
	while (c < img->end_cluster) {
		uint64_t range_end =
		    q2_min(((c >> img->rb_bits) + 1) << img->rb_bits, img->end_cluster);
		uint8_t *block;
		int ret = q2_refblock(img, c, &block);

		if (ret != 0)
			return ret;
		/* No block inside the file: not ours to use. */
		for (; block != NULL && c < range_end; c++) {
			uint64_t n = 0;

			while (c + n < range_end && n < max &&
			       q2_rc_read(q2_rc_at(img, block, c + n)) == 0 &&
			       q2_meta_find(img, (c + n) << img->cb, img->cs) == NULL)
				n++;
			if (n > 0) {
				*first = c;
				*count = n;
				img->free_hint = c + n;
				return 0;
			}
		}
		c = range_end;
	}
	img->free_hint = img->end_cluster;
	return 0;
}

/* Grows the file to cover the clusters just allocated at its end. */
static int q2_extend(struct q2_image *img)
{
	uint64_t end = img->end_cluster << img->cb;

	if (end <= img->file_size)
		return 0;
	if (ftruncate(img->fd, (off_t)end) < 0)
		return -errno;
	img->file_size = end;
	return 0;
}

static int q2_alloc_end(struct q2_image *img, uint64_t max, uint64_t *first, uint64_t *count)
{
	for (int tries = 0; tries < 8; tries++) {
		uint64_t c = img->end_cluster, ti = c >> img->rb_bits;
		int ret;

		if (ti >= img->rt_entries) {
			if ((ret = q2_reftable_grow(img, ti + 1)) != 0)
				return ret;
			continue;
		}
		if ((img->reftable[ti] & Q2_OFFSET_MASK) == 0) {
			if ((ret = q2_refblock_create(img, ti, c)) != 0)
				return ret;
			continue;
		}
		*first = c;
		*count = q2_min(max, ((ti + 1) << img->rb_bits) - c);
		if ((ret = q2_refcount_add(img, c, *count, 1)) != 0)
			return ret;
		img->end_cluster = c + *count;
		return q2_extend(img);
	}
	return -EIO;
}

int q2_alloc_run(struct q2_image *img, uint64_t n, uint64_t *first)
{
	/* Each turn either finds the blocks all there or adds one: it ends. */
	for (;;) {
		uint64_t c = img->end_cluster, last = (c + n - 1) >> img->rb_bits, r;
		int ret;

		if (last >= img->rt_entries) {
			if ((ret = q2_reftable_grow(img, last + 1)) != 0)
				return ret;
			continue;
		}
		for (r = c >> img->rb_bits; r <= last; r++)
			if ((img->reftable[r] & Q2_OFFSET_MASK) == 0)
				break;
		if (r <= last) {
			if ((ret = q2_refblock_create(img, r, c)) != 0)
				return ret;
			continue;
		}
		if ((ret = q2_refcount_add(img, c, n, 1)) != 0)
			return ret;
		*first = c;
		img->end_cluster = c + n;
		return q2_extend(img);
	}
}

int q2_alloc(struct q2_image *img, uint64_t max, uint64_t *first, uint64_t *count, bool *fresh)
{
	int ret = q2_scan(img, max, first, count);

	if (ret != 0)
		return ret;
	*fresh = *count == 0;
	if (*count > 0)
		return q2_refcount_add(img, *first, *count, 1);
	return q2_alloc_end(img, max, first, count);
}

/* ---- freeing, once the tables are on disk ---- */

static int q2_free_later(struct q2_image *img, uint64_t cluster)
{
	if (img->nfrees == img->frees_cap) {
		size_t cap = img->frees_cap ? 2 * img->frees_cap : 256;
		struct q2_free *f = realloc(img->frees, cap * sizeof(*f));

		if (f == NULL)
			return -ENOMEM;
		img->frees = f;
		img->frees_cap = cap;
	}
	img->frees[img->nfrees++] = (struct q2_free){.cluster = cluster, .stamp = img->stamp};
	return 0;
}

int q2_drop_entry(struct q2_image *img, uint64_t entry)
{
	enum q2_kind kind = q2_classify(img, entry);
	uint64_t first, count;
	int ret = 0;

	if (kind == Q2_NORMAL || (kind == Q2_ZEROES && (entry & Q2_OFFSET_MASK) != 0))
		return q2_free_later(img, (entry & Q2_OFFSET_MASK) >> img->cb);
	if (kind != Q2_COMPRESSED_DATA)
		return 0;
	q2_compressed_span(img, entry, &first, &count);
	for (uint64_t c = first; c < first + count && ret == 0; c++)
		ret = q2_free_later(img, c);
	return ret;
}

/* Frees what was dropped at or before stamp safe (nothing in flight still uses it). */
static void q2_apply_frees(struct q2_image *img, uint64_t safe)
{
	size_t kept = 0;

	for (size_t i = 0; i < img->nfrees; i++) {
		if (img->frees[i].stamp > safe)
			img->frees[kept++] = img->frees[i];
		else if (q2_refcount_add(img, img->frees[i].cluster, 1, -1) != 0)
			log_debug("disk %s: cannot free cluster %llu", img->path,
				  (unsigned long long)img->frees[i].cluster);
	}
	img->nfrees = kept;
}

/* ---- L2 tables ---- */

/* Guest cluster gc's L2 table exists afterwards (new ones are zeroes, dirty). */
static int q2_l2_ensure(struct q2_image *img, uint64_t gc)
{
	uint64_t l1i = gc >> img->l2_bits, first, count;
	uint8_t *table;
	bool fresh;
	int ret;

	if (l1i >= img->l1_entries)
		return -EIO;
	if ((img->l1[l1i] & Q2_OFFSET_MASK) != 0)
		return 0;
	if ((ret = q2_alloc(img, 1, &first, &count, &fresh)) != 0)
		return ret;
	if ((ret = q2_meta_add(img, first << img->cb, img->cs, Q2_META_L2)) != 0)
		return ret == -EEXIST ? q2_corrupt(img, "an L2 table would overlap metadata") : ret;
	/*
	 * The slot first: getting it may flush, and no flush may write an L1
	 * entry pointing at a table that is not on disk yet.
	 */
	if ((ret = q2_table_get(img, &img->l2c, l1i, 0, true, &table)) != 0)
		return ret;
	img->l1[l1i] = first << img->cb | Q2_COPIED;
	q2_dirty_range(&img->l1_dirty_lo, &img->l1_dirty_hi, l1i);
	q2_table_dirty(img, &img->l2c, l1i);
	return 0;
}

static void q2_table_set(struct q2_image *img, uint8_t *table, uint64_t gc, uint64_t entry)
{
	q2_put_be64(table + 8 * (gc & ((1ull << img->l2_bits) - 1)), entry);
	q2_table_dirty(img, &img->l2c, gc >> img->l2_bits);
}

/* ---- writes ---- */

/* A cluster written in place: its refcount is one and it is plain data. */
static bool q2_in_place(const struct q2_image *img, uint64_t entry)
{
	return (entry & Q2_COPIED) && q2_classify(img, entry) == Q2_NORMAL;
}

/* A zero cluster whose own preallocated cluster can take the data. */
static bool q2_reusable(const struct q2_image *img, uint64_t entry)
{
	return (entry & Q2_COPIED) && q2_classify(img, entry) == Q2_ZEROES &&
	       (entry & Q2_OFFSET_MASK) != 0;
}

/* The data clusters a write goes to must be data: never the image's metadata. */
static int q2_check_target(struct q2_image *img, uint64_t host, uint64_t len)
{
	const struct q2_meta *m = q2_meta_find(img, host, len);

	if (host - (host & (img->cs - 1)) >= img->file_size)
		return q2_corrupt(img, "data cluster at %#llx lies outside the file",
				  (unsigned long long)host);
	if (m != NULL)
		return q2_corrupt(img, "data cluster at %#llx overlaps %s",
				  (unsigned long long)host, q2_meta_name(m->kind));
	return 0;
}

static int q2_plan_in_place(struct q2_image *img, const uint8_t *table, uint64_t gc, uint64_t off,
			    uint64_t len, struct q2_wplan *p)
{
	uint64_t gc_end = q2_run_end(img, gc, off, len), n = 1;
	uint64_t cluster = q2_table_entry(img, table, gc) & Q2_OFFSET_MASK;

	while (gc + n < gc_end) {
		uint64_t next = q2_table_entry(img, table, gc + n);

		if (!q2_in_place(img, next) || (next & Q2_OFFSET_MASK) != cluster + n * img->cs)
			break;
		n++;
	}
	p->host = cluster + (off & (img->cs - 1));
	p->len = q2_min(len, n * img->cs - (off & (img->cs - 1)));
	return q2_check_target(img, p->host, p->len);
}

int q2_write_plan(struct q2_image *img, uint64_t off, uint64_t len, struct q2_wplan *p)
{
	uint64_t gc = off >> img->cb, entry, gc_end;
	uint8_t *table;
	int ret = q2_l2_table(img, gc, &table);

	memset(p, 0, sizeof(*p));
	if (ret != 0)
		return ret;
	entry = q2_table_entry(img, table, gc);
	if (q2_classify(img, entry) == Q2_BAD)
		return q2_corrupt(img, "invalid L2 entry %#llx for guest offset %llu",
				  (unsigned long long)entry, (unsigned long long)off);
	if (q2_in_place(img, entry))
		return q2_plan_in_place(img, table, gc, off, len, p);
	p->alloc = true;
	p->g = gc;
	p->n = 1;
	if (q2_reusable(img, entry)) {
		p->reuse = true;
		p->h = (entry & Q2_OFFSET_MASK) >> img->cb;
		return q2_check_target(img, p->h << img->cb, img->cs);
	}
	gc_end = q2_run_end(img, gc, off, len);
	while (gc + p->n < gc_end) {
		uint64_t next = q2_table_entry(img, table, gc + p->n);

		if (q2_in_place(img, next) || q2_reusable(img, next) ||
		    q2_classify(img, next) == Q2_BAD)
			break;
		p->n++;
	}
	return 0;
}

static bool q2_all_zero(const uint8_t *p, uint64_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* Copies the old contents of guest bytes [goff, goff + len) into the new clusters. */
static int q2_cow(struct q2_image *img, const struct q2_wplan *p, uint64_t goff, uint64_t len,
		  bool fresh)
{
	int ret = 0;

	if (len == 0)
		return 0;
	if (p->reuse)
		memset(img->cow, 0, len); /* a zero cluster's old contents */
	else
		ret = q2_read_sync(img, goff, img->cow, len);
	if (ret != 0)
		return ret;
	/* A cluster new at the end of the file already reads as zeroes. */
	if (fresh && q2_all_zero(img->cow, len))
		return 0;
	return q2_pwrite(img, img->cow, len, (p->h << img->cb) + (goff - (p->g << img->cb)));
}

int q2_write_prepare(struct q2_image *img, uint64_t off, uint64_t len, struct q2_wplan *p)
{
	uint64_t start, end;
	bool fresh = false;
	int ret = 0;

	if (!p->reuse && ((ret = q2_l2_ensure(img, p->g)) != 0 ||
			  (ret = q2_alloc(img, p->n, &p->h, &p->n, &fresh)) != 0))
		return ret;
	if (!p->reuse && (ret = q2_check_target(img, p->h << img->cb, p->n << img->cb)) != 0)
		goto undo;
	start = p->g << img->cb;
	end = (p->g + p->n) << img->cb;
	p->host = (p->h << img->cb) + (off - start);
	p->len = q2_min(len, end - off);
	if ((ret = q2_cow(img, p, start, off - start, fresh)) != 0 ||
	    (ret = q2_cow(img, p, off + p->len, end - off - p->len, fresh)) != 0)
		goto undo;
	return 0;
undo:
	q2_write_undo(img, p);
	return ret;
}

int q2_write_publish(struct q2_image *img, const struct q2_wplan *p)
{
	uint8_t *table;
	int ret = q2_l2_table(img, p->g, &table);

	if (ret == 0 && table == NULL)
		ret = -EIO;
	for (uint64_t i = 0; i < p->n && ret == 0; i++) {
		uint64_t old = q2_table_entry(img, table, p->g + i);

		q2_table_set(img, table, p->g + i, (p->h + i) << img->cb | Q2_COPIED);
		if (!p->reuse)
			ret = q2_drop_entry(img, old);
	}
	return ret;
}

void q2_write_undo(struct q2_image *img, const struct q2_wplan *p)
{
	/* Nothing on disk points at them yet: they are free at once. */
	if (!p->reuse && p->n > 0 && q2_refcount_add(img, p->h, p->n, -1) != 0)
		log_debug("disk %s: cannot free clusters after a failed write", img->path);
}

int q2_write_sync(struct q2_image *img, uint64_t off, const void *buf, uint64_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		struct q2_wplan plan;
		int ret = q2_write_plan(img, off, len, &plan);

		if (ret == 0 && plan.alloc)
			ret = q2_write_prepare(img, off, len, &plan);
		if (ret != 0)
			return ret;
		ret = q2_pwrite(img, p, plan.len, plan.host);
		if (ret != 0 && plan.alloc)
			q2_write_undo(img, &plan);
		if (ret == 0 && plan.alloc)
			ret = q2_write_publish(img, &plan);
		if (ret != 0)
			return ret;
		off += plan.len;
		p += plan.len;
		len -= plan.len;
	}
	return 0;
}

/* ---- zeroes and discards ---- */

static uint64_t q2_zero_entry(const struct q2_image *img, uint64_t old, enum q2_zero_how how)
{
	enum q2_kind kind = q2_classify(img, old);

	if (how == Q2_ZERO_KEEP && (q2_in_place(img, old) || kind == Q2_ZEROES))
		return old | Q2_ZERO; /* keeps its cluster, reads as zeroes */
	/* A discard is a hint: what the backing file shows may stay. */
	if (how == Q2_DISCARD && (kind == Q2_UNALLOCATED || kind == Q2_ZEROES))
		return old;
	if (img->backing == NULL && how != Q2_ZERO_KEEP)
		return 0; /* unallocated reads as zeroes without a backing file */
	if (img->backing == NULL && kind == Q2_UNALLOCATED)
		return 0;
	return Q2_ZERO;
}

/* Whether the new entry still uses the old one's clusters. */
static bool q2_zero_keeps(uint64_t old, uint64_t entry)
{
	return (entry & Q2_OFFSET_MASK) != 0 && (entry & Q2_OFFSET_MASK) == (old & Q2_OFFSET_MASK);
}

int q2_zero_clusters(struct q2_image *img, uint64_t g, uint64_t n, enum q2_zero_how how)
{
	uint8_t *table;
	int ret = q2_l2_table(img, g, &table);

	for (uint64_t gc = g; gc < g + n && ret == 0; gc++) {
		uint64_t old = q2_table_entry(img, table, gc), entry = q2_zero_entry(img, old, how);

		if (entry == old || q2_classify(img, old) == Q2_BAD)
			continue;
		if (table == NULL) {
			/* Allocating the table may evict others: fetch it again. */
			if ((ret = q2_l2_ensure(img, gc)) != 0 ||
			    (ret = q2_l2_table(img, gc, &table)) != 0)
				break;
		}
		q2_table_set(img, table, gc, entry);
		if (!q2_zero_keeps(old, entry))
			ret = q2_drop_entry(img, old);
	}
	return ret;
}

/* ---- flush ---- */

bool q2_dirty(const struct q2_image *img)
{
	return img->rbc.ndirty > 0 || img->l2c.ndirty > 0 || img->l1_dirty_hi > 0 ||
	       img->rt_dirty_hi > 0 || img->nfrees > 0;
}

/* Refcount blocks, then the table entries pointing at new ones. */
static int q2_flush_refcounts(struct q2_image *img)
{
	int ret = q2_cache_write(img, &img->rbc);

	if (ret != 0 || img->rt_dirty_hi == 0)
		return ret;
	if ((ret = q2_datasync(img)) != 0 ||
	    (ret = q2_write_entries(img, img->reftable, img->rt_dirty_lo, img->rt_dirty_hi,
				    img->h.rt_offset)) != 0)
		return ret;
	img->rt_dirty_lo = UINT64_MAX;
	img->rt_dirty_hi = 0;
	return 0;
}

/* L2 tables, then the L1 entries pointing at new ones. */
static int q2_flush_tables(struct q2_image *img)
{
	int ret = q2_cache_write(img, &img->l2c);

	if (ret != 0 || img->l1_dirty_hi == 0)
		return ret;
	if ((ret = q2_datasync(img)) != 0 ||
	    (ret = q2_write_entries(img, img->l1, img->l1_dirty_lo, img->l1_dirty_hi,
				    img->h.l1_offset)) != 0)
		return ret;
	img->l1_dirty_lo = UINT64_MAX;
	img->l1_dirty_hi = 0;
	return 0;
}

int q2_flush(struct q2_image *img, uint64_t safe)
{
	bool tables;
	int ret;

	if (img->readonly)
		return 0;
	tables = img->l2c.ndirty > 0 || img->l1_dirty_hi > 0;
	if ((ret = q2_flush_refcounts(img)) != 0 || (ret = q2_datasync(img)) != 0)
		return ret;
	if (tables && ((ret = q2_flush_tables(img)) != 0 || (ret = q2_datasync(img)) != 0))
		return ret;
	q2_apply_frees(img, safe);
	return 0;
}

int q2_flush_all(struct q2_image *img)
{
	int ret = q2_flush(img, UINT64_MAX);

	/* The frees the first flush made are refcount changes of their own. */
	if (ret == 0 && q2_dirty(img))
		ret = q2_flush(img, UINT64_MAX);
	return ret;
}
