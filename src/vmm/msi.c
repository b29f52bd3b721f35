#include "vmm/msi.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/log.h"

#define MSI_PIC_PINS	16
#define MSI_IOAPIC_PINS 24
#define MSI_MAX_ENTRIES (MSI_PIC_PINS + MSI_IOAPIC_PINS + MSI_MAX_SOURCES)

static struct kvm_irq_routing_entry msi_irqchip_route(uint32_t gsi, uint32_t chip, uint32_t pin)
{
	struct kvm_irq_routing_entry e = {.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP};

	e.u.irqchip.irqchip = chip;
	e.u.irqchip.pin = pin;
	return e;
}

/*
 * What KVM_CREATE_IRQCHIP installs: GSIs 0-15 to the pin of that number on
 * both the 8259 pair and the IOAPIC, 16-23 to the IOAPIC alone. A table
 * update replaces everything, so these go into every update, or the serial
 * port and the RTC would lose their interrupts.
 */
static unsigned msi_default_routes(struct kvm_irq_routing_entry *e)
{
	unsigned n = 0;

	for (uint32_t gsi = 0; gsi < MSI_IOAPIC_PINS; gsi++) {
		if (gsi < MSI_PIC_PINS)
			e[n++] = msi_irqchip_route(
			    gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
		e[n++] = msi_irqchip_route(gsi, KVM_IRQCHIP_IOAPIC, gsi);
	}
	return n;
}

/* Hands KVM the whole table: defaults plus every routed source (lock held). */
static int msi_commit(struct msi_router *r)
{
	struct kvm_irq_routing *t;
	unsigned n;
	int ret = 0;

	t = calloc(1, sizeof(*t) + MSI_MAX_ENTRIES * sizeof(t->entries[0]));
	if (t == NULL)
		return -ENOMEM;
	n = msi_default_routes(t->entries);
	for (unsigned i = 0; i < MSI_MAX_SOURCES; i++) {
		const struct msi_source *s = &r->sources[i];
		struct kvm_irq_routing_entry *e = &t->entries[n];

		if (!s->used || !s->routed)
			continue;
		e->gsi = MSI_FIRST_GSI + i;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)s->addr;
		e->u.msi.address_hi = (uint32_t)(s->addr >> 32);
		e->u.msi.data = s->data;
		n++;
	}
	t->nr = n;
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		ret = -errno;
	free(t);
	return ret;
}

static int msi_irqfd(struct msi_router *r, unsigned i, uint32_t flags)
{
	struct kvm_irqfd irqfd = {
	    .fd = (uint32_t)r->sources[i].efd, .gsi = MSI_FIRST_GSI + i, .flags = flags};

	return ioctl(r->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

static int msi_alloc(void *opaque)
{
	struct msi_router *r = opaque;
	int ret = -ENOSPC;

	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < MSI_MAX_SOURCES; i++) {
		struct msi_source *s = &r->sources[i];

		if (s->used)
			continue;
		s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (s->efd < 0) {
			ret = -errno;
			break;
		}
		ret = msi_irqfd(r, i, 0);
		if (ret != 0) {
			close(s->efd);
			break;
		}
		s->used = true;
		s->routed = false;
		ret = (int)i;
		break;
	}
	pthread_mutex_unlock(&r->lock);
	if (ret < 0)
		log_error("cannot create an MSI interrupt source: %s", strerror(-ret));
	return ret;
}

static bool msi_valid(const struct msi_router *r, int handle)
{
	return handle >= 0 && handle < MSI_MAX_SOURCES && r->sources[handle].used;
}

/* A message KVM refuses (the guest wrote garbage) leaves the source unrouted, the others intact. */
static int msi_route(void *opaque, int handle, uint64_t addr, uint32_t data)
{
	struct msi_router *r = opaque;
	int ret = -EINVAL;

	pthread_mutex_lock(&r->lock);
	if (msi_valid(r, handle)) {
		struct msi_source *s = &r->sources[handle];

		s->addr = addr;
		s->data = data;
		s->routed = true;
		ret = msi_commit(r);
		if (ret != 0) {
			s->routed = false;
			msi_commit(r);
		}
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static void msi_raise(void *opaque, int handle)
{
	struct msi_router *r = opaque;
	uint64_t one = 1;

	/* The eventfd never changes while the source is in use: no lock on the hot path. */
	if (handle >= 0 && handle < MSI_MAX_SOURCES &&
	    write(r->sources[handle].efd, &one, sizeof(one)) != sizeof(one))
		log_debug("MSI source %d: eventfd write failed", handle);
}

static void msi_release(void *opaque, int handle)
{
	struct msi_router *r = opaque;

	pthread_mutex_lock(&r->lock);
	if (msi_valid(r, handle)) {
		struct msi_source *s = &r->sources[handle];

		msi_irqfd(r, (unsigned)handle, KVM_IRQFD_FLAG_DEASSIGN);
		close(s->efd);
		s->used = false;
		if (s->routed) {
			s->routed = false;
			msi_commit(r);
		}
	}
	pthread_mutex_unlock(&r->lock);
}

const struct pci_msi_ops msi_router_ops = {msi_alloc, msi_route, msi_raise, msi_release};

void msi_router_init(struct msi_router *r, int vm_fd)
{
	memset(r, 0, sizeof(*r));
	r->vm_fd = vm_fd;
	pthread_mutex_init(&r->lock, NULL);
}

void msi_router_destroy(struct msi_router *r)
{
	for (unsigned i = 0; i < MSI_MAX_SOURCES; i++) {
		if (r->sources[i].used)
			close(r->sources[i].efd);
		r->sources[i].used = false;
	}
	pthread_mutex_destroy(&r->lock);
}
