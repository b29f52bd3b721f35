/*
 * A 16550A UART (the PC16550D register set) as a PC COM port: Linux's 8250
 * driver identifies it as "16550A". Transmission is instantaneous (every THR
 * write reaches the output callback at once); received bytes wait in a ring
 * far larger than the 16-byte FIFO, so the console never has to drop one.
 *
 * Threads: vCPU threads (through the bus) and the console thread
 * (serial_receive) may call in concurrently; one mutex per device.
 */
#ifndef TABIQUE_DEVICES_SERIAL_H
#define TABIQUE_DEVICES_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "devices/irq.h"

#define SERIAL_NREGS	   8	/* a UART claims base..base+7 */
#define SERIAL_RX_CAPACITY 4096 /* bytes the console may queue for the guest */

struct serial;

/*
 * Where transmitted bytes go. write() is called from vCPU threads, without
 * the device lock held, possibly from two vCPUs at once if the guest does not
 * serialize its THR writes; it may block (a slow terminal then stalls the
 * writing vCPU, as a real UART would).
 */
struct serial_output {
	void (*write)(void *opaque, const uint8_t *buf, size_t len);
	void *opaque;
};

/* Everything a snapshot needs; plain data, no pointers. */
struct serial_state {
	uint16_t rx_head;  /* index in rx[] of the oldest byte, < SERIAL_RX_CAPACITY */
	uint16_t rx_count; /* bytes waiting, <= SERIAL_RX_CAPACITY */
	uint8_t ier;	   /* bits 0..3 */
	uint8_t lcr;
	uint8_t mcr;	   /* bits 0..4 */
	uint8_t fcr;	   /* FIFO enable, DMA mode, RX trigger (bits 0, 3, 6, 7) */
	uint8_t lsr_err;   /* latched OE/PE/FE/BI, cleared by reading LSR */
	uint8_t msr_delta; /* MSR bits 0..3, cleared by reading MSR */
	uint8_t scr;
	uint8_t dll;
	uint8_t dlm;
	uint8_t rbr;	      /* last byte handed to the guest */
	uint8_t thr_ipending; /* 0 or 1: THR-empty interrupt not yet acknowledged */
	uint8_t rx[SERIAL_RX_CAPACITY];
};

/* Bus handlers; opaque is the struct serial, offsets 0..7. */
extern const struct bus_ops serial_ops;

/* A UART in its reset state. Returns NULL on ENOMEM. */
struct serial *serial_create(struct irq_line irq, struct serial_output out);
/* Frees the device; unregister it from the bus (or destroy the bus) first. */
void serial_destroy(struct serial *s);
/* Claims base..base+7 on the port bus. Returns 0 or bus_register's error. */
int serial_attach(struct serial *s, struct bus *pio, uint16_t base);

/*
 * Queues bytes from the console for the guest. Returns how many were taken:
 * fewer than len when the ring is full or the UART is in loopback mode (its
 * receiver is cut off from the line). Bytes not taken stay the caller's; try
 * again after the rx_ready callback (below) or a short wait.
 */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);

/*
 * Optional: ready() is called once after serial_receive refused bytes, as
 * soon as the guest has drained the ring to half full (or cleared it, or left
 * loopback mode). It runs on a vCPU thread without the device lock held and
 * must not block (write an eventfd). Set it before the VM runs.
 */
void serial_set_rx_ready(struct serial *s, void (*ready)(void *opaque), void *opaque);

void serial_save(struct serial *s, struct serial_state *out);
/* Loads a saved state and drives the IRQ line to match. Returns 0 or -EINVAL. */
int serial_restore(struct serial *s, const struct serial_state *in);

#endif
