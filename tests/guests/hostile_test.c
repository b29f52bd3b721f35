/*
 * Runs the hostile guests (hostile_*.c on gdrv.c): real virtio devices under
 * /dev/kvm, attached as machine.c attaches them, attacked by a CPL3 guest.
 * The guest checks what a driver can see (NEEDS_RESET, the configuration
 * interrupt, that other devices and a reset device work); the runner checks
 * what only the host sees: the process survives, each attack logs one
 * NEEDS_RESET line for the device it broke and nothing for the others, the
 * device threads are idle afterwards (no spinning on a broken queue), and
 * the disk images and the network backend saw what they should.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "bus/pci.h"
#include "disk/disk.h"
#include "hostile.h"
#include "net/backend.h"
#include "tg.h"
#include "util/log.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/pci.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "vmm/msi.h"

_Static_assert(HOSTILE_BLK == VIRTIO_ID_BLOCK && HOSTILE_NET == VIRTIO_ID_NET &&
		   HOSTILE_RNG == VIRTIO_ID_ENTROPY && HOSTILE_VSOCK == VIRTIO_ID_VSOCK,
	       "hostile.h and device.h disagree on device types");
_Static_assert(HOSTILE_PARAMS + sizeof(struct hostile_params) <= GUEST_SHARED,
	       "the hostile parameters overlap the shared page");

#define HOSTILE_RAM	    (256ULL << 20)
#define HOSTILE_TIMEOUT_MS  30000
#define HOSTILE_MAX_STEPS   8192
#define HOSTILE_LOG_MAX	    (1u << 20)
#define HOSTILE_LOOP_FRAMES 16
#define HOSTILE_LOOP_FRAME  2048
#define HOSTILE_IDLE_MS	    300
#define HOSTILE_IDLE_TICKS  5 /* clock ticks a quiet device thread may use in HOSTILE_IDLE_MS */

/* ---- stderr, captured and cut at every step marker ---- */

/*
 * fd 2 goes into a pipe; a thread copies it to the real stderr (so that a
 * sanitizer's report still shows) and into buf. The thread reads only while
 * holding the lock, so a marker that finds the pipe empty under the lock
 * knows buf holds every line written before it.
 */
struct capture {
	pthread_t thread;
	pthread_mutex_t lock;
	int rd, saved_stderr;
	char *buf;
	size_t len;
};

static void *capture_main(void *arg)
{
	struct capture *c = arg;
	struct pollfd p = {.fd = c->rd, .events = POLLIN};
	char chunk[4096];

	for (;;) {
		ssize_t n;

		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return NULL;
		pthread_mutex_lock(&c->lock);
		n = read(c->rd, chunk, sizeof(chunk));
		if (n > 0) {
			ssize_t w = write(c->saved_stderr, chunk, (size_t)n);

			(void)w; /* the copy is for humans: nothing to do if it fails */
		}
		for (ssize_t i = 0; i < n && c->len + 1 < HOSTILE_LOG_MAX; i++)
			c->buf[c->len++] = chunk[i];
		pthread_mutex_unlock(&c->lock);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return NULL;
	}
}

static void capture_start(struct capture *c)
{
	int fds[2];

	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->buf = calloc(1, HOSTILE_LOG_MAX);
	cr_assert_not_null(c->buf);
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	c->rd = fds[0];
	cr_assert_eq(fcntl(c->rd, F_SETFL, O_NONBLOCK), 0);
	fflush(stderr);
	c->saved_stderr = dup(STDERR_FILENO);
	cr_assert_geq(c->saved_stderr, 0);
	cr_assert_eq(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
	close(fds[1]);
	cr_assert_eq(pthread_create(&c->thread, NULL, capture_main, c), 0);
}

/* Where the log stands now, once everything written so far is in buf. */
static size_t capture_mark(struct capture *c)
{
	size_t at;
	int pending = 1;

	fflush(stderr);
	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (ioctl(c->rd, FIONREAD, &pending) != 0)
			pending = 0;
		at = c->len;
		pthread_mutex_unlock(&c->lock);
		if (pending == 0)
			return at;
		usleep(1000);
	}
}

static void capture_stop(struct capture *c)
{
	if (c->buf == NULL)
		return;
	fflush(stderr);
	dup2(c->saved_stderr, STDERR_FILENO); /* the pipe's last writer goes: EOF */
	pthread_join(c->thread, NULL);
	close(c->saved_stderr);
	close(c->rd);
	pthread_mutex_destroy(&c->lock);
}

/* ---- a network backend that sends every frame back ---- */

struct loop {
	struct net_backend be;
	int efd;
	unsigned nframes;
	size_t len[HOSTILE_LOOP_FRAMES];
	uint8_t frame[HOSTILE_LOOP_FRAMES][HOSTILE_LOOP_FRAME];
	uint64_t sent;	/* frames the device handed over */
	size_t max_len; /* the largest of them */
};

static struct loop *loop_of(struct net_backend *be)
{
	return (struct loop *)be;
}

static int loop_fd(struct net_backend *be)
{
	return loop_of(be)->efd;
}

/* Device thread: the frames sent since the last poll go back to the guest. */
static void loop_poll(struct net_backend *be)
{
	struct loop *l = loop_of(be);
	uint64_t n;

	if (read(l->efd, &n, sizeof(n)) != sizeof(n))
		return;
	for (unsigned i = 0; i < l->nframes; i++)
		net_receive(be->net, NULL, l->frame[i], l->len[i]);
	l->nframes = 0;
}

static int loop_send(struct net_backend *be, const struct iovec *iov, unsigned n, size_t len)
{
	struct loop *l = loop_of(be);
	uint64_t one = 1;
	size_t at = 0;

	l->sent++;
	if (len > l->max_len)
		l->max_len = len;
	if (len > HOSTILE_LOOP_FRAME || l->nframes == HOSTILE_LOOP_FRAMES)
		return 0; /* taken, not echoed */
	for (unsigned i = 0; i < n && at + iov[i].iov_len <= len; i++) {
		memcpy(l->frame[l->nframes] + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	l->len[l->nframes++] = at;
	return write(l->efd, &one, sizeof(one)) == sizeof(one) ? 0 : -EIO;
}

static void loop_destroy(struct net_backend *be)
{
	struct loop *l = loop_of(be);

	close(l->efd);
	free(l);
}

static const struct net_backend_ops loop_ops = {
    .name = "loop",
    .vnet_hdr = false,
    .fd = loop_fd,
    .poll = loop_poll,
    .send = loop_send,
    .destroy = loop_destroy,
};

/* ---- the machine: rng, blk, readonly blk, net, vsock, as machine.c attaches them ---- */

struct step {
	uint32_t id, type;
	size_t log_at;
};

struct hostile {
	struct tg *t;
	struct vm *vm;
	struct capture cap;
	pthread_mutex_t lock; /* the steps */
	struct step steps[HOSTILE_MAX_STEPS];
	unsigned nsteps;
	char dir[64], image[96], image_ro[96], vsock_path[80], listen_path[100];
	int listen_fd;
	struct msi_router *msi;
	struct pci_bus *pb;
	struct rng *rng;
	struct disk *disk, *disk_ro;
	struct blk *blk, *blk_ro;
	struct loop *loop;
	struct net *net;
	struct vsock *vsock;
	struct virtio_pci *vp[5]; /* in slot order */
	unsigned nvp;
};

static enum vm_action hostile_port_write(void *opaque, uint64_t offset, const uint8_t *data,
					 uint32_t len)
{
	struct hostile *h = opaque;
	uint32_t v = 0;

	memcpy(&v, data, len < 4 ? len : 4);
	if (offset == HOSTILE_PORT_NOTE - HOSTILE_PORT_STEP) {
		fprintf(stderr, "hostile guest note: %#x\n", v);
		return VM_CONTINUE;
	}
	if (offset != 0)
		return VM_CONTINUE;
	pthread_mutex_lock(&h->lock);
	if (h->nsteps < HOSTILE_MAX_STEPS)
		h->steps[h->nsteps++] =
		    (struct step){HOSTILE_STEP_ID(v), HOSTILE_STEP_TYPE(v), capture_mark(&h->cap)};
	pthread_mutex_unlock(&h->lock);
	return VM_CONTINUE;
}

static enum vm_action hostile_port_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	(void)opaque;
	(void)offset;
	memset(data, 0, len);
	return VM_CONTINUE;
}

static const struct bus_ops hostile_port_ops = {hostile_port_read, hostile_port_write};

static void hostile_add(struct hostile *h, struct virtio_device *dev, int (*attach)(void *),
			void *arg)
{
	struct virtio_pci *vp;

	cr_assert_eq(virtio_pci_create(&vp, dev, &h->vm->mem, h->vm->vm_fd), 0);
	h->vp[h->nvp++] = vp;
	if (attach != NULL)
		cr_assert_eq(attach(arg), 0, "attaching %s", dev->ops->name);
	cr_assert_eq(pci_add_device(h->pb, virtio_pci_device(vp)), 0);
}

static int hostile_attach_blk(void *blk)
{
	return blk_watch_completions(blk);
}

static int hostile_attach_net(void *net)
{
	return net_attach(net);
}

static int hostile_attach_vsock(void *vs)
{
	return vsock_attach(vs);
}

/* A raw image of sectors sectors, every byte fill. */
static void hostile_image(const char *path, unsigned sectors, uint8_t fill)
{
	uint8_t sector[DISK_SECTOR];
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	memset(sector, fill, sizeof(sector));
	for (unsigned i = 0; i < sectors; i++)
		cr_assert_eq(fwrite(sector, 1, sizeof(sector), f), sizeof(sector));
	cr_assert_eq(fclose(f), 0);
}

static void hostile_bus(struct hostile *h)
{
	/* As machine_add_pci, without the 64-bit window: BARs below 4 GiB, where CPL3 reaches. */
	struct pci_bus_config cfg = {
	    .pio = &h->vm->pio,
	    .mmio = &h->vm->mmio,
	    .ecam_base = LAYOUT_PCI_ECAM,
	    .mmio32_base = LAYOUT_PCI_MMIO,
	    .mmio32_end = LAYOUT_PCI_MMIO_END,
	};

	h->msi = calloc(1, sizeof(*h->msi));
	h->pb = calloc(1, sizeof(*h->pb));
	cr_assert(h->msi != NULL && h->pb != NULL);
	msi_router_init(h->msi, h->vm->vm_fd);
	cfg.msi = (struct pci_msi_sink){&msi_router_ops, h->msi};
	cr_assert_eq(pci_bus_init(h->pb, &cfg), 0);
}

static void hostile_disks(struct hostile *h)
{
	snprintf(h->image, sizeof(h->image), "%s/disk.raw", h->dir);
	snprintf(h->image_ro, sizeof(h->image_ro), "%s/disk-ro.raw", h->dir);
	hostile_image(h->image, HOSTILE_BLK_SECTORS, 0);
	hostile_image(h->image_ro, HOSTILE_BLK_RO_SECTORS, HOSTILE_RO_BYTE);
	cr_assert_eq(disk_open(&h->disk, h->image, DISK_FORMAT_RAW, false, BLK_QUEUE_SIZE), 0);
	cr_assert_eq(disk_open(&h->disk_ro, h->image_ro, DISK_FORMAT_RAW, true, BLK_QUEUE_SIZE), 0);
	h->blk = blk_create(h->disk, "hostile");
	h->blk_ro = blk_create(h->disk_ro, "hostile-ro");
	cr_assert(h->blk != NULL && h->blk_ro != NULL);
	hostile_add(h, blk_virtio(h->blk), hostile_attach_blk, h->blk);
	hostile_add(h, blk_virtio(h->blk_ro), hostile_attach_blk, h->blk_ro);
}

static void hostile_net(struct hostile *h)
{
	static const uint8_t mac[NET_MAC_LEN] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

	h->loop = calloc(1, sizeof(*h->loop));
	cr_assert_not_null(h->loop);
	h->loop->be.ops = &loop_ops;
	h->loop->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert_geq(h->loop->efd, 0);
	h->net = net_create(mac, &h->loop->be);
	cr_assert_not_null(h->net);
	hostile_add(h, net_virtio(h->net), hostile_attach_net, h->net);
}

/* The device on PATH, and a host program listening on PATH_<HOSTILE_VSOCK_PORT>. */
static void hostile_vsock(struct hostile *h)
{
	struct vsock_config cfg = {.cid = HOSTILE_GUEST_CID};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(h->vsock_path, sizeof(h->vsock_path), "%s/vsock", h->dir);
	snprintf(h->listen_path, sizeof(h->listen_path), "%s_%u", h->vsock_path,
		 HOSTILE_VSOCK_PORT);
	snprintf(cfg.path, sizeof(cfg.path), "%s", h->vsock_path);
	cr_assert_eq(vsock_create(&h->vsock, &cfg), 0);
	hostile_add(h, vsock_virtio(h->vsock), hostile_attach_vsock, h->vsock);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h->listen_path);
	h->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(h->listen_fd, 0);
	cr_assert_eq(bind(h->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(h->listen_fd, 4), 0);
}

/* The run's temporary directory, for hostile_fini when an assertion skipped the teardown. */
static char hostile_litter[64];

static void hostile_fini(void)
{
	static const char *const files[] = {"disk.raw", "disk-ro.raw", "vsock"};
	char path[128];

	if (hostile_litter[0] == '\0')
		return;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", hostile_litter, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/vsock_%u", hostile_litter, HOSTILE_VSOCK_PORT);
	unlink(path);
	rmdir(hostile_litter);
	hostile_litter[0] = '\0';
}

TestSuite(hostile, .fini = hostile_fini);

static struct hostile *hostile_setup(const char *guest, const struct hostile_params *params,
				     unsigned ncpus)
{
	struct hostile *h = calloc(1, sizeof(*h));
	struct hostile_params p = *params;

	cr_assert_not_null(h);
	h->listen_fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	capture_start(&h->cap);
	h->t = tg_setup(guest, HOSTILE_RAM, ncpus);
	h->vm = tg_vm(h->t);
	p.ram_size = HOSTILE_RAM;
	cr_assert_eq(memory_write(&h->vm->mem, HOSTILE_PARAMS, &p, sizeof(p)), 0);
	cr_assert_eq(
	    bus_register(&h->vm->pio, HOSTILE_PORT_STEP, HOSTILE_PORT_LEN, &hostile_port_ops, h),
	    0);
	snprintf(h->dir, sizeof(h->dir), "/tmp/tabique-hostile-XXXXXX");
	cr_assert_not_null(mkdtemp(h->dir));
	snprintf(hostile_litter, sizeof(hostile_litter), "%s", h->dir);
	hostile_bus(h);
	h->rng = rng_create();
	cr_assert_not_null(h->rng);
	hostile_add(h, rng_virtio(h->rng), NULL, NULL);
	hostile_disks(h);
	hostile_net(h);
	hostile_vsock(h);
	for (unsigned i = 0; i < h->nvp; i++)
		cr_assert_eq(virtio_pci_start(h->vp[i]), 0);
	return h;
}

/* As machine_destroy: device threads, then in-flight I/O, then the bus, the VM, the devices. */
static void hostile_teardown(struct hostile *h)
{
	for (unsigned i = 0; i < h->nvp; i++)
		virtio_pci_stop(h->vp[i]);
	blk_quiesce(h->blk);
	blk_quiesce(h->blk_ro);
	pci_bus_destroy(h->pb);
	msi_router_destroy(h->msi);
	tg_teardown(h->t);
	for (unsigned i = 0; i < h->nvp; i++)
		virtio_pci_destroy(h->vp[i]);
	blk_destroy(h->blk);
	blk_destroy(h->blk_ro);
	disk_close(h->disk);
	disk_close(h->disk_ro);
	net_destroy(h->net);
	loop_destroy(&h->loop->be);
	vsock_destroy(h->vsock);
	rng_destroy(h->rng);
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	unlink(h->listen_path);
	unlink(h->image);
	unlink(h->image_ro);
	rmdir(h->dir);
	hostile_litter[0] = '\0';
	capture_stop(&h->cap);
	free(h->cap.buf);
	free(h->pb);
	free(h->msi);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* ---- what the host sees ---- */

/* CPU time (clock ticks) of the device threads, which are named after their devices. */
static unsigned long hostile_device_ticks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	unsigned long total = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[300], comm[32] = "", stat[512] = "";
		unsigned long ut = 0, st = 0;
		const char *p;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) == NULL || strncmp(comm, "virtio-", 7) != 0) {
			fclose(f);
			continue;
		}
		fclose(f);
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		/* After the ")" closing comm: state, then fields 4..13, then utime and stime. */
		if (fgets(stat, sizeof(stat), f) != NULL && (p = strrchr(stat, ')')) != NULL &&
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			   &st) == 2)
			total += ut + st;
		fclose(f);
	}
	closedir(d);
	return total;
}

/* Once the guest is done, no device thread may still be busy: bounded work per kick. */
static void hostile_assert_idle(void)
{
	unsigned long before = hostile_device_ticks(), after;

	usleep(HOSTILE_IDLE_MS * 1000);
	after = hostile_device_ticks();
	cr_assert_leq(after - before, HOSTILE_IDLE_TICKS,
		      "device threads used %lu clock ticks in %d ms with the guest stopped: one "
		      "spins",
		      after - before, HOSTILE_IDLE_MS);
}

static const char *hostile_name(uint32_t type)
{
	switch (type) {
	case HOSTILE_RNG:
		return "virtio-rng";
	case HOSTILE_BLK:
		return "virtio-blk";
	case HOSTILE_NET:
		return "virtio-net";
	case HOSTILE_VSOCK:
		return "virtio-vsock";
	default:
		return "?";
	}
}

/* Lines of log[from, to) that contain what and, if who is not NULL, start with who. */
static unsigned hostile_count(const char *log, size_t from, size_t to, const char *who,
			      const char *what)
{
	unsigned n = 0;

	while (from < to) {
		const char *line = log + from, *nl = memchr(line, '\n', to - from);
		size_t len = nl != NULL ? (size_t)(nl - line) : to - from;
		char buf[512];

		snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
		if (strstr(buf, what) != NULL &&
		    (who == NULL ||
		     strncmp(buf + strlen("tabique: warning: "), who, strlen(who)) == 0))
			n++;
		from += len + 1;
	}
	return n;
}

#define NEEDS_RESET_LINE "the device needs a reset by its driver"
#define VQ_LINE		 "guest broke the virtqueue"

/* One step's piece of the log: one NEEDS_RESET line for the device it broke, no other. */
static void hostile_assert_step(const struct hostile *h, unsigned i, size_t to)
{
	const struct step *s = &h->steps[i];
	unsigned all = hostile_count(h->cap.buf, s->log_at, to, NULL, NEEDS_RESET_LINE);
	unsigned mine;

	if (s->type == HOSTILE_STEP_UNCHECKED)
		return;
	if (s->type == HOSTILE_STEP_ANY) {
		cr_assert_leq(all, 1, "race %u: %u NEEDS_RESET lines, want one at most", s->id,
			      all);
		return;
	}
	mine = s->type == 0 ? 0
			    : hostile_count(h->cap.buf, s->log_at, to, hostile_name(s->type),
					    NEEDS_RESET_LINE);

	cr_assert_eq(mine, s->type != 0 ? 1u : 0u,
		     "attack %u: %u NEEDS_RESET lines from %s, want exactly one", s->id, mine,
		     hostile_name(s->type));
	cr_assert_eq(all, mine, "attack %u: %u NEEDS_RESET lines from other devices", s->id,
		     all - mine);
	cr_assert_leq(hostile_count(h->cap.buf, s->log_at, to, NULL, VQ_LINE), 1,
		      "attack %u: the broken queue was reported more than once", s->id);
}

static void hostile_assert_steps(struct hostile *h, unsigned min_steps)
{
	size_t end = capture_mark(&h->cap);

	cr_assert_geq(h->nsteps, min_steps, "the guest ran %u attacks, want %u or more", h->nsteps,
		      min_steps);
	cr_assert_eq(hostile_count(h->cap.buf, 0, h->nsteps ? h->steps[0].log_at : end, NULL,
				   NEEDS_RESET_LINE),
		     0, "a device needed a reset before the first attack");
	for (unsigned i = 0; i < h->nsteps; i++)
		hostile_assert_step(h, i, i + 1 < h->nsteps ? h->steps[i + 1].log_at : end);
}

/* The guest ran to its end, passed its own checks, and the devices are quiet. */
static void hostile_assert_passed(struct hostile *h, enum vm_action action, unsigned min_steps)
{
	uint32_t result = 0;

	tg_assert_no_fault(h->t);
	cr_assert_eq(action, VM_POWEROFF, "the VM stopped with action %d: %s (last step %u)",
		     (int)action, h->vm->stop_reason, h->nsteps ? h->steps[h->nsteps - 1].id : 0);
	cr_assert(tg_result(h->t, &result), "the VM powered off before the guest reported");
	cr_assert_eq(result, 0, "attack %u failed the guest's check %u (last step %u)",
		     HOSTILE_STEP_ID(result), HOSTILE_STEP_TYPE(result),
		     h->nsteps ? h->steps[h->nsteps - 1].id : 0);
	hostile_assert_idle();
	hostile_assert_steps(h, min_steps);
}

static struct hostile *hostile_run_smp(const char *guest, const struct hostile_params *p,
				       unsigned ncpus, unsigned min_steps)
{
	struct hostile *h = hostile_setup(guest, p, ncpus);

	hostile_assert_passed(h, tg_run(h->t, HOSTILE_TIMEOUT_MS), min_steps);
	return h;
}

static struct hostile *hostile_run(const char *guest, uint32_t victim, unsigned min_steps)
{
	struct hostile_params p = {.victim = victim};

	return hostile_run_smp(guest, &p, 1, min_steps);
}

/* ---- the tests ---- */

#define RING_STEPS 51 /* 30 chains, 16 geometries, 3 status sequences, 2 feature sets */

Test(hostile, ring_rng, .timeout = 60)
{
	hostile_teardown(hostile_run("hostile_ring", HOSTILE_RNG, RING_STEPS + 6));
}

Test(hostile, ring_blk, .timeout = 60)
{
	hostile_teardown(hostile_run("hostile_ring", HOSTILE_BLK, RING_STEPS));
}

Test(hostile, ring_net, .timeout = 60)
{
	hostile_teardown(hostile_run("hostile_ring", HOSTILE_NET, RING_STEPS));
}

Test(hostile, ring_vsock, .timeout = 60)
{
	hostile_teardown(hostile_run("hostile_ring", HOSTILE_VSOCK, RING_STEPS));
}

/* Register attacks; the last breaks and resets rng in a loop: its reports stop at the budget. */
Test(hostile, config, .timeout = 60)
{
	struct hostile *h = hostile_run("hostile_config", 0, 17);
	unsigned reports =
	    hostile_count(h->cap.buf, 0, capture_mark(&h->cap), "virtio-rng", NEEDS_RESET_LINE);

	cr_assert_eq(reports, LOG_LIMIT_BURST, "%u NEEDS_RESET reports for %u breaks", reports,
		     HOSTILE_FLOOD_ROUNDS + 2);
	hostile_teardown(h);
}

/* Bytes [off, off + len) of a file. */
static void hostile_pread(const char *path, uint64_t off, uint8_t *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len, "%s: short read", path);
	close(fd);
}

/* What the disks hold after hostile_blk: its last write, the zeroed sector, nothing else. */
static void hostile_assert_images(const struct hostile *h)
{
	static uint8_t ro[HOSTILE_BLK_RO_SECTORS * DISK_SECTOR];
	uint8_t sector[DISK_SECTOR];

	cr_assert_eq(h->disk->size, (uint64_t)HOSTILE_BLK_SECTORS * DISK_SECTOR);
	hostile_pread(h->image, HOSTILE_BLK_FINAL_SECTOR * DISK_SECTOR, sector, sizeof(sector));
	for (unsigned i = 0; i < sizeof(sector); i++)
		cr_assert_eq(sector[i], HOSTILE_BLK_FINAL_BYTE(i), "the last write, byte %u", i);
	hostile_pread(h->image, HOSTILE_BLK_ZEROED * DISK_SECTOR, sector, sizeof(sector));
	for (unsigned i = 0; i < sizeof(sector); i++)
		cr_assert_eq(sector[i], 0, "the zeroed sector, byte %u", i);
	hostile_pread(h->image_ro, 0, ro, sizeof(ro));
	for (unsigned i = 0; i < sizeof(ro); i++)
		cr_assert_eq(ro[i], HOSTILE_RO_BYTE, "the readonly image changed at byte %u", i);
}

Test(hostile, blk, .timeout = 60)
{
	struct hostile *h = hostile_run("hostile_blk", 0, 16);

	hostile_assert_images(h);
	hostile_teardown(h);
}

/* The frames: the largest one reached the backend, nothing larger, four were dropped. */
Test(hostile, net, .timeout = 60)
{
	struct hostile *h = hostile_run("hostile_net", 0, 11);
	struct net_stats st;

	net_get_stats(h->net, &st);
	cr_assert_eq(h->loop->max_len, NET_MAX_FRAME, "the largest frame the backend got: %zu",
		     h->loop->max_len);
	cr_assert_eq(st.tx_dropped, 4,
		     "%llu frames dropped, want 4: too large, two too short, "
		     "too many pieces",
		     (unsigned long long)st.tx_dropped);
	cr_assert_geq(st.rx_packets, 5);
	cr_assert_geq(st.rx_dropped, 50, "the backlog is bounded: %llu frames dropped",
		      (unsigned long long)st.rx_dropped);
	hostile_teardown(h);
}

/* Reads a host program's end of a stream until EOF (at most max bytes); returns the count. */
static size_t hostile_drain(int listen_fd, char *buf, size_t max)
{
	struct timeval tv = {.tv_sec = 5};
	size_t len = 0;
	ssize_t n;
	char sink[4096];
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

	cr_assert_geq(fd, 0, "the guest's connection never reached the host program");
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	while ((n = read(fd, len < max ? buf + len : sink, len < max ? max - len : sizeof(sink))) >
	       0)
		len += (size_t)n;
	cr_assert_eq(n, 0, "the stream did not end: %s", n < 0 ? strerror(errno) : "?");
	close(fd);
	return len;
}

/*
 * What the host programs on PATH_<port> got: the first stream the guest's
 * data, the second (which overran its credit) some data; both then ended.
 */
static void hostile_assert_streams(const struct hostile *h)
{
	char buf[128];
	size_t len = hostile_drain(h->listen_fd, buf, sizeof(buf));

	cr_assert_eq(len, strlen(HOSTILE_VSOCK_HELLO), "the host program got %zu bytes", len);
	cr_assert_arr_eq(buf, HOSTILE_VSOCK_HELLO, len);
	len = hostile_drain(h->listen_fd, buf, 0);
	cr_assert_gt(len, 0, "the overrunning stream carried nothing");
}

Test(hostile, vsock, .timeout = 60)
{
	struct hostile *h = hostile_run("hostile_vsock", 0, 15);

	hostile_assert_streams(h);
	cr_assert_eq(vsock_connections(h->vsock), 0, "connections survived the reset");
	hostile_teardown(h);
}

#define RACE_ROUNDS	  2000
#define RACE_RESET_ROUNDS 200 /* each costs a set-up or more: dozens of exits */

/* vCPU 1 rewrites the rings while vCPU 0 submits: no crash, no spin, no lost request. */
Test(hostile, race_rings, .timeout = 90)
{
	struct hostile_params p = {.rounds = RACE_ROUNDS, .mode = HOSTILE_RACE_RINGS};

	hostile_teardown(hostile_run_smp("hostile_race", &p, 2, RACE_ROUNDS + 1));
}

/* vCPU 1 resets the device under requests in flight: no crash, no spin, all works after. */
Test(hostile, race_reset, .timeout = 90)
{
	struct hostile_params p = {.rounds = RACE_RESET_ROUNDS, .mode = HOSTILE_RACE_RESET};

	hostile_teardown(hostile_run_smp("hostile_race", &p, 2, RACE_RESET_ROUNDS + 1));
}
