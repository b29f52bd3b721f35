/*
 * libFuzzer target for the virtqueue parser: the input is what a hostile guest
 * controls, i.e. the bytes of its rings and descriptor tables, plus a header
 * choosing the queue geometry, features and device behaviour.
 *
 * Input layout:
 *   0      log2 of the queue size (low 4 bits)
 *   1      bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 disable kicks while
 *          popping, bit 3 push back in reverse order, bit 4 save/restore
 *          between pops, bit 5 restore a fuzzed vq_state instead of setup
 *   2..3   starting last_avail = used_idx (little-endian)
 *   4      caller's iovec capacity (0..64)
 *   5      how many pops to try
 *   6..7   offset and length for the iovec copy helpers
 *   8..    guest RAM from gpa 0: the available ring, the used ring, then the
 *          descriptor table, each at the next aligned address; with bit 5,
 *          sizeof(struct vq_state) bytes of state come first
 *
 * Guest RAM is 5 GiB (so [3 GiB, 4 GiB) is the MMIO hole), mapped once and
 * lazily: only the first WINDOW bytes are ever written, and buffers are never
 * touched, only checked to lie in RAM. The iovec helpers run on heap copies,
 * where AddressSanitizer sees every byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/queue.h"
#include "vmm/memory.h"

#define HEADER	  8
#define WINDOW	  (1u << 20) /* rings of the largest queue fit: 852 KiB */
#define MAX_IOV	  64
#define MAX_POPS  64
#define HEAP_COPY (64u << 10) /* chains up to this size are mirrored on the heap */

struct layout {
	uint16_t size;
	uint64_t avail, used, desc;
};

/* Stops the fuzzer with a report: an invariant of queue.h did not hold. */
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static struct guest_memory mem;
static unsigned runs;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (memory_init(&mem, 5ULL << 30) != 0)
		abort();
	return 0;
}

static struct layout layout_for(uint16_t size)
{
	struct layout l = {.size = size, .avail = 0};

	l.used = (l.avail + 6 + 2ULL * size + 3) & ~3ULL;
	l.desc = (l.used + 6 + 8ULL * size + 15) & ~15ULL;
	return l;
}

/* Every iovec must be non-empty and lie wholly inside one region of guest RAM. */
static bool in_ram(const struct iovec *iov)
{
	for (unsigned i = 0; i < mem.count; i++) {
		const uint8_t *lo = mem.regions[i].hva, *hi = lo + mem.regions[i].size;
		const uint8_t *p = iov->iov_base;

		if (p >= lo && p < hi && iov->iov_len <= (size_t)(hi - p))
			return true;
	}
	return false;
}

/* Runs the copy helpers on a heap mirror of the chain's buffers. */
static void check_copies(const struct vq_chain *c, unsigned n, uint8_t off, uint8_t len)
{
	struct iovec heap[MAX_IOV];
	uint8_t buf[256];
	size_t total = 0;

	for (unsigned i = 0; i < n; i++)
		total += c->iov[i].iov_len;
	if (total > HEAP_COPY)
		return;
	for (unsigned i = 0; i < n; i++) {
		heap[i].iov_len = c->iov[i].iov_len;
		heap[i].iov_base = calloc(1, heap[i].iov_len);
		CHECK(heap[i].iov_base != NULL);
	}
	size_t want = off >= total ? 0 : (total - off < len ? total - off : len);

	memset(buf, 0xa5, sizeof(buf));
	CHECK(vq_iov_write(heap, n, off, buf, len) == want);
	CHECK(vq_iov_read(heap, n, off, buf, len) == want);
	for (unsigned i = 0; i < n; i++)
		free(heap[i].iov_base);
}

static void check_chain(const struct virtqueue *vq, const struct vq_chain *c, unsigned max_iov,
			const uint8_t *hdr)
{
	uint64_t rd = 0, wr = 0;

	CHECK(c->head < vq->size);
	CHECK(c->nread + c->nwrite <= max_iov);
	for (unsigned i = 0; i < c->nread + c->nwrite; i++) {
		CHECK(c->iov[i].iov_len > 0);
		CHECK(in_ram(&c->iov[i]));
		if (i < c->nread)
			rd += c->iov[i].iov_len;
		else
			wr += c->iov[i].iov_len;
	}
	CHECK(rd == c->read_bytes && wr == c->write_bytes);
	CHECK(rd + wr <= VQ_MAX_CHAIN_BYTES);
	check_copies(c, c->nread, hdr[6], hdr[7]);
	check_copies(c, c->nwrite, hdr[7], hdr[6]);
}

static void save_restore(struct virtqueue *vq)
{
	struct vq_state a, b;

	vq_save(vq, &a);
	CHECK(vq_restore(vq, &mem, &a) == 0);
	vq_save(vq, &b);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
}

/* Pops up to n chains; returns how many heads are outstanding in heads[]. */
static unsigned pop_all(struct virtqueue *vq, const uint8_t *hdr, uint16_t *heads, unsigned n)
{
	struct iovec iov[MAX_IOV];
	struct vq_chain c = {.iov = iov};
	unsigned max_iov = hdr[4] % (MAX_IOV + 1), got = 0;

	for (unsigned i = 0; i < n; i++) {
		uint16_t before = vq->last_avail;
		int ret = vq_pop(vq, &c, max_iov);

		if (ret == 0) {
			CHECK(vq->last_avail == before);
			break;
		}
		if (ret == -EINVAL) {
			CHECK(vq->broken && vq->last_avail == before);
			CHECK(vq_pop(vq, &c, max_iov) == -EINVAL);
			break;
		}
		CHECK(ret == 1 || ret == -ENOBUFS);
		CHECK(!vq->broken && vq->last_avail == (uint16_t)(before + 1));
		if (ret == 1)
			check_chain(vq, &c, max_iov, hdr);
		else
			CHECK(c.head < vq->size && c.nread == 0 && c.nwrite == 0);
		heads[got++] = c.head;
		if (hdr[1] & 16)
			save_restore(vq);
	}
	return got;
}

static void push_all(struct virtqueue *vq, const uint8_t *hdr, const uint16_t *heads, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		unsigned i = (hdr[1] & 8) ? n - 1 - k : k;
		uint16_t slot = vq->used_idx & (vq->size - 1);
		uint32_t id;

		if (vq->broken) {
			CHECK(vq_push(vq, heads[i], 0) == -EINVAL);
			continue;
		}
		CHECK(vq_push(vq, heads[i], k) == 0);
		CHECK(memory_read(&mem, vq->used_gpa + 4 + 8ULL * slot, &id, 4) == 0);
		CHECK(id == heads[i]);
		(void)vq_should_notify(vq);
	}
	/* Nothing is outstanding any more, unless a restored state said so. */
	if (!vq->broken && vq->last_avail == vq->used_idx)
		CHECK(vq_push(vq, 0, 0) == -EINVAL);
}

static bool in_window(uint64_t gpa, uint64_t len)
{
	return gpa < WINDOW && len <= WINDOW - gpa;
}

static int start_queue(struct virtqueue *vq, const uint8_t *hdr, const uint8_t **body, size_t *len)
{
	uint16_t size = (uint16_t)(1u << (hdr[0] & 15));
	const struct layout l = layout_for(size);
	uint16_t start = (uint16_t)(hdr[2] | hdr[3] << 8);
	struct vq_state st;

	if (hdr[1] & 32) {
		if (*len < sizeof(st))
			return -1;
		memcpy(&st, *body, sizeof(st));
		*body += sizeof(st);
		*len -= sizeof(st);
		if (vq_restore(vq, &mem, &st) != 0 || !vq->ready)
			return -1;
		/* Keep every write inside the window, so that runs are reproducible. */
		return in_window(vq->desc_gpa, 16ULL * vq->size) &&
			       in_window(vq->avail_gpa, 6 + 2ULL * vq->size) &&
			       in_window(vq->used_gpa, 6 + 8ULL * vq->size)
			   ? 0
			   : -1;
	}
	CHECK(vq_setup(vq, &mem, size, l.desc, l.avail, l.used, hdr[1] & 1, hdr[1] & 2) == 0);
	vq_save(vq, &st);
	st.last_avail = st.used_idx = st.signalled_used = start;
	CHECK(vq_restore(vq, &mem, &st) == 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct virtqueue vq = {.name = "fuzz"};
	const uint8_t *body = data + HEADER;
	size_t len = size - HEADER;
	uint16_t heads[MAX_POPS];
	unsigned n;

	if (size < HEADER)
		return 0;
	memset(mem.base, 0, WINDOW);
	/* Reads of fuzzed addresses fault in zero pages of the memfd: give them back. */
	if (++runs % 4096 == 0)
		fallocate(mem.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, WINDOW,
			  (off_t)(mem.size - WINDOW));
	if (start_queue(&vq, data, &body, &len) != 0)
		return 0;
	if (len > WINDOW)
		len = WINDOW;
	/* The rings are written after setup, as a driver does before it kicks. */
	CHECK(memory_write(&mem, 0, body, len) == 0);
	if (data[1] & 4)
		vq_disable_notify(&vq);
	n = pop_all(&vq, data, heads, data[5] % (MAX_POPS + 1));
	(void)vq_enable_notify(&vq);
	push_all(&vq, data, heads, n);
	(void)vq_has_avail(&vq);
	return 0;
}
