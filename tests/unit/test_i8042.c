#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "bus/bus.h"
#include "devices/i8042.h"

#define DATA 0x60
#define CMD  0x64

struct rig {
	struct bus bus;
	struct i8042 *kbc;
};

static void rig_init(struct rig *r)
{
	bus_init(&r->bus, "pio");
	r->kbc = i8042_create();
	cr_assert_not_null(r->kbc);
	cr_assert_eq(i8042_attach(r->kbc, &r->bus), 0);
}

static void rig_fini(struct rig *r)
{
	bus_destroy(&r->bus);
	i8042_destroy(r->kbc);
}

static uint8_t in(struct rig *r, uint16_t port)
{
	uint8_t v;

	cr_assert_eq(bus_read(&r->bus, port, &v, 1), VM_CONTINUE);
	return v;
}

static enum vm_action out(struct rig *r, uint16_t port, uint8_t v)
{
	return bus_write(&r->bus, port, &v, 1);
}

/* i8042_command() in Linux: wait for IBF clear, write, wait for OBF, read. */
static uint8_t command_reply(struct rig *r, uint8_t cmd)
{
	cr_assert_eq(in(r, CMD) & 0x02, 0, "input buffer never full");
	cr_assert_eq(out(r, CMD, cmd), VM_CONTINUE);
	cr_assert_eq(in(r, CMD) & 0x01, 0x01, "a reply waits");
	return in(r, DATA);
}

Test(i8042, reset_commands_reboot)
{
	struct rig r;

	rig_init(&r);
	/* Linux's BOOT_KBD: kb_wait() on the status port, then 0xfe. */
	cr_assert_eq(in(&r, CMD) & 0x02, 0);
	cr_assert_eq(out(&r, CMD, 0xfe), VM_REBOOT);
	cr_assert_eq(out(&r, CMD, 0xf0), VM_REBOOT, "any pulse that includes bit 0");
	cr_assert_eq(out(&r, CMD, 0xff), VM_CONTINUE, "pulses nothing");
	cr_assert_eq(out(&r, CMD, 0xf1), VM_CONTINUE);
	/* Write output port with the reset line low. */
	cr_assert_eq(out(&r, CMD, 0xd1), VM_CONTINUE);
	cr_assert_eq(out(&r, DATA, 0xfe), VM_REBOOT);
	cr_assert_eq(out(&r, CMD, 0xd1), VM_CONTINUE);
	cr_assert_eq(out(&r, DATA, 0xdd), VM_CONTINUE, "A20 off, not a reset");
	cr_assert_eq(command_reply(&r, 0xd0), 0xdd);
	cr_assert_eq(out(&r, DATA, 0x00), VM_CONTINUE, "no command pending: data for the keyboard");
	rig_fini(&r);
}

Test(i8042, self_tests_and_command_byte)
{
	struct rig r;

	rig_init(&r);
	cr_assert_eq(in(&r, CMD) & 0x01, 0, "nothing to read at first");
	cr_assert_eq(command_reply(&r, 0xaa), 0x55);
	cr_assert_eq(in(&r, CMD) & 0x01, 0, "the read emptied the buffer");
	cr_assert_eq(in(&r, DATA), 0x55, "an empty buffer repeats its last byte");
	cr_assert_eq(command_reply(&r, 0xab), 0x00);
	cr_assert_eq(command_reply(&r, 0xa9), 0x00);
	cr_assert_eq(out(&r, CMD, 0x60), VM_CONTINUE);
	cr_assert_eq(in(&r, CMD) & 0x08, 0x08, "last write was a command");
	cr_assert_eq(out(&r, DATA, 0x47), VM_CONTINUE);
	cr_assert_eq(in(&r, CMD) & 0x0c, 0x04, "data write; system flag from the CTR");
	cr_assert_eq(command_reply(&r, 0x20), 0x47);
	/* Linux's i8042_toggle_aux()/kbd: the disable bits follow the commands. */
	cr_assert_eq(out(&r, CMD, 0xa7), VM_CONTINUE);
	cr_assert_eq(command_reply(&r, 0x20) & 0x20, 0x20);
	cr_assert_eq(out(&r, CMD, 0xa8), VM_CONTINUE);
	cr_assert_eq(command_reply(&r, 0x20) & 0x20, 0x00);
	cr_assert_eq(out(&r, CMD, 0xad), VM_CONTINUE);
	cr_assert_eq(command_reply(&r, 0x20) & 0x10, 0x10);
	cr_assert_eq(out(&r, CMD, 0xae), VM_CONTINUE);
	cr_assert_eq(command_reply(&r, 0x20) & 0x10, 0x00);
	/* AUX loopback: the byte comes back flagged as mouse data. */
	cr_assert_eq(out(&r, CMD, 0xd3), VM_CONTINUE);
	cr_assert_eq(out(&r, DATA, 0x5a), VM_CONTINUE);
	cr_assert_eq(in(&r, CMD) & 0x21, 0x21);
	cr_assert_eq(in(&r, DATA), 0x5a);
	cr_assert_eq(in(&r, CMD) & 0x21, 0x00);
	rig_fini(&r);
}

static uint32_t lcg(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

/* A model of when the controller may reset: only 0xf0..0xfe even, or 0xd1 + bit 0 clear. */
struct model {
	bool d1_pending;
};

static enum vm_action model_write(struct model *m, uint16_t port, uint8_t v)
{
	if (port == CMD) {
		m->d1_pending = v == 0xd1;
		return (v >= 0xf0 && !(v & 1)) ? VM_REBOOT : VM_CONTINUE;
	}
	if (m->d1_pending) {
		m->d1_pending = false;
		return (v & 1) ? VM_CONTINUE : VM_REBOOT;
	}
	return VM_CONTINUE;
}

static uint32_t random_step(struct rig *r, struct model *m, uint32_t *seed)
{
	uint8_t data[8];
	uint32_t op = lcg(seed), len = 1 + lcg(seed) % 8, trace = 0;
	uint16_t port = (uint16_t)(0x5e + lcg(seed) % 8);
	enum vm_action want;

	for (int i = 0; i < 8; i++)
		data[i] = (uint8_t)lcg(seed);
	if (lcg(seed) % 4 == 0)
		len = 1;
	if (op % 2 == 0) {
		want = VM_CONTINUE;
		if (len == 1 && (port == DATA || port == CMD))
			want = model_write(m, port, data[0]);
		cr_assert_eq(bus_write(&r->bus, port, data, len), want);
		return want;
	}
	cr_assert_eq(bus_read(&r->bus, port, data, len), VM_CONTINUE);
	for (uint32_t i = 0; i < len; i++)
		trace = trace * 31 + data[i];
	return trace;
}

Test(i8042, hostile_accesses_only_reset_when_asked)
{
	struct rig r;
	struct model m = {false};
	struct i8042_state st;
	uint32_t seed = 3;
	uint8_t data[8] = {0};

	rig_init(&r);
	for (int i = 0; i < 20000; i++) {
		random_step(&r, &m, &seed);
		if (i % 1000 == 0) {
			i8042_save(r.kbc, &st);
			cr_assert_eq(i8042_restore(r.kbc, &st), 0);
		}
	}
	/* Wide accesses straight to the handlers: only byte 0 of offset 0 counts. */
	cr_assert_eq(bus_write(&r.bus, CMD, (uint8_t[]){0xaa}, 1), VM_CONTINUE);
	cr_assert_eq(bus_read(&r.bus, DATA, data, 1), VM_CONTINUE);
	cr_assert_eq(data[0], 0x55);
	rig_fini(&r);
}

Test(i8042, save_restore_same_behaviour)
{
	struct rig a, b;
	struct model ma = {false}, mb;
	struct i8042_state st;
	uint32_t seed = 11, sa, sb;

	rig_init(&a);
	rig_init(&b);
	cr_assert_eq(out(&a, CMD, 0x60), VM_CONTINUE);
	cr_assert_eq(out(&a, DATA, 0x03), VM_CONTINUE);
	for (int i = 0; i < 500; i++)
		random_step(&a, &ma, &seed);
	i8042_save(a.kbc, &st);
	cr_assert_eq(i8042_restore(b.kbc, &st), 0);
	mb = ma;
	sa = sb = seed;
	for (int i = 0; i < 5000; i++)
		cr_assert_eq(random_step(&a, &ma, &sa), random_step(&b, &mb, &sb), "step %d", i);
	rig_fini(&a);
	rig_fini(&b);
}

Test(i8042, restore_rejects_corrupt_state)
{
	struct rig r;
	struct i8042_state good, bad;

	rig_init(&r);
	i8042_save(r.kbc, &good);
	bad = good;
	bad.pending = 0xaa;
	cr_assert_eq(i8042_restore(r.kbc, &bad), -EINVAL);
	bad = good;
	bad.status = 0x02;
	cr_assert_eq(i8042_restore(r.kbc, &bad), -EINVAL);
	bad = good;
	bad.pending = 0xd1;
	cr_assert_eq(i8042_restore(r.kbc, &bad), 0);
	cr_assert_eq(out(&r, DATA, 0x00), VM_REBOOT, "the restored 0xd1 is still waiting");
	rig_fini(&r);
}
