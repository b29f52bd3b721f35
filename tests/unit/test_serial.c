#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "devices/serial.h"

#define BASE 0x3f8
#define RBR  0
#define IER  1
#define IIR  2
#define FCR  2
#define LCR  3
#define MCR  4
#define LSR  5
#define MSR  6
#define SCR  7

/* What the guest and the host see of one UART. */
struct rig {
	struct bus bus;
	struct serial *s;
	bool level;
	unsigned int irq_calls;
	uint8_t out[1 << 20];
	size_t out_len;
	unsigned int rx_ready_calls;
};

static void rig_irq(void *opaque, uint32_t gsi, bool level)
{
	struct rig *r = opaque;

	cr_assert_eq(gsi, 4);
	r->level = level;
	r->irq_calls++;
}

static void rig_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct rig *r = opaque;

	cr_assert_leq(r->out_len + len, sizeof(r->out));
	memcpy(r->out + r->out_len, buf, len);
	r->out_len += len;
}

static void rig_rx_ready(void *opaque)
{
	((struct rig *)opaque)->rx_ready_calls++;
}

static struct rig *rig_new(void)
{
	struct rig *r = calloc(1, sizeof(*r));

	cr_assert_not_null(r);
	bus_init(&r->bus, "pio");
	r->s =
	    serial_create((struct irq_line){rig_irq, r, 4}, (struct serial_output){rig_write, r});
	cr_assert_not_null(r->s);
	cr_assert_eq(serial_attach(r->s, &r->bus, BASE), 0);
	serial_set_rx_ready(r->s, rig_rx_ready, r);
	return r;
}

static void rig_free(struct rig *r)
{
	bus_destroy(&r->bus);
	serial_destroy(r->s);
	free(r);
}

static uint8_t in(struct rig *r, unsigned int reg)
{
	uint8_t v;

	cr_assert_eq(bus_read(&r->bus, BASE + reg, &v, 1), VM_CONTINUE);
	return v;
}

static void out(struct rig *r, unsigned int reg, uint8_t v)
{
	cr_assert_eq(bus_write(&r->bus, BASE + reg, &v, 1), VM_CONTINUE);
}

/* Linux 8250 autoconfig(): the steps that decide the UART type, in its order. */
Test(serial, linux_autoconfig_finds_16550a)
{
	struct rig *r = rig_new();
	uint8_t save_ier, s1, s2;

	/* IER existence test. */
	save_ier = in(r, IER);
	out(r, IER, 0);
	cr_assert_eq(in(r, IER) & 0x0f, 0);
	out(r, IER, 0x0f);
	cr_assert_eq(in(r, IER) & 0x0f, 0x0f);
	out(r, IER, save_ier);
	/* Loopback test: RTS->CTS, OUT2->DCD. */
	out(r, MCR, 0x10 | 0x0a);
	cr_assert_eq(in(r, MSR) & 0xf0, 0x90);
	out(r, MCR, 0);
	/* EFR (LCR=0xBF) set to 0, then the FIFO bits of IIR. */
	out(r, LCR, 0xbf);
	out(r, FCR, 0);
	out(r, LCR, 0);
	out(r, FCR, 0x01);
	cr_assert_eq(in(r, IIR) >> 6, 3, "16550A reports both FIFO bits");
	/* autoconfig_16550a: no EFR under either configuration mode. */
	out(r, LCR, 0x80);
	cr_assert_neq(in(r, IIR), 0, "ST16C650V1 test");
	out(r, LCR, 0xbf);
	cr_assert_neq(in(r, IIR), 0, "EFRv2 test");
	/* NS SuperIO: bank 2's EXCR1 must not mirror MCR's LOOP bit. */
	out(r, LCR, 0);
	s1 = in(r, MCR);
	out(r, LCR, 0xe0);
	s2 = in(r, 2);
	cr_assert_eq((s1 ^ s2) & 0x10, 0);
	out(r, LCR, 0);
	out(r, MCR, s1 ^ 0x10);
	out(r, LCR, 0xe0);
	s2 = in(r, 2);
	out(r, LCR, 0);
	out(r, MCR, s1);
	cr_assert_eq((s2 ^ s1) & 0x10, 0, "not an NS16550A");
	/* TI16750: IIR bit 5 must stay clear with and without DLAB. */
	out(r, FCR, 0x21);
	cr_assert_eq(in(r, IIR) >> 5, 6);
	out(r, FCR, 0x01);
	out(r, LCR, 0x80);
	out(r, FCR, 0x21);
	cr_assert_eq(in(r, IIR) >> 5, 6);
	out(r, FCR, 0x01);
	out(r, LCR, 0);
	/* XScale: IER bit 6 (UUE) must not stick. */
	out(r, IER, 0x40);
	cr_assert_eq(in(r, IER) & 0x40, 0);
	out(r, IER, 0);
	/* Scratch register and an idle line. */
	out(r, SCR, 0xa5);
	cr_assert_eq(in(r, SCR), 0xa5);
	out(r, SCR, 0x5a);
	cr_assert_eq(in(r, SCR), 0x5a);
	cr_assert_eq(in(r, LSR), 0x60, "THRE and TEMT, no data: not the 0xff of a missing UART");
	rig_free(r);
}

/* size_fifo(): 256 bytes looped back at a FIFO that keeps 16 (64 would mean a U6 16550A). */
Test(serial, loopback_fifo_holds_16_then_overruns)
{
	struct rig *r = rig_new();
	int count;

	out(r, FCR, 0x07);
	out(r, MCR, 0x10);
	out(r, LCR, 0x80);
	out(r, RBR, 0x01);
	out(r, IER, 0x00);
	out(r, LCR, 0x03);
	for (int i = 0; i < 256; i++)
		out(r, RBR, (uint8_t)i);
	cr_assert_eq(r->out_len, 0, "looped-back bytes never reach the output");
	cr_assert_eq(in(r, LSR) & 0x03, 0x03, "data ready and overrun");
	cr_assert_eq(in(r, LSR) & 0x02, 0, "reading LSR clears OE");
	for (count = 0; (in(r, LSR) & 0x01) && count < 256; count++)
		cr_assert_eq(in(r, RBR), count);
	cr_assert_eq(count, 16);
	rig_free(r);
}

Test(serial, divisor_latch_round_trip)
{
	struct rig *r = rig_new();

	out(r, IER, 0x05);
	out(r, LCR, 0x83);
	out(r, RBR, 0x34);
	out(r, IER, 0x12);
	cr_assert_eq(in(r, RBR), 0x34);
	cr_assert_eq(in(r, IER), 0x12);
	cr_assert_eq(in(r, LCR), 0x83);
	out(r, LCR, 0x03);
	cr_assert_eq(in(r, IER), 0x05, "IER kept while DLAB was set");
	cr_assert_eq(r->out_len, 0, "DLL writes are not transmitted");
	out(r, LCR, 0x80);
	cr_assert_eq(in(r, RBR), 0x34);
	cr_assert_eq(in(r, IER), 0x12);
	rig_free(r);
}

Test(serial, tx_bytes_reach_output_in_order)
{
	struct rig *r = rig_new();
	const char *msg = "Linux version 6.12\r\n";

	out(r, LCR, 0x03);
	for (size_t i = 0; i < strlen(msg); i++) {
		cr_assert(in(r, LSR) & 0x20);
		out(r, RBR, (uint8_t)msg[i]);
	}
	cr_assert_eq(r->out_len, strlen(msg));
	cr_assert_eq(memcmp(r->out, msg, strlen(msg)), 0);
	rig_free(r);
}

Test(serial, thre_interrupt)
{
	struct rig *r = rig_new();

	out(r, MCR, 0x0b); /* DTR, RTS, OUT2 as Linux sets them */
	cr_assert_not(r->level);
	out(r, IER, 0x02);
	cr_assert(r->level, "enabling ETBEI with THR empty raises the IRQ");
	cr_assert_eq(in(r, IIR), 0x02);
	cr_assert_not(r->level, "reading IIR acknowledged it");
	cr_assert_eq(in(r, IIR), 0x01);
	out(r, RBR, 'x');
	cr_assert(r->level, "THR empty again after the write");
	cr_assert_eq(in(r, IIR), 0x02);
	/* Linux's UART_BUG_THRE test: disable, re-enable, THRE must come back. */
	out(r, IER, 0);
	out(r, IER, 0x02);
	cr_assert_eq(in(r, IIR), 0x02);
	out(r, IER, 0);
	cr_assert_not(r->level);
	/* FIFO mode sets the top bits. */
	out(r, FCR, 0x01);
	out(r, IER, 0x02);
	cr_assert_eq(in(r, IIR), 0xc2);
	cr_assert_eq(in(r, IIR), 0xc1);
	rig_free(r);
}

Test(serial, out2_gates_the_line)
{
	struct rig *r = rig_new();

	out(r, IER, 0x02);
	cr_assert_not(r->level, "pending, but OUT2 is clear");
	cr_assert_eq(r->irq_calls, 0);
	out(r, MCR, 0x08);
	cr_assert(r->level);
	out(r, MCR, 0x00);
	cr_assert_not(r->level);
	cr_assert_eq(in(r, IIR), 0x02, "still pending inside the UART");
	rig_free(r);
}

Test(serial, rx_interrupt_and_order)
{
	struct rig *r = rig_new();
	const uint8_t msg[] = "root\n";

	out(r, MCR, 0x0b);
	out(r, IER, 0x01);
	cr_assert_not(r->level);
	cr_assert_eq(in(r, LSR) & 0x01, 0);
	cr_assert_eq(serial_receive(r->s, msg, 5), 5);
	cr_assert(r->level);
	cr_assert_eq(in(r, IIR), 0x04);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(in(r, LSR) & 0x01, 0x01);
		cr_assert_eq(in(r, RBR), msg[i]);
	}
	cr_assert_eq(in(r, LSR) & 0x01, 0);
	cr_assert_not(r->level, "drained: the line drops");
	cr_assert_eq(in(r, IIR), 0x01);
	cr_assert_eq(in(r, RBR), '\n', "an empty RBR repeats its last byte");
	rig_free(r);
}

Test(serial, rx_fifo_trigger_and_timeout_ids)
{
	struct rig *r = rig_new();
	uint8_t buf[8] = {0};

	out(r, MCR, 0x08);
	out(r, FCR, 0x81); /* FIFO, trigger at 8 */
	out(r, IER, 0x01);
	cr_assert_eq(serial_receive(r->s, buf, 3), 3);
	cr_assert_eq(in(r, IIR), 0xcc, "below the trigger: character timeout");
	cr_assert_eq(serial_receive(r->s, buf, 5), 5);
	cr_assert_eq(in(r, IIR), 0xc4);
	out(r, FCR, 0x83); /* clear RX */
	cr_assert_eq(in(r, LSR) & 0x01, 0);
	cr_assert_not(r->level);
	rig_free(r);
}

Test(serial, rx_full_refuses_and_loses_nothing)
{
	struct rig *r = rig_new();
	enum { TOTAL = SERIAL_RX_CAPACITY + 904 };
	static uint8_t src[TOTAL];
	size_t fed, got = 0;

	for (size_t i = 0; i < TOTAL; i++)
		src[i] = (uint8_t)(i * 7 + i / 251);
	out(r, MCR, 0x08);
	out(r, IER, 0x01);
	fed = serial_receive(r->s, src, TOTAL);
	cr_assert_eq(fed, SERIAL_RX_CAPACITY);
	cr_assert_eq(serial_receive(r->s, src + fed, TOTAL - fed), 0);
	while (fed < TOTAL || (in(r, LSR) & 0x01)) {
		if (!(in(r, LSR) & 0x01)) {
			cr_assert_geq(r->rx_ready_calls, 1, "the console was told there is room");
			fed += serial_receive(r->s, src + fed, TOTAL - fed);
			continue;
		}
		cr_assert(r->level);
		cr_assert_eq(in(r, RBR), src[got], "byte %zu", got);
		got++;
	}
	cr_assert_eq(got, TOTAL);
	cr_assert_not(r->level);
	rig_free(r);
}

Test(serial, loopback_modem_lines_and_interrupts)
{
	struct rig *r = rig_new();
	uint8_t b = 'z';

	cr_assert_eq(in(r, MSR), 0xb0, "a connected terminal: DCD, DSR, CTS");
	out(r, IER, 0x0f);
	out(r, MCR, 0x10 | 0x0f);
	cr_assert_eq(serial_receive(r->s, &b, 1), 0, "the receiver is off the line in loopback");
	cr_assert_eq(in(r, IIR), 0x02); /* THRE from enabling IER */
	cr_assert_eq(in(r, IIR), 0x01, "RI rising is no modem status event");
	cr_assert_eq(in(r, MSR), 0xf0, "RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD");
	out(r, MCR, 0x10 | 0x0b); /* OUT1 off: RI falls */
	cr_assert_eq(in(r, IIR), 0x00, "modem status change");
	cr_assert_eq(in(r, MSR), 0xb4);
	cr_assert_eq(in(r, IIR), 0x01);
	out(r, MCR, 0x10 | 0x09); /* RTS off: CTS falls */
	cr_assert_eq(in(r, MSR), 0xa1);
	cr_assert_eq(in(r, MSR), 0xa0);
	/* Overrun is a line-status interrupt, the highest priority. */
	out(r, RBR, 1);
	out(r, RBR, 2);
	cr_assert_eq(in(r, IIR), 0x06);
	cr_assert_eq(in(r, LSR) & 0x03, 0x03);
	cr_assert_eq(in(r, IIR), 0x04);
	cr_assert_eq(in(r, RBR), 1);
	cr_assert_eq(r->out_len, 0);
	out(r, MCR, 0x0b);
	cr_assert_geq(r->rx_ready_calls, 1, "leaving loopback wakes the console");
	cr_assert_eq(serial_receive(r->s, &b, 1), 1);
	rig_free(r);
}

/* A wide access is split into byte accesses to consecutive registers. */
Test(serial, wide_access_is_split)
{
	struct rig *r = rig_new();
	uint8_t w[2] = {'A', 0x02}, v[8];

	cr_assert_eq(bus_write(&r->bus, BASE + 0, w, 2), VM_CONTINUE);
	cr_assert_eq(r->out_len, 1);
	cr_assert_eq(r->out[0], 'A');
	cr_assert_eq(in(r, IER), 0x02);
	cr_assert_eq(bus_read(&r->bus, BASE + 4, v, 4), VM_CONTINUE);
	cr_assert_eq(v[1], 0x60); /* LSR */
	cr_assert_eq(v[2], 0xb0); /* MSR */
	/* Direct calls past the last register read as ones and write nothing. */
	cr_assert_eq(serial_ops.read(r->s, 6, v, 8), VM_CONTINUE);
	cr_assert_eq(v[2], 0xff);
	cr_assert_eq(v[7], 0xff);
	cr_assert_eq(serial_ops.write(r->s, UINT64_MAX, v, 8), VM_CONTINUE);
	rig_free(r);
}

static uint32_t lcg(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

/* One random guest or console action; the result is folded into a trace. */
static uint32_t random_step(struct rig *r, uint32_t *seed)
{
	uint8_t data[8], feed[64];
	uint32_t op = lcg(seed), len = 1 + lcg(seed) % 8, reg = lcg(seed) % 8, trace = 0;
	size_t n;

	for (int i = 0; i < 8; i++)
		data[i] = (uint8_t)lcg(seed);
	if (op % 16 == 0) {
		n = lcg(seed) % sizeof(feed);
		memset(feed, (int)(op >> 8), n);
		return (uint32_t)serial_receive(r->s, feed, n);
	}
	if (op % 2 == 0) {
		cr_assert_eq(bus_write(&r->bus, BASE + reg, data, len), VM_CONTINUE);
		return 0;
	}
	cr_assert_eq(bus_read(&r->bus, BASE + reg, data, len), VM_CONTINUE);
	for (uint32_t i = 0; i < len; i++)
		trace = trace * 31 + data[i];
	return trace;
}

Test(serial, hostile_accesses_never_fail)
{
	struct rig *r = rig_new();
	struct serial_state st;
	uint32_t seed = 0x1234;
	uint8_t data[8];

	for (int i = 0; i < 20000; i++) {
		random_step(r, &seed);
		/* Direct calls at any offset, including ones no bus would pass. */
		uint64_t off = lcg(&seed) % 12;
		for (int j = 0; j < 8; j++)
			data[j] = (uint8_t)lcg(&seed);
		cr_assert_eq(serial_ops.write(r->s, off, data, 1 + lcg(&seed) % 8), VM_CONTINUE);
		cr_assert_eq(serial_ops.read(r->s, off, data, 1 + lcg(&seed) % 8), VM_CONTINUE);
		if (i % 1000 == 0) {
			serial_save(r->s, &st);
			cr_assert_leq(st.rx_count, SERIAL_RX_CAPACITY);
			cr_assert_eq(serial_restore(r->s, &st), 0, "a saved state is always valid");
		}
	}
	rig_free(r);
}

Test(serial, save_restore_same_behaviour)
{
	struct rig *a = rig_new(), *b = rig_new();
	static struct serial_state st;
	uint32_t seed = 42, sa, sb;
	uint8_t bytes[100];

	memset(bytes, 'q', sizeof(bytes));
	out(a, MCR, 0x0b);
	out(a, IER, 0x0f);
	out(a, FCR, 0x41);
	out(a, SCR, 0x77);
	cr_assert_eq(serial_receive(a->s, bytes, sizeof(bytes)), sizeof(bytes));
	for (int i = 0; i < 500; i++)
		random_step(a, &seed);
	serial_save(a->s, &st);
	cr_assert_eq(serial_restore(b->s, &st), 0);
	cr_assert_eq(a->level, b->level, "restore drives the line");
	a->out_len = 0;
	sa = sb = seed;
	for (int i = 0; i < 5000; i++) {
		cr_assert_eq(random_step(a, &sa), random_step(b, &sb), "step %d", i);
		cr_assert_eq(a->level, b->level, "step %d", i);
	}
	cr_assert_eq(a->out_len, b->out_len);
	cr_assert_eq(memcmp(a->out, b->out, a->out_len), 0);
	rig_free(a);
	rig_free(b);
}

Test(serial, restore_rejects_corrupt_state)
{
	struct rig *r = rig_new();
	static struct serial_state good, bad;

	serial_save(r->s, &good);
	bad = good;
	bad.rx_count = SERIAL_RX_CAPACITY + 1;
	cr_assert_eq(serial_restore(r->s, &bad), -EINVAL);
	bad = good;
	bad.rx_head = SERIAL_RX_CAPACITY;
	cr_assert_eq(serial_restore(r->s, &bad), -EINVAL);
	bad = good;
	bad.ier = 0x40;
	cr_assert_eq(serial_restore(r->s, &bad), -EINVAL);
	bad = good;
	bad.thr_ipending = 2;
	cr_assert_eq(serial_restore(r->s, &bad), -EINVAL);
	bad = good;
	bad.mcr = 0x20;
	cr_assert_eq(serial_restore(r->s, &bad), -EINVAL);
	bad = good;
	bad.rx_head = SERIAL_RX_CAPACITY - 1; /* a wrapped ring is fine */
	bad.rx_count = SERIAL_RX_CAPACITY;
	cr_assert_eq(serial_restore(r->s, &bad), 0);
	cr_assert_eq(in(r, RBR), bad.rx[SERIAL_RX_CAPACITY - 1]);
	cr_assert_eq(in(r, RBR), bad.rx[0]);
	rig_free(r);
}

struct feeder {
	struct serial *s;
	size_t total;
};

static void *feeder_main(void *arg)
{
	struct feeder *f = arg;
	uint8_t chunk[300];
	size_t sent = 0;

	while (sent < f->total) {
		size_t n = f->total - sent < sizeof(chunk) ? f->total - sent : sizeof(chunk);

		for (size_t i = 0; i < n; i++)
			chunk[i] = (uint8_t)((sent + i) % 251);
		for (size_t done = 0; done < n;) {
			size_t got = serial_receive(f->s, chunk + done, n - done);

			if (got == 0)
				sched_yield();
			done += got;
		}
		sent += n;
	}
	return NULL;
}

/* The console thread and a vCPU thread at once: every byte arrives, in order. */
Test(serial, concurrent_console_and_vcpu)
{
	struct rig *r = rig_new();
	struct feeder f = {r->s, 200000};
	pthread_t t;
	size_t got = 0;

	out(r, MCR, 0x08);
	out(r, IER, 0x03);
	cr_assert_eq(pthread_create(&t, NULL, feeder_main, &f), 0);
	while (got < f.total) {
		if (!(in(r, LSR) & 0x01)) {
			out(r, RBR, 'x'); /* transmit while waiting: TX and RX share the lock */
			if (r->out_len > sizeof(r->out) / 2)
				r->out_len = 0;
			sched_yield();
			continue;
		}
		cr_assert_eq(in(r, RBR), got % 251, "byte %zu", got);
		got++;
	}
	pthread_join(t, NULL);
	rig_free(r);
}
