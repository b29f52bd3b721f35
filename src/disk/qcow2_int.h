/*
 * qcow2 inside src/disk: one opened image file (struct q2_image) with its
 * tables, caches and allocator, used synchronously. qcow2.c builds the
 * asynchronous disk backend on it (data through io_uring, metadata here),
 * image.c the offline operations (info, convert, resize).
 *
 * Byte order: the L1 table and the refcount table are kept in host order;
 * cached L2 tables and refcount blocks stay as on disk (big endian).
 */
#ifndef TABIQUE_DISK_QCOW2_INT_H
#define TABIQUE_DISK_QCOW2_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "disk/disk.h"

#define Q2_MAGIC	      0x514649fbu /* "QFI\xfb" */
#define Q2_V2_HEADER	      72u
#define Q2_V3_HEADER	      104u
#define Q2_MAX_L1_BYTES	      (32u << 20) /* QEMU's limits: images beyond them are not QEMU's */
#define Q2_MAX_REFTABLE_BYTES (8u << 20)
#define Q2_MAX_SNAPSHOTS      65536u
#define Q2_MAX_BACKING_NAME   1023u
#define Q2_MAX_FORMAT_NAME    16u
#define Q2_MAX_SIZE	      (1ull << 61) /* keeps every offset sum far from overflowing */
#define Q2_MAX_REFCOUNT	      0xffffu

/* Table entries. */
#define Q2_COPIED      (1ull << 63) /* refcount exactly one: written in place */
#define Q2_COMPRESSED  (1ull << 62)
#define Q2_ZERO	       1ull		     /* v3: the cluster reads as zeroes */
#define Q2_OFFSET_MASK 0x00fffffffffffe00ull /* bits 9..55 */
#define Q2_L1_RESERVED 0x7f000000000001ffull
#define Q2_L2_RESERVED 0x3f000000000001feull

/* Incompatible feature bits. */
#define Q2_INCOMPAT_DIRTY	1ull
#define Q2_INCOMPAT_CORRUPT	2ull
#define Q2_INCOMPAT_DATA_FILE	4ull
#define Q2_INCOMPAT_COMPRESSION 8ull
#define Q2_INCOMPAT_EXTL2	16ull
#define Q2_INCOMPAT_KNOWN	31ull

/* Header field offsets that get rewritten. */
#define Q2_HDR_SIZE	     24
#define Q2_HDR_L1_SIZE	     36
#define Q2_HDR_L1_OFFSET     40
#define Q2_HDR_RT_OFFSET     48
#define Q2_HDR_RT_CLUSTERS   56
#define Q2_HDR_INCOMPATIBLE  72
#define Q2_HDR_AUTOCLEAR     88
#define Q2_HDR_HEADER_LENGTH 100

/* Header extensions. */
#define Q2_EXT_END	      0u
#define Q2_EXT_BACKING_FORMAT 0xe2792acau
#define Q2_EXT_FEATURE_NAMES  0x6803f857u

struct q2_header {
	uint32_t version;
	uint64_t backing_offset;
	uint32_t backing_len;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt_method;
	uint32_t l1_size;
	uint64_t l1_offset;
	uint64_t rt_offset;
	uint32_t rt_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompatible, compatible, autoclear;
	uint32_t refcount_order;
	uint32_t header_length;
	uint8_t compression_type;
};

/* A cache of one-cluster tables (L2 tables or refcount blocks) by table index. */
struct q2_slot {
	uint64_t key;	/* L1 index or refcount table index */
	uint64_t stamp; /* last use: the least recent one goes */
	uint8_t *buf;	/* one cluster, allocated on first use */
	bool used, dirty;
};

struct q2_cache {
	struct q2_slot *slots;
	unsigned nslots;
	uint32_t *where; /* key -> slot + 1; 0: not cached */
	uint64_t nkeys;
	uint64_t clock;
	unsigned ndirty;
	bool is_l2;
};

/* What a range of the file holds, for the overlap checks. */
enum q2_meta_kind {
	Q2_META_HEADER,
	Q2_META_L1,
	Q2_META_REFTABLE,
	Q2_META_SNAPSHOTS,
	Q2_META_REFBLOCK,
	Q2_META_L2,
};

struct q2_meta {
	uint64_t start, end; /* bytes of the file */
	enum q2_meta_kind kind;
};

/* A cluster to free once the tables that dropped it are on disk. */
struct q2_free {
	uint64_t cluster;
	uint64_t stamp; /* the engine's clock when it was dropped */
};

struct q2_image {
	char *path;
	int fd;
	bool own_fd;
	bool readonly;
	bool raw;	    /* a raw backing file: its bytes are the disk */
	uint64_t size;	    /* virtual size */
	uint64_t file_size; /* grows with allocations */
	struct q2_header h;
	unsigned cb;	  /* cluster bits */
	uint64_t cs;	  /* cluster size */
	unsigned l2_bits; /* log2 of the entries in an L2 table */
	unsigned rb_bits; /* log2 of the entries in a refcount block */
	uint64_t *l1;
	uint64_t l1_entries;		   /* h.l1_size */
	uint64_t l1_dirty_lo, l1_dirty_hi; /* entries to write back: [lo, hi) */
	uint64_t *reftable;
	uint64_t rt_entries;
	uint64_t rt_dirty_lo, rt_dirty_hi; /* entries to write back: [lo, hi) */
	struct q2_cache l2c, rbc;
	struct q2_meta *meta; /* sorted by start, never overlapping */
	size_t nmeta, meta_cap;
	uint64_t end_cluster; /* past the file and every allocated cluster */
	uint64_t free_hint;   /* no free cluster below it */
	struct q2_free *frees;
	size_t nfrees, frees_cap;
	uint64_t stamp;	     /* the engine's clock (0 when used synchronously) */
	uint8_t *cow;	     /* one cluster: copy-on-write buffer */
	uint8_t *zin, *zout; /* compressed clusters: the stream (two clusters), the data */
	uint64_t zentry;     /* the L2 entry whose data is in zout; 0: none */
	bool complained;     /* a corruption was reported once already */
	char *backing_name;  /* as stored in the header; NULL: none */
	enum disk_format backing_format;
	struct q2_image *backing;
};

/* ---- qcow2_open.c ---- */

#define Q2_OPEN_BACKING 1u /* open the backing chain too (read-only, read-locked) */
#define Q2_OPEN_NOLOCK	2u /* no lock: only the header is read (image info) */

/*
 * Opens path as format (AUTO probes) read-only or read-write: the file, or
 * fd when >= 0 (then neither closed nor locked here: disk_open did both),
 * else with an OFD lock (read or write) on it unless Q2_OPEN_NOLOCK.
 * flags: Q2_OPEN_*. Returns 0, or a negative errno after one line naming
 * the file at fault.
 */
int q2_open(struct q2_image **out, const char *path, int fd, enum disk_format format, bool readonly,
	    unsigned flags);

/* Closes the image and its backing chain, without flushing; NULL is fine. */
void q2_close(struct q2_image *img);

/* Resolves a backing name against the image's directory into out[outlen]. */
int q2_backing_path(const char *image, const char *name, char *out, size_t outlen);

/* ---- qcow2_meta.c ---- */

uint32_t q2_be32(const uint8_t *p);
uint64_t q2_be64(const uint8_t *p);
void q2_put_be32(uint8_t *p, uint32_t v);
void q2_put_be64(uint8_t *p, uint64_t v);

int q2_pread(struct q2_image *img, void *buf, size_t len, uint64_t off);
int q2_pwrite(struct q2_image *img, const void *buf, size_t len, uint64_t off);
int q2_datasync(struct q2_image *img);

/* Reports corruption once per image (one line naming the file); returns -EIO. */
int q2_corrupt(struct q2_image *img, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int q2_cache_init(struct q2_cache *c, unsigned nslots, uint64_t nkeys, bool is_l2);
void q2_cache_free(struct q2_cache *c);
int q2_cache_resize(struct q2_cache *c, uint64_t nkeys);

/*
 * The refcount block / L2 table with index key into *buf (one cluster, big
 * endian): loaded from host, or zeroes when fresh. It stays valid until the
 * next call that may load another table.
 */
int q2_table_get(struct q2_image *img, struct q2_cache *c, uint64_t key, uint64_t host, bool fresh,
		 uint8_t **buf);
void q2_table_dirty(struct q2_image *img, struct q2_cache *c, uint64_t key);
/* Writes every dirty table of c back. */
int q2_cache_write(struct q2_image *img, struct q2_cache *c);

/* Guest cluster gc's L2 table into *table (big endian), NULL when unallocated. */
int q2_l2_table(struct q2_image *img, uint64_t gc, uint8_t **table);
/* Guest cluster gc's entry in its table; 0 when table is NULL. */
uint64_t q2_table_entry(const struct q2_image *img, const uint8_t *table, uint64_t gc);
/* The L2 entry of guest cluster gc; 0 when its L2 table is unallocated. */
int q2_l2_entry(struct q2_image *img, uint64_t gc, uint64_t *entry);
/* The first guest cluster past [off, off + len), kept inside gc's L2 table. */
uint64_t q2_run_end(const struct q2_image *img, uint64_t gc, uint64_t off, uint64_t len);

enum q2_kind {
	Q2_UNALLOCATED, /* the backing file's, or zeroes */
	Q2_ZEROES,	/* reads as zeroes (the v3 zero flag) */
	Q2_NORMAL,	/* data at entry & Q2_OFFSET_MASK */
	Q2_COMPRESSED_DATA,
	Q2_BAD,
};
enum q2_kind q2_classify(const struct q2_image *img, uint64_t entry);

/* Host clusters a compressed entry occupies: [*first, *first + *count). */
void q2_compressed_span(const struct q2_image *img, uint64_t entry, uint64_t *first,
			uint64_t *count);

enum q2_ext_kind {
	Q2_EXT_ZERO,
	Q2_EXT_DATA,
	Q2_EXT_COMPRESSED,
};

/* Where the disk's bytes [off, off + len) start: len shrinks to one kind. */
struct q2_ext {
	enum q2_ext_kind kind;
	struct q2_image *img; /* DATA, COMPRESSED: whose file */
	uint64_t host;	      /* DATA: the file offset of off */
	uint64_t entry;	      /* COMPRESSED: the L2 entry */
	uint64_t skip;	      /* COMPRESSED: bytes of the cluster before off */
	uint64_t len;
};

/* Maps [off, off + len) (len > 0, within the disk) through the backing chain. */
int q2_map(struct q2_image *img, uint64_t off, uint64_t len, struct q2_ext *ext);

/* Decompresses a compressed cluster into ext->img->zout. */
int q2_read_compressed(struct q2_image *img, uint64_t entry);

/* Reads the disk's [off, off + len) into buf (synchronously). */
int q2_read_sync(struct q2_image *img, uint64_t off, void *buf, uint64_t len);

/* The overlap checks: whether [start, start + len) meets any metadata. */
const struct q2_meta *q2_meta_find(const struct q2_image *img, uint64_t start, uint64_t len);
int q2_meta_add(struct q2_image *img, uint64_t start, uint64_t len, enum q2_meta_kind kind);
void q2_meta_remove(struct q2_image *img, uint64_t start);
const char *q2_meta_name(enum q2_meta_kind kind);

/* ---- qcow2_alloc.c ---- */

/* Adds delta to the refcounts of clusters [first, first + count) (16-bit, checked). */
int q2_refcount_add(struct q2_image *img, uint64_t first, uint64_t count, int delta);

/* Up to max contiguous free clusters: [*first, *first + *count), referenced once. */
int q2_alloc(struct q2_image *img, uint64_t max, uint64_t *first, uint64_t *count, bool *fresh);

/* Exactly n contiguous clusters at the end of the file, referenced once. */
int q2_alloc_run(struct q2_image *img, uint64_t n, uint64_t *first);

/* Drops the clusters a data or compressed L2 entry uses, once tables are on disk. */
int q2_drop_entry(struct q2_image *img, uint64_t entry);

/* Where a write goes: in place, or guest clusters [g, g + n) to new host clusters from h. */
struct q2_wplan {
	bool alloc;    /* else the data goes in place */
	uint64_t host; /* file offset of the write's first byte */
	uint64_t len;  /* bytes of the write this plan covers */
	uint64_t g, n, h;
	bool reuse; /* h is the zero cluster's own preallocated cluster */
};

/* How the write of [off, off + len) starts: in place, or allocating g..g+n. */
int q2_write_plan(struct q2_image *img, uint64_t off, uint64_t len, struct q2_wplan *p);
/* Allocates for p (p->n may shrink), fills the clusters' parts the write leaves. */
int q2_write_prepare(struct q2_image *img, uint64_t off, uint64_t len, struct q2_wplan *p);
/* After the data is written: the L2 entries point at it. */
int q2_write_publish(struct q2_image *img, const struct q2_wplan *p);
/* After the data write failed: the clusters go back. */
void q2_write_undo(struct q2_image *img, const struct q2_wplan *p);

/* Writes buf at off (synchronously), allocating as needed. */
int q2_write_sync(struct q2_image *img, uint64_t off, const void *buf, uint64_t len);

enum q2_zero_how {
	Q2_DISCARD,    /* unallocated (or zero clusters over a backing file) */
	Q2_ZERO_UNMAP, /* zero clusters, deallocated */
	Q2_ZERO_KEEP,  /* zero clusters, keeping their preallocated clusters */
};
/* Guest clusters [g, g + n) (in one L2 table) read as zeroes (discard: anything). */
int q2_zero_clusters(struct q2_image *img, uint64_t g, uint64_t n, enum q2_zero_how how);

/* Whether a flush has metadata to write. */
bool q2_dirty(const struct q2_image *img);

/*
 * Data, then refcounts, then L2 tables, then L1 to stable storage, with
 * fdatasync between; then frees the clusters dropped before stamp safe.
 */
int q2_flush(struct q2_image *img, uint64_t safe);

/* Flushes with nothing in flight, until nothing is left to write (closing). */
int q2_flush_all(struct q2_image *img);

/* ---- qcow2_create.c ---- */

/* Writes a new, empty qcow2 v3 image into the empty file fd (path: for messages). */
int q2_format(int fd, const char *path, uint64_t size, const char *backing,
	      enum disk_format bformat, unsigned cb);

/* A new image's size: a positive multiple of 512 that the L1 table can map. */
int q2_check_new_size(const char *path, uint64_t size, unsigned cb);

/* Changes a read-write image's virtual size (see disk_resize). */
int q2_resize(struct q2_image *img, uint64_t size, bool shrink);

/* ---- image.c: new files appear under their name only once complete ---- */

struct disk_tmp {
	int fd;
	const char *path;	  /* the name it gets */
	char name[PATH_MAX + 16]; /* the temporary name; "" for an unnamed file (O_TMPFILE) */
};

/* An empty file in path's directory; refuses (-EEXIST) if path exists. */
int disk_tmp_create(struct disk_tmp *t, const char *path);
/* Makes it stable, then gives it its name (never replacing a file); closes it. */
int disk_tmp_commit(struct disk_tmp *t);
/* Closes and removes it. */
void disk_tmp_abort(struct disk_tmp *t);

#endif
