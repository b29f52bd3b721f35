/*
 * PCI bus 0 (PCI Local Bus 3.0, PCI Express ECAM): a host bridge, type-0
 * functions with 4 KiB configuration spaces guarded by write masks, memory
 * BARs the guest may size and move, a capability list, and MSI-X.
 *
 * The guest reaches configuration space through mechanism #1 (CONFIG_ADDRESS
 * at 0xCF8, CONFIG_DATA at 0xCFC-0xCFF) and through ECAM. Every value it
 * writes is hostile: read-only bits never change, BARs decode only inside the
 * bus's windows and never over another range, MSI-X state stays in bounds.
 *
 * MSI-X messages go to a pluggable sink (KVM GSI routes and irqfds in a VM,
 * a fake in unit tests), so the bus never depends on KVM itself.
 *
 * Locking: one mutex per bus serializes configuration accesses and BAR moves;
 * device hooks (bar_map, cfg_read, cfg_write) run with it held and must not
 * re-enter configuration space. MSI-X delivery has a per-device lock and may
 * be called from any thread.
 */
#ifndef TABIQUE_BUS_PCI_H
#define TABIQUE_BUS_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/bus.h"

#define PCI_CFG_SIZE	  256  /* what mechanism #1 reaches */
#define PCI_CFG_EXP_SIZE  4096 /* what ECAM reaches */
#define PCI_SLOTS	  32   /* device numbers on bus 0; function 0 only */
#define PCI_NUM_BARS	  6
#define PCI_ECAM_BUS_SIZE (PCI_SLOTS * 8 * PCI_CFG_EXP_SIZE) /* 1 MiB */

/* Type-0 header (PCI 3.0, 6.1). */
#define PCI_VENDOR_ID	     0x00
#define PCI_DEVICE_ID	     0x02
#define PCI_COMMAND	     0x04
#define PCI_STATUS	     0x06
#define PCI_REVISION_ID	     0x08
#define PCI_CLASS_PROG	     0x09
#define PCI_HEADER_TYPE	     0x0e
#define PCI_BAR0	     0x10
#define PCI_SUBSYSTEM_VENDOR 0x2c
#define PCI_SUBSYSTEM_ID     0x2e
#define PCI_CAPABILITY_LIST  0x34
#define PCI_INTERRUPT_LINE   0x3c
#define PCI_INTERRUPT_PIN    0x3d
#define PCI_CAP_START	     0x40 /* first byte after the header */

#define PCI_COMMAND_MEMORY	 0x0002
#define PCI_COMMAND_MASTER	 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST	 0x0010
#define PCI_STATUS_ERRORS	 0xf900 /* parity, aborts, SERR: write 1 to clear */

#define PCI_BAR_MEM_TYPE_64   0x04
#define PCI_BAR_MEM_PREFETCH  0x08
#define PCI_BAR_MEM_ADDR_MASK (~0xfull)

#define PCI_CLASS_BRIDGE_HOST 0x060000
#define PCI_CLASS_OTHERS      0xff0000

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* MSI-X capability (PCI 3.0, 6.8.2) and table entries. */
#define PCI_MSIX_FLAGS		    2 /* Message Control, from the capability */
#define PCI_MSIX_TABLE		    4
#define PCI_MSIX_PBA		    8
#define PCI_MSIX_CAP_LEN	    12
#define PCI_MSIX_FLAGS_QSIZE	    0x07ff
#define PCI_MSIX_FLAGS_MASKALL	    0x4000
#define PCI_MSIX_FLAGS_ENABLE	    0x8000
#define PCI_MSIX_ENTRY_SIZE	    16
#define PCI_MSIX_ENTRY_CTRL_MASKBIT 0x1
/* Our own cap: enough for a virtio device with 64 queues. */
#define PCI_MSIX_MAX_VECTORS 128

/* Where MSI-X messages go. A handle names one vector's interrupt source. */
struct pci_msi_ops {
	/* A new source, not routed yet. Returns a handle >= 0 or -errno. */
	int (*alloc)(void *opaque);
	/* Points the source at an MSI message. Returns 0 or -errno (the guest's message was
	 * refused). */
	int (*route)(void *opaque, int handle, uint64_t addr, uint32_t data);
	/* Sends the message last routed. Any thread, never blocks for long. */
	void (*raise)(void *opaque, int handle);
	void (*release)(void *opaque, int handle);
};

struct pci_msi_sink {
	const struct pci_msi_ops *ops; /* NULL: MSI-X messages are dropped */
	void *opaque;
};

/*
 * What a device implements. Every hook is optional. BAR accesses outside the
 * MSI-X table and PBA go to bar_read/bar_write without the bus lock (they are
 * the data path); the others run with the bus lock held.
 */
struct pci_device_ops {
	enum vm_action (*bar_read)(void *opaque, unsigned bar, uint64_t offset, uint8_t *data,
				   uint32_t len);
	enum vm_action (*bar_write)(void *opaque, unsigned bar, uint64_t offset,
				    const uint8_t *data, uint32_t len);
	/* The BAR started (mapped) or stopped decoding at addr: move ioeventfds. */
	void (*bar_map)(void *opaque, unsigned bar, uint64_t addr, bool mapped);
	/*
	 * Accesses that touch [hook_off, hook_off + hook_len) of configuration
	 * space: cfg_read runs before the bytes are read from dev->cfg (it may
	 * update them), cfg_write after the masked write went into dev->cfg.
	 */
	void (*cfg_read)(void *opaque, uint32_t offset, uint32_t len);
	void (*cfg_write)(void *opaque, uint32_t offset, uint32_t len);
};

struct pci_device_id {
	uint16_t vendor, device;
	uint16_t subsystem_vendor, subsystem;
	uint8_t revision;
	uint32_t class_code; /* class, subclass, programming interface */
};

#define PCI_BAR_64	 0x1u /* takes this BAR and the next */
#define PCI_BAR_PREFETCH 0x2u

struct pci_device;

struct pci_bar {
	struct pci_device *dev;
	unsigned index;
	uint64_t size;	/* power of two >= 4096; 0 = not implemented */
	unsigned flags; /* PCI_BAR_* */
	bool mapped;	/* decoding at addr, registered on the MMIO bus */
	uint64_t addr;
};

struct pci_msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

struct pci_msix {
	pthread_mutex_t lock; /* the fields below */
	unsigned nvec;	      /* 0 = no MSI-X */
	unsigned bar;
	uint32_t table_off, pba_off;
	uint8_t cap;		      /* configuration offset of the capability */
	bool enabled, masked, master; /* MSI-X Enable, Function Mask, Bus Master */
	struct pci_msix_entry table[PCI_MSIX_MAX_VECTORS];
	uint64_t pba[PCI_MSIX_MAX_VECTORS / 64];
	int handle[PCI_MSIX_MAX_VECTORS];    /* sink handles, -1 = none */
	uint8_t route[PCI_MSIX_MAX_VECTORS]; /* does the sink have the current message? (pci.c) */
};

struct pci_bus;

/* One function. Embed it in the device and set it up before pci_add_device(). */
struct pci_device {
	const char *name;
	const struct pci_device_ops *ops;
	void *opaque;
	uint8_t cfg[PCI_CFG_EXP_SIZE];
	uint8_t wmask[PCI_CFG_EXP_SIZE];   /* bits the guest may change */
	uint8_t w1cmask[PCI_CFG_EXP_SIZE]; /* bits a written 1 clears */
	uint32_t hook_off, hook_len;
	uint8_t last_cap; /* offset of the last capability, 0 = none */
	uint8_t cap_end;  /* where the next capability may go */
	struct pci_bar bars[PCI_NUM_BARS];
	struct pci_msix msix;
	struct pci_bus *bus; /* set by pci_add_device */
	unsigned slot;
};

struct pci_window {
	uint64_t base, end; /* [base, end); end == base: no window */
	uint64_t next;	    /* allocation cursor */
};

struct pci_bus_config {
	struct bus *pio;  /* NULL: no mechanism #1 */
	struct bus *mmio; /* BARs, and ECAM when ecam_base != 0 */
	uint64_t ecam_base;
	uint64_t mmio32_base, mmio32_end; /* 32-bit BARs */
	uint64_t mmio64_base, mmio64_end; /* 64-bit BARs; empty: they go below 4 GiB */
	struct pci_msi_sink msi;
};

struct pci_bus {
	pthread_mutex_t lock; /* configuration space, BAR moves, config_address */
	struct bus *pio, *mmio;
	uint64_t ecam_base;
	struct pci_window mmio32, mmio64;
	struct pci_msi_sink msi;
	uint32_t config_address;
	struct pci_device *slots[PCI_SLOTS];
	struct pci_device host; /* slot 0 */
};

/*
 * Creates bus 0 with its host bridge in slot 0 and claims 0xCF8/0xCFC and
 * the ECAM window. Returns 0 or a negative errno (-EEXIST: a range is taken).
 */
int pci_bus_init(struct pci_bus *bus, const struct pci_bus_config *cfg);
/* Releases the bus's interrupt sources; call once no vCPU runs. */
void pci_bus_destroy(struct pci_bus *bus);

/*
 * Initializes a function's header: ids, class, a writable command register,
 * write-1-to-clear error bits, interrupt pin 0 (no INTx). The caller then adds
 * BARs, capabilities and MSI-X.
 */
void pci_device_init(struct pci_device *dev, const char *name, const struct pci_device_id *id,
		     const struct pci_device_ops *ops, void *opaque);

/* Declares memory BAR index. Returns 0 or -EINVAL (size, index, or overlap with a 64-bit pair). */
int pci_device_set_bar(struct pci_device *dev, unsigned index, uint64_t size, unsigned flags);

/*
 * Appends a capability of len bytes (id and next pointer included) to the
 * list. Returns its offset in configuration space, or -ENOSPC.
 */
int pci_device_add_cap(struct pci_device *dev, uint8_t id, uint8_t len);

/*
 * Adds an MSI-X capability with nvec vectors (1..PCI_MSIX_MAX_VECTORS), its
 * table and PBA at the given 8-aligned offsets of memory BAR bar. Returns 0,
 * -EINVAL or -ENOSPC.
 */
int pci_device_add_msix(struct pci_device *dev, unsigned nvec, unsigned bar, uint32_t table_off,
			uint32_t pba_off);

/* Little-endian accessors to dev->cfg for device set-up and hooks. */
void pci_cfg_set(struct pci_device *dev, uint32_t offset, uint32_t value, unsigned len);
uint32_t pci_cfg_get(const struct pci_device *dev, uint32_t offset, unsigned len);
/* Marks len bytes at offset as guest-writable (all their bits). */
void pci_cfg_set_writable(struct pci_device *dev, uint32_t offset, unsigned len);

/*
 * Plugs dev into the first free slot and assigns its BARs naturally aligned
 * addresses in the windows (not decoding until the guest sets the command
 * register's memory bit). Returns 0, -ENOSPC (no slot, no room in the
 * windows) or -errno from the interrupt sink.
 */
int pci_add_device(struct pci_bus *bus, struct pci_device *dev);

/*
 * Configuration access to bus 0, function devfn (device << 3 | function),
 * len 1, 2 or 4 bytes that stay inside one aligned dword. Reads of absent
 * functions or bad accesses return all ones; such writes are dropped.
 */
uint32_t pci_cfg_read(struct pci_bus *bus, unsigned devfn, uint32_t offset, unsigned len);
void pci_cfg_write(struct pci_bus *bus, unsigned devfn, uint32_t offset, uint32_t value,
		   unsigned len);

/*
 * Signals MSI-X vector: sent when MSI-X is enabled, bus mastering is on and
 * neither the function nor the vector is masked; held in the PBA while
 * masked; dropped when MSI-X is off. Any thread.
 */
void pci_msix_raise(struct pci_device *dev, unsigned vector);
/* Whether MSI-X Enable is set (the virtio transport then ignores ISR/INTx). */
bool pci_msix_enabled(struct pci_device *dev);

/* The guest-visible state of a function, for snapshots and migration. */
struct pci_device_state {
	uint8_t cfg[PCI_CFG_EXP_SIZE];
	struct pci_msix_entry msix[PCI_MSIX_MAX_VECTORS];
	uint64_t pba[PCI_MSIX_MAX_VECTORS / 64];
};

void pci_device_save(struct pci_device *dev, struct pci_device_state *st);
/*
 * Loads saved state as untrusted input: only guest-writable bits are taken,
 * then BARs and MSI-X routes are rebuilt as if the guest had written them.
 */
void pci_device_restore(struct pci_device *dev, const struct pci_device_state *st);

#endif
