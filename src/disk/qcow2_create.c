/* qcow2: new images, and changing an image's virtual size. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "disk/qcow2_int.h"
#include "util/log.h"

/* Where the metadata of a new image goes, in clusters: header, refcounts, L1. */
struct q2_layout {
	unsigned cb;
	uint64_t cs;
	uint64_t l1_entries, l1_clusters;
	uint64_t rt_clusters, blocks;
	uint64_t total; /* clusters in use */
};

static uint64_t q2_div_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

/* The L1 entries a virtual size needs; 0 when it is beyond what qcow2 can map. */
static uint64_t q2_l1_needed(uint64_t size, unsigned cb)
{
	uint64_t per = 1ull << (cb + cb - 3); /* bytes an L2 table maps */

	return q2_div_up(size, per);
}

static void q2_plan_layout(struct q2_layout *l, uint64_t size, unsigned cb)
{
	uint64_t per_block = (1ull << cb) / 2; /* 16-bit refcounts */

	l->cb = cb;
	l->cs = 1ull << cb;
	l->l1_entries = q2_l1_needed(size, cb);
	l->l1_clusters = q2_div_up(l->l1_entries * 8, l->cs);
	if (l->l1_clusters == 0)
		l->l1_clusters = 1;
	l->rt_clusters = l->blocks = 1;
	/* More blocks may need a bigger table, which may need more blocks: settles fast. */
	for (;;) {
		uint64_t total = 1 + l->rt_clusters + l->blocks + l->l1_clusters;
		uint64_t blocks = q2_div_up(total, per_block);
		uint64_t rt = q2_div_up(blocks * 8, l->cs);

		l->total = total;
		if (blocks == l->blocks && rt == l->rt_clusters)
			return;
		l->blocks = blocks;
		l->rt_clusters = rt;
	}
}

/* The first cluster: header, backing format extension, end marker, backing name. */
static int q2_build_header(uint8_t *b, const struct q2_layout *l, uint64_t size,
			   const char *backing, enum disk_format bformat)
{
	size_t at = Q2_V3_HEADER;

	q2_put_be32(b, Q2_MAGIC);
	q2_put_be32(b + 4, 3);
	q2_put_be32(b + 20, l->cb);
	q2_put_be64(b + Q2_HDR_SIZE, size);
	q2_put_be32(b + Q2_HDR_L1_SIZE, (uint32_t)l->l1_entries);
	q2_put_be64(b + Q2_HDR_L1_OFFSET, (1 + l->rt_clusters + l->blocks) << l->cb);
	q2_put_be64(b + Q2_HDR_RT_OFFSET, l->cs);
	q2_put_be32(b + Q2_HDR_RT_CLUSTERS, (uint32_t)l->rt_clusters);
	q2_put_be32(b + 96, 4); /* refcount order: 16 bits */
	q2_put_be32(b + Q2_HDR_HEADER_LENGTH, Q2_V3_HEADER);
	if (backing != NULL) {
		const char *name = disk_format_name(bformat);
		size_t len = strlen(backing), flen = strlen(name);

		if (at + 8 + ((flen + 7) & ~(size_t)7) + 8 + len > l->cs)
			return -ENAMETOOLONG;
		q2_put_be32(b + at, Q2_EXT_BACKING_FORMAT);
		q2_put_be32(b + at + 4, (uint32_t)flen);
		memcpy(b + at + 8, name, flen);
		at += 8 + ((flen + 7) & ~(size_t)7);
		at += 8; /* the end marker: zeroes */
		q2_put_be64(b + 8, at);
		q2_put_be32(b + 16, (uint32_t)len);
		memcpy(b + at, backing, len);
	}
	return 0;
}

/* Refcount table and blocks: every cluster of the layout is used once. */
static void q2_build_refcounts(uint8_t *rt, uint8_t *blocks, const struct q2_layout *l)
{
	for (uint64_t i = 0; i < l->blocks; i++)
		q2_put_be64(rt + 8 * i, (1 + l->rt_clusters + i) << l->cb);
	for (uint64_t c = 0; c < l->total; c++)
		blocks[2 * c + 1] = 1;
}

int q2_format(int fd, const char *path, uint64_t size, const char *backing,
	      enum disk_format bformat, unsigned cb)
{
	struct q2_layout l;
	struct q2_image img = {.fd = fd, .path = (char *)path};
	uint8_t *hdr, *rt, *blocks;
	int ret;

	q2_plan_layout(&l, size, cb);
	hdr = calloc(1, l.cs);
	rt = calloc(l.rt_clusters, l.cs);
	blocks = calloc(l.blocks, l.cs);
	ret = hdr == NULL || rt == NULL || blocks == NULL ? -ENOMEM : 0;
	if (ret == 0 && (ret = q2_build_header(hdr, &l, size, backing, bformat)) == -ENAMETOOLONG)
		log_error("disk %s: the backing file name is too long for %llu-byte clusters", path,
			  (unsigned long long)l.cs);
	if (ret == 0) {
		q2_build_refcounts(rt, blocks, &l);
		/* The L1 table is zeroes: a hole, whatever the size. */
		if (ftruncate(fd, (off_t)(l.total << cb)) < 0 ||
		    (ret = q2_pwrite(&img, hdr, l.cs, 0)) != 0 ||
		    (ret = q2_pwrite(&img, rt, l.rt_clusters << cb, l.cs)) != 0 ||
		    (ret = q2_pwrite(&img, blocks, l.blocks << cb, (1 + l.rt_clusters) << cb)) != 0)
			ret = ret != 0 ? ret : -errno;
		if (ret != 0)
			log_error("disk %s: cannot write it: %s", path, strerror(-ret));
	}
	free(hdr);
	free(rt);
	free(blocks);
	return ret;
}

/* ---- qcow2_create ---- */

static int q2_parse_bformat(const char *name, enum disk_format *format)
{
	*format = DISK_FORMAT_AUTO;
	if (name == NULL || disk_format_parse(name, format) == 0)
		return 0;
	log_error("backing format '%s' is not supported (use qcow2 or raw)", name);
	return -EINVAL;
}

/* Opens the whole backing chain once: it must work, and it tells the format and size. */
static int q2_check_backing(const char *path, const char *backing, enum disk_format *format,
			    uint64_t *size)
{
	char bpath[PATH_MAX];
	struct q2_image *b;
	int ret;

	if (q2_backing_path(path, backing, bpath, sizeof(bpath)) != 0) {
		log_error("disk %s: the backing file name is too long", path);
		return -ENAMETOOLONG;
	}
	if ((ret = q2_open(&b, bpath, -1, *format, true, Q2_OPEN_BACKING)) != 0)
		return ret;
	*format = b->raw ? DISK_FORMAT_RAW : DISK_FORMAT_QCOW2;
	if (*size == 0)
		*size = (b->size + DISK_SECTOR - 1) / DISK_SECTOR * DISK_SECTOR;
	q2_close(b);
	return 0;
}

int q2_check_new_size(const char *path, uint64_t size, unsigned cb)
{
	if (size == 0 || size % DISK_SECTOR != 0) {
		log_error("disk %s: the size must be a positive multiple of 512 bytes (%llu)", path,
			  (unsigned long long)size);
		return -EINVAL;
	}
	if (size > Q2_MAX_SIZE || q2_l1_needed(size, cb) * 8 > Q2_MAX_L1_BYTES) {
		log_error("disk %s: %llu bytes is too large for %u-byte clusters", path,
			  (unsigned long long)size, 1u << cb);
		return -EINVAL;
	}
	return 0;
}

int qcow2_create(const char *path, uint64_t size, const char *backing, const char *backing_format,
		 unsigned cluster_bits)
{
	enum disk_format bformat;
	struct disk_tmp tmp;
	int ret;

	if (cluster_bits == 0)
		cluster_bits = QCOW2_DEFAULT_CLUSTER_BITS;
	if (cluster_bits < QCOW2_MIN_CLUSTER_BITS || cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
		log_error("disk %s: clusters of 2^%u bytes are out of range (512 B to 2 MiB)", path,
			  cluster_bits);
		return -EINVAL;
	}
	if ((ret = q2_parse_bformat(backing_format, &bformat)) != 0)
		return ret;
	if (backing != NULL && strlen(backing) > Q2_MAX_BACKING_NAME) {
		log_error("disk %s: the backing file name is longer than 1023 bytes", path);
		return -ENAMETOOLONG;
	}
	if ((backing != NULL && (ret = q2_check_backing(path, backing, &bformat, &size)) != 0) ||
	    (ret = q2_check_new_size(path, size, cluster_bits)) != 0 ||
	    (ret = disk_tmp_create(&tmp, path)) != 0)
		return ret;
	if ((ret = q2_format(tmp.fd, path, size, backing, bformat, cluster_bits)) != 0 ||
	    (ret = disk_tmp_commit(&tmp)) != 0) {
		disk_tmp_abort(&tmp);
		return ret;
	}
	return 0;
}

/* ---- resizing ---- */

/* Whether a guest cluster at or past gc holds data (shrinking would lose it). */
static int q2_data_past(struct q2_image *img, uint64_t gc, bool *found)
{
	uint64_t end = (img->size + img->cs - 1) >> img->cb;

	*found = false;
	while (gc < end && !*found) {
		uint64_t entry;
		enum q2_kind kind;
		int ret;

		if ((img->l1[gc >> img->l2_bits] & Q2_OFFSET_MASK) == 0) {
			gc = ((gc >> img->l2_bits) + 1) << img->l2_bits;
			continue;
		}
		if ((ret = q2_l2_entry(img, gc, &entry)) != 0)
			return ret;
		kind = q2_classify(img, entry);
		*found = kind == Q2_NORMAL || kind == Q2_COMPRESSED_DATA || kind == Q2_BAD ||
			 (entry & Q2_OFFSET_MASK) != 0;
		gc++;
	}
	return 0;
}

/* A bigger L1 table at the end of the file; the header points at it once it is on disk. */
static int q2_grow_l1(struct q2_image *img, uint64_t entries, uint8_t *hdr)
{
	uint64_t clusters = q2_div_up(entries * 8, img->cs), first;
	uint64_t old = img->h.l1_offset, old_clusters = q2_div_up(img->l1_entries * 8, img->cs);
	uint64_t *l1 = calloc(entries, sizeof(*l1));
	int ret;

	if (l1 == NULL)
		return -ENOMEM;
	memcpy(l1, img->l1, img->l1_entries * sizeof(*l1));
	if ((ret = q2_alloc_run(img, clusters, &first)) != 0 ||
	    (ret = q2_meta_add(img, first << img->cb, clusters << img->cb, Q2_META_L1)) != 0) {
		free(l1);
		return ret;
	}
	free(img->l1);
	img->l1 = l1;
	img->l1_entries = entries;
	img->h.l1_offset = first << img->cb;
	img->l1_dirty_lo = 0;
	img->l1_dirty_hi = entries;
	q2_put_be32(hdr + Q2_HDR_L1_SIZE - Q2_HDR_SIZE, (uint32_t)entries);
	q2_put_be64(hdr + Q2_HDR_L1_OFFSET - Q2_HDR_SIZE, first << img->cb);
	if ((ret = q2_cache_resize(&img->l2c, entries)) != 0 || (ret = q2_flush_all(img)) != 0)
		return ret;
	if (old != 0 && old_clusters > 0) {
		q2_meta_remove(img, old);
		/* Freed once the header no longer names it: after the write below. */
		img->stamp = 0;
		for (uint64_t c = 0; c < old_clusters; c++)
			if ((ret = q2_drop_entry(img, (old + (c << img->cb)) | Q2_COPIED)) != 0)
				return ret;
	}
	return 0;
}

int q2_resize(struct q2_image *img, uint64_t size, bool shrink)
{
	uint8_t hdr[24]; /* size, crypt, l1_size, l1_offset: bytes 24..47 */
	uint64_t entries = q2_l1_needed(size, img->cb);
	bool data = false;
	int ret;

	if ((ret = q2_check_new_size(img->path, size, img->cb)) != 0)
		return ret;
	if (size < img->size && (ret = q2_data_past(img, (size + img->cs - 1) >> img->cb, &data)))
		return ret;
	if (size < img->size && (!shrink || data)) {
		log_error("disk %s: %s", img->path,
			  !shrink ? "shrinking loses data: give --shrink to do it anyway"
				  : "it has data past the new size: refusing to shrink it");
		return -EINVAL;
	}
	q2_put_be64(hdr, size);
	q2_put_be32(hdr + 8, img->h.crypt_method);
	q2_put_be32(hdr + 12, (uint32_t)img->l1_entries);
	q2_put_be64(hdr + 16, img->h.l1_offset);
	if (entries > img->l1_entries && (ret = q2_grow_l1(img, entries, hdr)) != 0)
		return ret;
	if ((ret = q2_pwrite(img, hdr, sizeof(hdr), Q2_HDR_SIZE)) != 0 ||
	    (ret = q2_datasync(img)) != 0)
		return ret;
	img->size = img->h.size = size;
	return q2_flush_all(img);
}
