#include "bus/pci.h"

#include <errno.h>
#include <string.h>

#include "util/log.h"

/* Configuration space and MSI-X tables are little-endian, byte for byte. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "host must be little-endian");
_Static_assert(sizeof(struct pci_msix_entry) == PCI_MSIX_ENTRY_SIZE, "MSI-X entry layout");

/*
 * The host bridge: Red Hat's id for a generic virtual PCIe host bridge, a
 * device no Linux driver or quirk claims, so the guest treats it as plain
 * "Host bridge" class hardware.
 */
#define PCI_HOST_VENDOR 0x1b36
#define PCI_HOST_DEVICE 0x0008

/* CONFIG_ADDRESS (PCI 3.0, 3.2.2.3.2): enable, bus, device, function, dword. */
#define PCI_CA_ENABLE 0x80000000u
#define PCI_CA_MASK   0x80fffffcu /* reserved bits 30:24 and 1:0 read as 0 */

enum pci_route { PCI_ROUTE_STALE, PCI_ROUTE_OK, PCI_ROUTE_BAD };

static bool pci_overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t size)
{
	return off < start + size && start < off + len;
}

static uint32_t pci_ones(unsigned len)
{
	return len >= 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
}

void pci_cfg_set(struct pci_device *dev, uint32_t offset, uint32_t value, unsigned len)
{
	for (unsigned i = 0; i < len && offset + i < PCI_CFG_EXP_SIZE; i++)
		dev->cfg[offset + i] = (uint8_t)(value >> (8 * i));
}

uint32_t pci_cfg_get(const struct pci_device *dev, uint32_t offset, unsigned len)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < len && i < 4 && offset + i < PCI_CFG_EXP_SIZE; i++)
		v |= (uint32_t)dev->cfg[offset + i] << (8 * i);
	return v;
}

static void pci_mask_set(uint8_t *mask, uint32_t offset, uint32_t bits, unsigned len)
{
	for (unsigned i = 0; i < len && offset + i < PCI_CFG_EXP_SIZE; i++)
		mask[offset + i] = (uint8_t)(bits >> (8 * i));
}

void pci_cfg_set_writable(struct pci_device *dev, uint32_t offset, unsigned len)
{
	for (unsigned i = 0; i < len && offset + i < PCI_CFG_EXP_SIZE; i++)
		dev->wmask[offset + i] = 0xff;
}

void pci_device_init(struct pci_device *dev, const char *name, const struct pci_device_id *id,
		     const struct pci_device_ops *ops, void *opaque)
{
	memset(dev, 0, sizeof(*dev));
	dev->name = name;
	dev->ops = ops;
	dev->opaque = opaque;
	pci_cfg_set(dev, PCI_VENDOR_ID, id->vendor, 2);
	pci_cfg_set(dev, PCI_DEVICE_ID, id->device, 2);
	pci_cfg_set(dev, PCI_REVISION_ID, id->revision, 1);
	pci_cfg_set(dev, PCI_CLASS_PROG, id->class_code, 3);
	pci_cfg_set(dev, PCI_SUBSYSTEM_VENDOR, id->subsystem_vendor, 2);
	pci_cfg_set(dev, PCI_SUBSYSTEM_ID, id->subsystem, 2);
	/* No I/O BARs and no INTx: only these command bits exist. */
	pci_mask_set(dev->wmask, PCI_COMMAND,
		     PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE, 2);
	pci_mask_set(dev->w1cmask, PCI_STATUS, PCI_STATUS_ERRORS, 2);
	/* Cache line size and interrupt line are scratch registers for software. */
	pci_cfg_set_writable(dev, 0x0c, 1);
	pci_cfg_set_writable(dev, PCI_INTERRUPT_LINE, 1);
	dev->cap_end = PCI_CAP_START;
	pthread_mutex_init(&dev->msix.lock, NULL);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		dev->bars[i].dev = dev;
		dev->bars[i].index = i;
	}
	for (unsigned v = 0; v < PCI_MSIX_MAX_VECTORS; v++)
		dev->msix.handle[v] = -1;
}

static bool pci_is_upper_half(const struct pci_device *dev, unsigned index)
{
	return index > 0 && (dev->bars[index - 1].flags & PCI_BAR_64);
}

int pci_device_set_bar(struct pci_device *dev, unsigned index, uint64_t size, unsigned flags)
{
	bool is64 = flags & PCI_BAR_64;
	uint32_t lo = (is64 ? PCI_BAR_MEM_TYPE_64 : 0) |
		      (flags & PCI_BAR_PREFETCH ? PCI_BAR_MEM_PREFETCH : 0);
	uint32_t off = PCI_BAR0 + 4 * index;

	if (index >= PCI_NUM_BARS || size < 4096 || (size & (size - 1)) != 0 ||
	    dev->bars[index].size != 0 || pci_is_upper_half(dev, index))
		return -EINVAL;
	if (is64 ? index + 1 >= PCI_NUM_BARS || dev->bars[index + 1].size != 0
		 : size > (1ULL << 31))
		return -EINVAL;
	dev->bars[index].size = size;
	dev->bars[index].flags = flags;
	pci_cfg_set(dev, off, lo, 4);
	/* Writable address bits are exactly those above the size: BAR sizing falls out of the mask.
	 */
	pci_mask_set(dev->wmask, off, (uint32_t) ~(size - 1) & (uint32_t)PCI_BAR_MEM_ADDR_MASK, 4);
	if (is64)
		pci_mask_set(dev->wmask, off + 4, (uint32_t)(~(size - 1) >> 32), 4);
	return 0;
}

int pci_device_add_cap(struct pci_device *dev, uint8_t id, uint8_t len)
{
	uint32_t at = (dev->cap_end + 3u) & ~3u;

	if (len < 2 || at + len > PCI_CFG_SIZE)
		return -ENOSPC;
	dev->cfg[at] = id;
	dev->cfg[at + 1] = 0;
	if (dev->last_cap)
		dev->cfg[dev->last_cap + 1] = (uint8_t)at;
	else
		dev->cfg[PCI_CAPABILITY_LIST] = (uint8_t)at;
	pci_cfg_set(dev, PCI_STATUS, pci_cfg_get(dev, PCI_STATUS, 2) | PCI_STATUS_CAP_LIST, 2);
	dev->last_cap = (uint8_t)at;
	dev->cap_end = (uint8_t)(at + len);
	return (int)at;
}

static bool pci_msix_layout_ok(const struct pci_device *dev, unsigned nvec, unsigned bar,
			       uint32_t table_off, uint32_t pba_off)
{
	uint64_t table_len = (uint64_t)nvec * PCI_MSIX_ENTRY_SIZE;
	uint64_t pba_len = (nvec + 63) / 64 * 8;
	uint64_t size;

	if (nvec == 0 || nvec > PCI_MSIX_MAX_VECTORS || bar >= PCI_NUM_BARS)
		return false;
	size = dev->bars[bar].size;
	if (size == 0 || (table_off & 7) || (pba_off & 7))
		return false;
	if (table_off + table_len > size || pba_off + pba_len > size)
		return false;
	return !pci_overlaps(table_off, (uint32_t)table_len, pba_off, (uint32_t)pba_len);
}

int pci_device_add_msix(struct pci_device *dev, unsigned nvec, unsigned bar, uint32_t table_off,
			uint32_t pba_off)
{
	struct pci_msix *x = &dev->msix;
	int cap;

	if (x->nvec || !pci_msix_layout_ok(dev, nvec, bar, table_off, pba_off))
		return -EINVAL;
	cap = pci_device_add_cap(dev, PCI_CAP_ID_MSIX, PCI_MSIX_CAP_LEN);
	if (cap < 0)
		return cap;
	pci_cfg_set(dev, (uint32_t)cap + PCI_MSIX_FLAGS, nvec - 1, 2);
	pci_cfg_set(dev, (uint32_t)cap + PCI_MSIX_TABLE, table_off | bar, 4);
	pci_cfg_set(dev, (uint32_t)cap + PCI_MSIX_PBA, pba_off | bar, 4);
	pci_mask_set(dev->wmask, (uint32_t)cap + PCI_MSIX_FLAGS,
		     PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	x->nvec = nvec;
	x->bar = bar;
	x->table_off = table_off;
	x->pba_off = pba_off;
	x->cap = (uint8_t)cap;
	/* Every vector comes out of reset masked (PCI 3.0, 6.8.2.9). */
	for (unsigned v = 0; v < nvec; v++)
		x->table[v].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT;
	return 0;
}

/* ---- MSI-X ---- */

static bool pci_msix_pending(const struct pci_msix *x, unsigned v)
{
	return x->pba[v / 64] & (1ULL << (v % 64));
}

static void pci_msix_set_pending(struct pci_msix *x, unsigned v, bool on)
{
	if (on)
		x->pba[v / 64] |= 1ULL << (v % 64);
	else
		x->pba[v / 64] &= ~(1ULL << (v % 64));
}

/* Whether vector v's messages go out now rather than into the PBA. */
static bool pci_msix_live(const struct pci_msix *x, unsigned v)
{
	return x->enabled && !x->masked && !(x->table[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

/* Hands vector v's current message to the sink; a refused message stays refused until rewritten. */
static bool pci_msix_route(struct pci_device *dev, unsigned v)
{
	struct pci_msix *x = &dev->msix;
	const struct pci_msi_sink *sink = &dev->bus->msi;
	const struct pci_msix_entry *e = &x->table[v];
	uint64_t addr = (uint64_t)e->addr_hi << 32 | e->addr_lo;

	if (x->route[v] == PCI_ROUTE_STALE) {
		if (sink->ops == NULL || x->handle[v] < 0 ||
		    sink->ops->route(sink->opaque, x->handle[v], addr, e->data) != 0) {
			log_debug("%s: MSI-X vector %u: message %#llx/%#x refused", dev->name, v,
				  (unsigned long long)addr, e->data);
			x->route[v] = PCI_ROUTE_BAD;
		} else {
			x->route[v] = PCI_ROUTE_OK;
		}
	}
	return x->route[v] == PCI_ROUTE_OK;
}

/* Sends vector v, which is live; without bus mastering the device cannot write the message. */
static void pci_msix_send(struct pci_device *dev, unsigned v)
{
	const struct pci_msi_sink *sink = &dev->bus->msi;

	if (dev->msix.master && pci_msix_route(dev, v))
		sink->ops->raise(sink->opaque, dev->msix.handle[v]);
}

/* After a change of enable, masks or message: route eagerly and flush a pending message. */
static void pci_msix_refresh(struct pci_device *dev, unsigned v)
{
	struct pci_msix *x = &dev->msix;

	if (dev->bus == NULL || !pci_msix_live(x, v))
		return;
	pci_msix_route(dev, v);
	if (pci_msix_pending(x, v)) {
		pci_msix_set_pending(x, v, false);
		pci_msix_send(dev, v);
	}
}

void pci_msix_raise(struct pci_device *dev, unsigned vector)
{
	struct pci_msix *x = &dev->msix;

	pthread_mutex_lock(&x->lock);
	if (vector < x->nvec && x->enabled && dev->bus != NULL) {
		if (pci_msix_live(x, vector))
			pci_msix_send(dev, vector);
		else
			pci_msix_set_pending(x, vector, true);
	}
	pthread_mutex_unlock(&x->lock);
}

bool pci_msix_enabled(struct pci_device *dev)
{
	bool on;

	pthread_mutex_lock(&dev->msix.lock);
	on = dev->msix.enabled;
	pthread_mutex_unlock(&dev->msix.lock);
	return on;
}

/* Mirrors Message Control and Bus Master into the MSI-X state (bus lock held). */
static void pci_msix_sync_control(struct pci_device *dev)
{
	struct pci_msix *x = &dev->msix;
	uint32_t ctl;

	if (x->nvec == 0)
		return;
	ctl = pci_cfg_get(dev, x->cap + PCI_MSIX_FLAGS, 2);
	pthread_mutex_lock(&x->lock);
	x->enabled = ctl & PCI_MSIX_FLAGS_ENABLE;
	x->masked = ctl & PCI_MSIX_FLAGS_MASKALL;
	x->master = pci_cfg_get(dev, PCI_COMMAND, 2) & PCI_COMMAND_MASTER;
	for (unsigned v = 0; v < x->nvec; v++)
		pci_msix_refresh(dev, v);
	pthread_mutex_unlock(&x->lock);
}

static bool pci_msix_in_table(const struct pci_msix *x, uint64_t off)
{
	return off >= x->table_off && off - x->table_off < (uint64_t)x->nvec * PCI_MSIX_ENTRY_SIZE;
}

static bool pci_msix_in_pba(const struct pci_msix *x, uint64_t off)
{
	return off >= x->pba_off && off - x->pba_off < (x->nvec + 63) / 64 * 8;
}

static bool pci_msix_claims(const struct pci_device *dev, unsigned bar, uint64_t off, uint32_t len)
{
	const struct pci_msix *x = &dev->msix;

	if (x->nvec == 0 || bar != x->bar)
		return false;
	for (uint32_t i = 0; i < len; i++)
		if (pci_msix_in_table(x, off + i) || pci_msix_in_pba(x, off + i))
			return true;
	return false;
}

/* Byte-wise, so that any width and alignment the guest uses stays in bounds. */
static void pci_msix_read(struct pci_device *dev, uint64_t off, uint8_t *data, uint32_t len)
{
	struct pci_msix *x = &dev->msix;
	const uint8_t *table = (const uint8_t *)x->table, *pba = (const uint8_t *)x->pba;

	pthread_mutex_lock(&x->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t o = off + i;

		if (pci_msix_in_table(x, o))
			data[i] = table[o - x->table_off];
		else if (pci_msix_in_pba(x, o))
			data[i] = pba[o - x->pba_off];
	}
	pthread_mutex_unlock(&x->lock);
}

static void pci_msix_entry_written(struct pci_device *dev, unsigned v,
				   const struct pci_msix_entry *old)
{
	struct pci_msix_entry *e = &dev->msix.table[v];

	/* Vector Control: only the mask bit exists; the rest is reserved, read as 0. */
	e->ctrl &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
	if (e->addr_lo != old->addr_lo || e->addr_hi != old->addr_hi || e->data != old->data)
		dev->msix.route[v] = PCI_ROUTE_STALE;
	pci_msix_refresh(dev, v);
}

/* The PBA is read-only: writes to it are dropped. */
static void pci_msix_write(struct pci_device *dev, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct pci_msix *x = &dev->msix;
	uint8_t *table = (uint8_t *)x->table;
	struct pci_msix_entry old[2];
	unsigned first = 0, count = 0;

	pthread_mutex_lock(&x->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t o = off + i;
		unsigned v;

		if (!pci_msix_in_table(x, o))
			continue;
		v = (unsigned)((o - x->table_off) / PCI_MSIX_ENTRY_SIZE);
		/* Bytes come in order, so the entries touched are consecutive. */
		if (count == 0 || v != first + count - 1) {
			if (count == 2)
				break; /* an access of 8 bytes or less never gets here */
			if (count == 0)
				first = v;
			old[count++] = x->table[v];
		}
		table[o - x->table_off] = data[i];
	}
	for (unsigned i = 0; i < count; i++)
		pci_msix_entry_written(dev, first + i, &old[i]);
	pthread_mutex_unlock(&x->lock);
}

/* ---- BARs ---- */

static uint64_t pci_bar_addr(const struct pci_device *dev, unsigned i)
{
	uint64_t addr = pci_cfg_get(dev, PCI_BAR0 + 4 * i, 4) & (uint32_t)PCI_BAR_MEM_ADDR_MASK;

	if (dev->bars[i].flags & PCI_BAR_64)
		addr |= (uint64_t)pci_cfg_get(dev, PCI_BAR0 + 4 * i + 4, 4) << 32;
	return addr;
}

static bool pci_window_holds(const struct pci_window *w, uint64_t addr, uint64_t size)
{
	return addr >= w->base && addr <= w->end && size <= w->end - addr;
}

static enum vm_action pci_bar_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct pci_bar *bar = opaque;
	struct pci_device *dev = bar->dev;

	if (pci_msix_claims(dev, bar->index, off, len)) {
		pci_msix_read(dev, off, data, len);
		return VM_CONTINUE;
	}
	if (dev->ops != NULL && dev->ops->bar_read != NULL)
		return dev->ops->bar_read(dev->opaque, bar->index, off, data, len);
	return VM_CONTINUE;
}

static enum vm_action pci_bar_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct pci_bar *bar = opaque;
	struct pci_device *dev = bar->dev;

	if (pci_msix_claims(dev, bar->index, off, len)) {
		pci_msix_write(dev, off, data, len);
		return VM_CONTINUE;
	}
	if (dev->ops != NULL && dev->ops->bar_write != NULL)
		return dev->ops->bar_write(dev->opaque, bar->index, off, data, len);
	return VM_CONTINUE;
}

static const struct bus_ops pci_bar_ops = {pci_bar_read, pci_bar_write};

static void pci_bar_unmap(struct pci_device *dev, struct pci_bar *bar)
{
	bus_unregister(dev->bus->mmio, bar->addr);
	bar->mapped = false;
	if (dev->ops != NULL && dev->ops->bar_map != NULL)
		dev->ops->bar_map(dev->opaque, bar->index, bar->addr, false);
}

static void pci_bar_map(struct pci_device *dev, struct pci_bar *bar, uint64_t addr)
{
	int ret = bus_register(dev->bus->mmio, addr, bar->size, &pci_bar_ops, bar);

	/* A BAR over another range simply does not decode: the guest hurts only itself. */
	if (ret != 0) {
		log_debug("%s: BAR %u at %#llx does not decode: %s", dev->name, bar->index,
			  (unsigned long long)addr, strerror(-ret));
		return;
	}
	bar->mapped = true;
	bar->addr = addr;
	if (dev->ops != NULL && dev->ops->bar_map != NULL)
		dev->ops->bar_map(dev->opaque, bar->index, addr, true);
}

/* Makes the MMIO bus match the BAR registers and the memory enable bit (bus lock held). */
static void pci_update_bars(struct pci_device *dev)
{
	bool decode = pci_cfg_get(dev, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY;
	const struct pci_bus *bus = dev->bus;

	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *bar = &dev->bars[i];
		uint64_t addr = pci_bar_addr(dev, i);
		bool want = decode && bar->size != 0 &&
			    (pci_window_holds(&bus->mmio32, addr, bar->size) ||
			     pci_window_holds(&bus->mmio64, addr, bar->size));

		if (bar->mapped && (!want || bar->addr != addr))
			pci_bar_unmap(dev, bar);
		if (want && !bar->mapped)
			pci_bar_map(dev, bar, addr);
	}
}

/* ---- configuration space ---- */

static bool pci_access_ok(uint32_t off, unsigned len)
{
	return (len == 1 || len == 2 || len == 4) && off < PCI_CFG_EXP_SIZE && (off & 3) + len <= 4;
}

static struct pci_device *pci_find(struct pci_bus *bus, unsigned devfn)
{
	/* Function 0 only: header type 0 says "not multi-function", so nothing else is probed. */
	if (devfn >= PCI_SLOTS * 8 || (devfn & 7) != 0)
		return NULL;
	return bus->slots[devfn >> 3];
}

static bool pci_hooked(const struct pci_device *dev, uint32_t off, unsigned len)
{
	return dev->ops != NULL && dev->hook_len != 0 &&
	       pci_overlaps(off, len, dev->hook_off, dev->hook_len);
}

static uint32_t pci_dev_read(struct pci_device *dev, uint32_t off, unsigned len)
{
	if (pci_hooked(dev, off, len) && dev->ops->cfg_read != NULL)
		dev->ops->cfg_read(dev->opaque, off, len);
	return pci_cfg_get(dev, off, len);
}

static void pci_dev_write(struct pci_device *dev, uint32_t off, uint32_t value, unsigned len)
{
	for (unsigned i = 0; i < len; i++) {
		uint8_t b = (uint8_t)(value >> (8 * i));
		uint32_t o = off + i;

		dev->cfg[o] = (uint8_t)((dev->cfg[o] & ~dev->wmask[o]) | (b & dev->wmask[o]));
		dev->cfg[o] &= (uint8_t) ~(b & dev->w1cmask[o]);
	}
	if (pci_overlaps(off, len, PCI_COMMAND, 2) ||
	    pci_overlaps(off, len, PCI_BAR0, 4 * PCI_NUM_BARS))
		pci_update_bars(dev);
	if (pci_overlaps(off, len, PCI_COMMAND, 2) ||
	    (dev->msix.nvec && pci_overlaps(off, len, dev->msix.cap + PCI_MSIX_FLAGS, 2)))
		pci_msix_sync_control(dev);
	if (pci_hooked(dev, off, len) && dev->ops->cfg_write != NULL)
		dev->ops->cfg_write(dev->opaque, off, len);
}

static uint32_t pci_cfg_read_locked(struct pci_bus *bus, unsigned devfn, uint32_t off, unsigned len)
{
	struct pci_device *dev = pci_find(bus, devfn);

	if (dev == NULL || !pci_access_ok(off, len))
		return pci_ones(len);
	return pci_dev_read(dev, off, len);
}

static void pci_cfg_write_locked(struct pci_bus *bus, unsigned devfn, uint32_t off, uint32_t value,
				 unsigned len)
{
	struct pci_device *dev = pci_find(bus, devfn);

	if (dev != NULL && pci_access_ok(off, len))
		pci_dev_write(dev, off, value, len);
}

uint32_t pci_cfg_read(struct pci_bus *bus, unsigned devfn, uint32_t offset, unsigned len)
{
	uint32_t v;

	pthread_mutex_lock(&bus->lock);
	v = pci_cfg_read_locked(bus, devfn, offset, len);
	pthread_mutex_unlock(&bus->lock);
	return v;
}

void pci_cfg_write(struct pci_bus *bus, unsigned devfn, uint32_t offset, uint32_t value,
		   unsigned len)
{
	pthread_mutex_lock(&bus->lock);
	pci_cfg_write_locked(bus, devfn, offset, value, len);
	pthread_mutex_unlock(&bus->lock);
}

/* ---- the guest's ways in: mechanism #1 and ECAM ---- */

static uint32_t pci_le(const uint8_t *data, uint32_t len)
{
	uint32_t v = 0;

	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

static void pci_put_le(uint8_t *data, uint32_t len, uint32_t v)
{
	for (uint32_t i = 0; i < len && i < 4; i++)
		data[i] = (uint8_t)(v >> (8 * i));
}

/* Only dword accesses reach CONFIG_ADDRESS; narrower ones are other I/O (PCI 3.0, 3.2.2.3.2). */
static enum vm_action pci_addr_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct pci_bus *bus = opaque;

	if (off == 0 && len == 4) {
		pthread_mutex_lock(&bus->lock);
		pci_put_le(data, 4, bus->config_address);
		pthread_mutex_unlock(&bus->lock);
	}
	return VM_CONTINUE;
}

static enum vm_action pci_addr_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct pci_bus *bus = opaque;

	if (off == 0 && len == 4) {
		pthread_mutex_lock(&bus->lock);
		bus->config_address = pci_le(data, 4) & PCI_CA_MASK;
		pthread_mutex_unlock(&bus->lock);
	}
	return VM_CONTINUE;
}

/* The function CONFIG_ADDRESS selects, or -1: disabled, or a bus we do not have. */
static int pci_addr_devfn(uint32_t ca)
{
	if (!(ca & PCI_CA_ENABLE) || ((ca >> 16) & 0xff) != 0)
		return -1;
	return (int)((ca >> 8) & 0xff);
}

static enum vm_action pci_data_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct pci_bus *bus = opaque;
	int devfn;

	if (len > 4)
		return VM_CONTINUE;
	pthread_mutex_lock(&bus->lock);
	devfn = pci_addr_devfn(bus->config_address);
	if (devfn >= 0)
		pci_put_le(data, len,
			   pci_cfg_read_locked(bus, (unsigned)devfn,
					       (bus->config_address & 0xfc) + (uint32_t)off, len));
	pthread_mutex_unlock(&bus->lock);
	return VM_CONTINUE;
}

static enum vm_action pci_data_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct pci_bus *bus = opaque;
	int devfn;

	if (len > 4)
		return VM_CONTINUE;
	pthread_mutex_lock(&bus->lock);
	devfn = pci_addr_devfn(bus->config_address);
	if (devfn >= 0)
		pci_cfg_write_locked(bus, (unsigned)devfn,
				     (bus->config_address & 0xfc) + (uint32_t)off,
				     pci_le(data, len), len);
	pthread_mutex_unlock(&bus->lock);
	return VM_CONTINUE;
}

/* ECAM offset: device in bits 19:15, function 14:12, register 11:0. */
static enum vm_action pci_ecam_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	if (len <= 4)
		pci_put_le(data, len,
			   pci_cfg_read(opaque, (unsigned)(off >> 12), off & 0xfff, len));
	return VM_CONTINUE;
}

static enum vm_action pci_ecam_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	if (len <= 4)
		pci_cfg_write(opaque, (unsigned)(off >> 12), off & 0xfff, pci_le(data, len), len);
	return VM_CONTINUE;
}

static const struct bus_ops pci_addr_ops = {pci_addr_read, pci_addr_write};
static const struct bus_ops pci_data_ops = {pci_data_read, pci_data_write};
static const struct bus_ops pci_ecam_ops = {pci_ecam_read, pci_ecam_write};

static void pci_window_init(struct pci_window *w, uint64_t base, uint64_t end)
{
	w->base = base;
	w->end = end > base ? end : base;
	w->next = base;
}

int pci_bus_init(struct pci_bus *bus, const struct pci_bus_config *cfg)
{
	static const struct pci_device_id host_id = {
	    .vendor = PCI_HOST_VENDOR,
	    .device = PCI_HOST_DEVICE,
	    .subsystem_vendor = PCI_HOST_VENDOR,
	    .subsystem = PCI_HOST_DEVICE,
	    .class_code = PCI_CLASS_BRIDGE_HOST,
	};
	int ret = 0;

	memset(bus, 0, sizeof(*bus));
	pthread_mutex_init(&bus->lock, NULL);
	bus->pio = cfg->pio;
	bus->mmio = cfg->mmio;
	bus->ecam_base = cfg->ecam_base;
	bus->msi = cfg->msi;
	pci_window_init(&bus->mmio32, cfg->mmio32_base, cfg->mmio32_end);
	pci_window_init(&bus->mmio64, cfg->mmio64_base, cfg->mmio64_end);
	pci_device_init(&bus->host, "host bridge", &host_id, NULL, NULL);
	bus->host.bus = bus;
	bus->slots[0] = &bus->host;
	if (cfg->pio != NULL &&
	    ((ret = bus_register(cfg->pio, 0xcf8, 4, &pci_addr_ops, bus)) != 0 ||
	     (ret = bus_register(cfg->pio, 0xcfc, 4, &pci_data_ops, bus)) != 0))
		return ret;
	if (cfg->ecam_base != 0)
		ret =
		    bus_register(cfg->mmio, cfg->ecam_base, PCI_ECAM_BUS_SIZE, &pci_ecam_ops, bus);
	return ret;
}

static void pci_release_vectors(struct pci_bus *bus, struct pci_device *dev)
{
	for (unsigned v = 0; v < dev->msix.nvec; v++) {
		if (dev->msix.handle[v] >= 0 && bus->msi.ops != NULL)
			bus->msi.ops->release(bus->msi.opaque, dev->msix.handle[v]);
		dev->msix.handle[v] = -1;
	}
}

void pci_bus_destroy(struct pci_bus *bus)
{
	for (unsigned s = 0; s < PCI_SLOTS; s++)
		if (bus->slots[s] != NULL)
			pci_release_vectors(bus, bus->slots[s]);
	pthread_mutex_destroy(&bus->lock);
}

/* Natural alignment: a BAR's address is a multiple of its size. */
static int pci_alloc_bar(struct pci_window *w32, struct pci_window *w64, const struct pci_bar *bar,
			 uint64_t *addr)
{
	struct pci_window *w = (bar->flags & PCI_BAR_64) && w64->end > w64->base ? w64 : w32;
	uint64_t at = (w->next + bar->size - 1) & ~(bar->size - 1);

	if (at < w->next || !pci_window_holds(w, at, bar->size))
		return -ENOSPC;
	w->next = at + bar->size;
	*addr = at;
	return 0;
}

static int pci_assign_bars(struct pci_bus *bus, struct pci_device *dev)
{
	struct pci_window w32 = bus->mmio32, w64 = bus->mmio64;
	uint64_t addr[PCI_NUM_BARS] = {0};

	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		if (dev->bars[i].size && pci_alloc_bar(&w32, &w64, &dev->bars[i], &addr[i]) != 0)
			return -ENOSPC;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (dev->bars[i].size == 0)
			continue;
		pci_cfg_set(dev, PCI_BAR0 + 4 * i,
			    (uint32_t)addr[i] | (pci_cfg_get(dev, PCI_BAR0 + 4 * i, 4) & 0xf), 4);
		if (dev->bars[i].flags & PCI_BAR_64)
			pci_cfg_set(dev, PCI_BAR0 + 4 * i + 4, (uint32_t)(addr[i] >> 32), 4);
	}
	bus->mmio32 = w32;
	bus->mmio64 = w64;
	return 0;
}

static int pci_alloc_vectors(struct pci_bus *bus, struct pci_device *dev)
{
	for (unsigned v = 0; v < dev->msix.nvec && bus->msi.ops != NULL; v++) {
		int h = bus->msi.ops->alloc(bus->msi.opaque);

		if (h < 0) {
			pci_release_vectors(bus, dev);
			return h;
		}
		dev->msix.handle[v] = h;
	}
	return 0;
}

int pci_add_device(struct pci_bus *bus, struct pci_device *dev)
{
	unsigned slot = 1;
	int ret;

	pthread_mutex_lock(&bus->lock);
	while (slot < PCI_SLOTS && bus->slots[slot] != NULL)
		slot++;
	ret = slot < PCI_SLOTS ? pci_alloc_vectors(bus, dev) : -ENOSPC;
	if (ret == 0 && (ret = pci_assign_bars(bus, dev)) != 0)
		pci_release_vectors(bus, dev);
	if (ret == 0) {
		dev->bus = bus;
		dev->slot = slot;
		bus->slots[slot] = dev;
	}
	pthread_mutex_unlock(&bus->lock);
	return ret;
}

/* ---- snapshots ---- */

void pci_device_save(struct pci_device *dev, struct pci_device_state *st)
{
	memset(st, 0, sizeof(*st));
	if (dev->bus != NULL)
		pthread_mutex_lock(&dev->bus->lock);
	memcpy(st->cfg, dev->cfg, sizeof(st->cfg));
	pthread_mutex_lock(&dev->msix.lock);
	memcpy(st->msix, dev->msix.table, sizeof(st->msix));
	memcpy(st->pba, dev->msix.pba, sizeof(st->pba));
	pthread_mutex_unlock(&dev->msix.lock);
	if (dev->bus != NULL)
		pthread_mutex_unlock(&dev->bus->lock);
}

static void pci_restore_msix(struct pci_device *dev, const struct pci_device_state *st)
{
	struct pci_msix *x = &dev->msix;

	pthread_mutex_lock(&x->lock);
	for (unsigned v = 0; v < x->nvec; v++) {
		x->table[v] = st->msix[v];
		x->table[v].ctrl &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
		x->route[v] = PCI_ROUTE_STALE;
		pci_msix_set_pending(x, v, st->pba[v / 64] & (1ULL << (v % 64)));
	}
	pthread_mutex_unlock(&x->lock);
}

void pci_device_restore(struct pci_device *dev, const struct pci_device_state *st)
{
	if (dev->bus != NULL)
		pthread_mutex_lock(&dev->bus->lock);
	for (unsigned o = 0; o < PCI_CFG_EXP_SIZE; o++) {
		uint8_t guest = dev->wmask[o] | dev->w1cmask[o];

		dev->cfg[o] = (uint8_t)((dev->cfg[o] & ~guest) | (st->cfg[o] & guest));
	}
	pci_restore_msix(dev, st);
	if (dev->bus != NULL) {
		pci_update_bars(dev);
		pci_msix_sync_control(dev);
		pthread_mutex_unlock(&dev->bus->lock);
	}
}
