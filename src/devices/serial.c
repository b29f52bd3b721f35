#include "devices/serial.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Register offsets; DLAB (LCR bit 7) turns 0 and 1 into the divisor latch. */
#define SERIAL_RBR 0 /* read: receive buffer; write: THR */
#define SERIAL_IER 1
#define SERIAL_IIR 2 /* read: IIR; write: FCR */
#define SERIAL_LCR 3
#define SERIAL_MCR 4
#define SERIAL_LSR 5
#define SERIAL_MSR 6
#define SERIAL_SCR 7

#define SERIAL_IER_RDI	0x01 /* received data available */
#define SERIAL_IER_THRI 0x02 /* transmitter holding register empty */
#define SERIAL_IER_RLSI 0x04 /* receiver line status */
#define SERIAL_IER_MSI	0x08 /* modem status */
#define SERIAL_IER_MASK 0x0f

#define SERIAL_IIR_MSI	0x00
#define SERIAL_IIR_NONE 0x01
#define SERIAL_IIR_THRI 0x02
#define SERIAL_IIR_RDI	0x04
#define SERIAL_IIR_RLSI 0x06
#define SERIAL_IIR_CTI	0x0c /* character timeout: data below the trigger level */
#define SERIAL_IIR_FIFO 0xc0

#define SERIAL_FCR_ENABLE 0x01
#define SERIAL_FCR_CLR_RX 0x02
#define SERIAL_FCR_DMA	  0x08
#define SERIAL_FCR_TRIG	  0xc0
#define SERIAL_FCR_KEEP	  (SERIAL_FCR_ENABLE | SERIAL_FCR_DMA | SERIAL_FCR_TRIG)

#define SERIAL_LCR_DLAB 0x80

#define SERIAL_MCR_DTR	0x01
#define SERIAL_MCR_RTS	0x02
#define SERIAL_MCR_OUT1 0x04
#define SERIAL_MCR_OUT2 0x08 /* gates the interrupt line on PCs */
#define SERIAL_MCR_LOOP 0x10
#define SERIAL_MCR_MASK 0x1f

#define SERIAL_LSR_DR	0x01
#define SERIAL_LSR_OE	0x02
#define SERIAL_LSR_ERR	0x1e /* OE, PE, FE, BI */
#define SERIAL_LSR_THRE 0x20
#define SERIAL_LSR_TEMT 0x40

#define SERIAL_MSR_DCTS	 0x01
#define SERIAL_MSR_DDSR	 0x02
#define SERIAL_MSR_TERI	 0x04
#define SERIAL_MSR_DDCD	 0x08
#define SERIAL_MSR_DELTA 0x0f
#define SERIAL_MSR_CTS	 0x10
#define SERIAL_MSR_DSR	 0x20
#define SERIAL_MSR_RI	 0x40
#define SERIAL_MSR_DCD	 0x80

#define SERIAL_FIFO_SIZE       16
#define SERIAL_DEFAULT_DIVISOR 12 /* 9600 baud, what firmware leaves behind */

struct serial {
	pthread_mutex_t lock;
	struct irq_line irq;
	struct serial_output out;
	void (*rx_ready)(void *opaque);
	void *rx_ready_opaque;
	bool irq_level;	 /* last level driven on the line */
	bool rx_refused; /* serial_receive turned bytes away: wake the console later */
	struct serial_state st;
};

/* What an access must do once the lock is dropped. */
struct serial_effects {
	bool tx;
	uint8_t tx_byte;
	bool rx_ready;
};

static bool serial_loopback(const struct serial_state *st)
{
	return st->mcr & SERIAL_MCR_LOOP;
}

static void serial_rx_push(struct serial_state *st, uint8_t v)
{
	st->rx[(st->rx_head + st->rx_count) % SERIAL_RX_CAPACITY] = v;
	st->rx_count++;
}

/* Reading an empty receiver returns the last byte again, as the RBR latch does. */
static uint8_t serial_rx_pop(struct serial_state *st)
{
	if (st->rx_count == 0)
		return st->rbr;
	st->rbr = st->rx[st->rx_head];
	st->rx_head = (st->rx_head + 1) % SERIAL_RX_CAPACITY;
	st->rx_count--;
	return st->rbr;
}

static void serial_rx_clear(struct serial_state *st)
{
	st->rx_head = 0;
	st->rx_count = 0;
}

static unsigned int serial_rx_trigger(uint8_t fcr)
{
	static const unsigned int levels[4] = {1, 4, 8, 14};

	return (fcr & SERIAL_FCR_ENABLE) ? levels[fcr >> 6] : 1;
}

/* The highest-priority enabled interrupt, encoded as IIR bits 0..3. */
static uint8_t serial_pending(const struct serial_state *st)
{
	if ((st->ier & SERIAL_IER_RLSI) && st->lsr_err)
		return SERIAL_IIR_RLSI;
	if ((st->ier & SERIAL_IER_RDI) && st->rx_count > 0) {
		/* Below the trigger level a real FIFO times out after 4 characters; do it now. */
		if (st->rx_count < serial_rx_trigger(st->fcr))
			return SERIAL_IIR_CTI;
		return SERIAL_IIR_RDI;
	}
	if ((st->ier & SERIAL_IER_THRI) && st->thr_ipending)
		return SERIAL_IIR_THRI;
	if ((st->ier & SERIAL_IER_MSI) && st->msr_delta)
		return SERIAL_IIR_MSI;
	return SERIAL_IIR_NONE;
}

static bool serial_irq_wanted(const struct serial_state *st)
{
	return serial_pending(st) != SERIAL_IIR_NONE && (st->mcr & SERIAL_MCR_OUT2);
}

/* Called with the lock held so that two threads cannot drive the line out of order. */
static void serial_update_irq(struct serial *s)
{
	bool level = serial_irq_wanted(&s->st);

	if (level != s->irq_level) {
		s->irq_level = level;
		irq_line_set(&s->irq, level);
	}
}

/* Modem lines as the guest sees them: a connected terminal, or MCR in loopback. */
static uint8_t serial_msr_lines(uint8_t mcr)
{
	uint8_t v = 0;

	if (!(mcr & SERIAL_MCR_LOOP))
		return SERIAL_MSR_CTS | SERIAL_MSR_DSR | SERIAL_MSR_DCD;
	if (mcr & SERIAL_MCR_RTS)
		v |= SERIAL_MSR_CTS;
	if (mcr & SERIAL_MCR_DTR)
		v |= SERIAL_MSR_DSR;
	if (mcr & SERIAL_MCR_OUT1)
		v |= SERIAL_MSR_RI;
	if (mcr & SERIAL_MCR_OUT2)
		v |= SERIAL_MSR_DCD;
	return v;
}

static uint8_t serial_read_iir(struct serial_state *st)
{
	uint8_t id = serial_pending(st);

	/* Reading IIR acknowledges a THR-empty interrupt it reports. */
	if (id == SERIAL_IIR_THRI)
		st->thr_ipending = 0;
	return id | ((st->fcr & SERIAL_FCR_ENABLE) ? SERIAL_IIR_FIFO : 0);
}

static uint8_t serial_read_lsr(struct serial_state *st)
{
	uint8_t v = SERIAL_LSR_THRE | SERIAL_LSR_TEMT | st->lsr_err;

	if (st->rx_count > 0)
		v |= SERIAL_LSR_DR;
	st->lsr_err = 0;
	return v;
}

static uint8_t serial_read_msr(struct serial_state *st)
{
	uint8_t v = serial_msr_lines(st->mcr) | st->msr_delta;

	st->msr_delta = 0;
	return v;
}

static uint8_t serial_read_reg(struct serial_state *st, unsigned int reg)
{
	bool dlab = st->lcr & SERIAL_LCR_DLAB;

	switch (reg) {
	case SERIAL_RBR:
		return dlab ? st->dll : serial_rx_pop(st);
	case SERIAL_IER:
		return dlab ? st->dlm : st->ier;
	case SERIAL_IIR:
		return serial_read_iir(st);
	case SERIAL_LCR:
		return st->lcr;
	case SERIAL_MCR:
		return st->mcr;
	case SERIAL_LSR:
		return serial_read_lsr(st);
	case SERIAL_MSR:
		return serial_read_msr(st);
	default:
		return st->scr;
	}
}

/* The byte leaves at once, so THR is empty again right after the write. */
static void serial_write_thr(struct serial_state *st, uint8_t v, struct serial_effects *fx)
{
	unsigned int room = (st->fcr & SERIAL_FCR_ENABLE) ? SERIAL_FIFO_SIZE : 1;

	st->thr_ipending = 1;
	if (!serial_loopback(st)) {
		fx->tx = true;
		fx->tx_byte = v;
		return;
	}
	/* Looped back into a full FIFO: overrun, and the guest is told so. */
	if (st->rx_count >= room)
		st->lsr_err |= SERIAL_LSR_OE;
	else
		serial_rx_push(st, v);
}

static void serial_write_ier(struct serial_state *st, uint8_t v)
{
	v &= SERIAL_IER_MASK;
	/* Enabling the THR-empty interrupt while THR is empty raises it. */
	if ((v & SERIAL_IER_THRI) && !(st->ier & SERIAL_IER_THRI))
		st->thr_ipending = 1;
	st->ier = v;
}

/* Other FCR bits are programmed only with FCR0 set; a mode change empties the FIFOs. */
static void serial_write_fcr(struct serial_state *st, uint8_t v)
{
	bool was_enabled = st->fcr & SERIAL_FCR_ENABLE;

	if (!(v & SERIAL_FCR_ENABLE)) {
		if (was_enabled)
			serial_rx_clear(st);
		st->fcr = 0;
		return;
	}
	if (!was_enabled || (v & SERIAL_FCR_CLR_RX))
		serial_rx_clear(st);
	st->fcr = v & SERIAL_FCR_KEEP;
}

static void serial_write_mcr(struct serial_state *st, uint8_t v)
{
	uint8_t before = serial_msr_lines(st->mcr), after, changed;

	st->mcr = v & SERIAL_MCR_MASK;
	after = serial_msr_lines(st->mcr);
	changed = before ^ after;
	if (changed & SERIAL_MSR_CTS)
		st->msr_delta |= SERIAL_MSR_DCTS;
	if (changed & SERIAL_MSR_DSR)
		st->msr_delta |= SERIAL_MSR_DDSR;
	if (changed & SERIAL_MSR_DCD)
		st->msr_delta |= SERIAL_MSR_DDCD;
	if ((before & SERIAL_MSR_RI) && !(after & SERIAL_MSR_RI))
		st->msr_delta |= SERIAL_MSR_TERI; /* trailing edge only */
}

static void serial_write_reg(struct serial_state *st, unsigned int reg, uint8_t v,
			     struct serial_effects *fx)
{
	bool dlab = st->lcr & SERIAL_LCR_DLAB;

	switch (reg) {
	case SERIAL_RBR:
		if (dlab)
			st->dll = v;
		else
			serial_write_thr(st, v, fx);
		break;
	case SERIAL_IER:
		if (dlab)
			st->dlm = v;
		else
			serial_write_ier(st, v);
		break;
	case SERIAL_IIR:
		serial_write_fcr(st, v);
		break;
	case SERIAL_LCR:
		st->lcr = v;
		break;
	case SERIAL_MCR:
		serial_write_mcr(st, v);
		break;
	case SERIAL_SCR:
		st->scr = v;
		break;
	default:
		break; /* LSR and MSR are read-only */
	}
}

/* Decides, under the lock, whether a console waiting for room should be woken. */
static void serial_check_rx_room(struct serial *s, struct serial_effects *fx)
{
	if (!s->rx_refused || serial_loopback(&s->st))
		return;
	if (s->st.rx_count > SERIAL_RX_CAPACITY / 2)
		return;
	s->rx_refused = false;
	fx->rx_ready = s->rx_ready != NULL;
}

/* Ends an access: drive the IRQ, drop the lock, then call out. */
static void serial_finish(struct serial *s, struct serial_effects *fx)
{
	serial_update_irq(s);
	serial_check_rx_room(s, fx);
	pthread_mutex_unlock(&s->lock);
	if (fx->tx && s->out.write != NULL)
		s->out.write(s->out.opaque, &fx->tx_byte, 1);
	if (fx->rx_ready)
		s->rx_ready(s->rx_ready_opaque);
}

/*
 * A wide access is split into byte accesses to consecutive registers, as the
 * ISA bus does for an 8-bit device; bytes past the last register read as ones.
 */
static enum vm_action serial_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct serial *s = opaque;
	struct serial_effects fx = {0};

	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < len; i++) {
		if (offset < SERIAL_NREGS && i < SERIAL_NREGS - offset)
			data[i] = serial_read_reg(&s->st, (unsigned int)(offset + i));
		else
			data[i] = 0xff;
	}
	serial_finish(s, &fx);
	return VM_CONTINUE;
}

static enum vm_action serial_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct serial *s = opaque;
	struct serial_effects fx = {0};

	pthread_mutex_lock(&s->lock);
	/* Each register is visited at most once, so at most one byte is transmitted. */
	for (uint32_t i = 0; offset < SERIAL_NREGS && i < len && i < SERIAL_NREGS - offset; i++)
		serial_write_reg(&s->st, (unsigned int)(offset + i), data[i], &fx);
	serial_finish(s, &fx);
	return VM_CONTINUE;
}

const struct bus_ops serial_ops = {serial_read, serial_write};

static void serial_reset_state(struct serial_state *st)
{
	memset(st, 0, sizeof(*st));
	st->dll = SERIAL_DEFAULT_DIVISOR;
}

struct serial *serial_create(struct irq_line irq, struct serial_output out)
{
	struct serial *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return NULL;
	}
	s->irq = irq;
	s->out = out;
	serial_reset_state(&s->st);
	return s;
}

void serial_destroy(struct serial *s)
{
	if (s == NULL)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int serial_attach(struct serial *s, struct bus *pio, uint16_t base)
{
	return bus_register(pio, base, SERIAL_NREGS, &serial_ops, s);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	/* In loopback mode the receiver is cut off from the line. */
	if (!serial_loopback(&s->st)) {
		n = SERIAL_RX_CAPACITY - s->st.rx_count;
		if (n > len)
			n = len;
		for (size_t i = 0; i < n; i++)
			serial_rx_push(&s->st, buf[i]);
	}
	if (n < len)
		s->rx_refused = true;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

void serial_set_rx_ready(struct serial *s, void (*ready)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&s->lock);
	s->rx_ready = ready;
	s->rx_ready_opaque = opaque;
	pthread_mutex_unlock(&s->lock);
}

void serial_save(struct serial *s, struct serial_state *out)
{
	pthread_mutex_lock(&s->lock);
	memcpy(out, &s->st, sizeof(*out));
	pthread_mutex_unlock(&s->lock);
}

static bool serial_state_valid(const struct serial_state *st)
{
	if (st->rx_head >= SERIAL_RX_CAPACITY || st->rx_count > SERIAL_RX_CAPACITY)
		return false;
	if ((st->ier & ~SERIAL_IER_MASK) || (st->mcr & ~SERIAL_MCR_MASK))
		return false;
	if ((st->fcr & ~SERIAL_FCR_KEEP) || (st->lsr_err & ~SERIAL_LSR_ERR))
		return false;
	return !(st->msr_delta & ~SERIAL_MSR_DELTA) && st->thr_ipending <= 1;
}

int serial_restore(struct serial *s, const struct serial_state *in)
{
	bool wake;

	if (!serial_state_valid(in))
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	memcpy(&s->st, in, sizeof(s->st));
	/* Drive the line even if our cached level agrees: the line may be new. */
	s->irq_level = serial_irq_wanted(&s->st);
	irq_line_set(&s->irq, s->irq_level);
	/* A console may be waiting on the state we replaced: a spurious wake-up is harmless. */
	s->rx_refused = false;
	wake = s->rx_ready != NULL && s->st.rx_count < SERIAL_RX_CAPACITY;
	pthread_mutex_unlock(&s->lock);
	if (wake)
		s->rx_ready(s->rx_ready_opaque);
	return 0;
}
