#include "devices/i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"

/* Status register (port 0x64 read). The input buffer is never full: writers never wait. */
#define I8042_STR_OBF	  0x01 /* a byte waits on port 0x60 */
#define I8042_STR_SYS	  0x04 /* mirrors the CTR system flag */
#define I8042_STR_CMD	  0x08 /* the last write went to port 0x64 */
#define I8042_STR_UNLOCK  0x10 /* keyboard not inhibited */
#define I8042_STR_AUXDATA 0x20 /* the waiting byte came from the aux port */
#define I8042_STR_STORED  (I8042_STR_OBF | I8042_STR_CMD | I8042_STR_AUXDATA)

/* Command byte bits. */
#define I8042_CTR_SYS	  0x04
#define I8042_CTR_KBDDIS  0x10
#define I8042_CTR_AUXDIS  0x20
#define I8042_CTR_XLATE	  0x40
#define I8042_CTR_KBDINT  0x01
#define I8042_CTR_DEFAULT (I8042_CTR_KBDINT | I8042_CTR_SYS | I8042_CTR_XLATE)

#define I8042_OUT_RESET	  0x01 /* active low: 0 holds the CPU in reset */
#define I8042_OUT_A20	  0x02
#define I8042_OUT_DEFAULT (I8042_OUT_RESET | I8042_OUT_A20)

/* Commands. */
#define I8042_CMD_READ_CTR     0x20
#define I8042_CMD_READ_RAM_END 0x3f
#define I8042_CMD_WRITE_CTR    0x60
#define I8042_CMD_AUX_DISABLE  0xa7
#define I8042_CMD_AUX_ENABLE   0xa8
#define I8042_CMD_AUX_TEST     0xa9
#define I8042_CMD_SELF_TEST    0xaa
#define I8042_CMD_KBD_TEST     0xab
#define I8042_CMD_KBD_DISABLE  0xad
#define I8042_CMD_KBD_ENABLE   0xae
#define I8042_CMD_READ_OUT     0xd0
#define I8042_CMD_WRITE_OUT    0xd1
#define I8042_CMD_KBD_LOOP     0xd2 /* next data byte comes back as if from the keyboard */
#define I8042_CMD_AUX_LOOP     0xd3 /* ... as if from the mouse */
#define I8042_CMD_AUX_SEND     0xd4 /* next data byte goes to the (absent) mouse */
#define I8042_CMD_A20_OFF      0xdd
#define I8042_CMD_A20_ON       0xdf
#define I8042_CMD_PULSE	       0xf0 /* 0xf0..0xff: pulse output lines whose bit is 0 */

#define I8042_SELF_TEST_OK 0x55
#define I8042_PORT_TEST_OK 0x00

struct i8042 {
	pthread_mutex_t lock;
	struct i8042_state st;
};

static void i8042_put(struct i8042_state *st, uint8_t v, bool aux)
{
	st->out = v;
	st->status |= I8042_STR_OBF;
	if (aux)
		st->status |= I8042_STR_AUXDATA;
	else
		st->status &= (uint8_t)~I8042_STR_AUXDATA;
}

static bool i8042_takes_data(uint8_t cmd)
{
	switch (cmd) {
	case I8042_CMD_WRITE_CTR:
	case I8042_CMD_WRITE_OUT:
	case I8042_CMD_KBD_LOOP:
	case I8042_CMD_AUX_LOOP:
	case I8042_CMD_AUX_SEND:
		return true;
	default:
		return false;
	}
}

/* Commands that answer at once or toggle a bit; the rest are accepted and ignored. */
static void i8042_simple_command(struct i8042_state *st, uint8_t cmd)
{
	switch (cmd) {
	case I8042_CMD_AUX_DISABLE:
		st->ctr |= I8042_CTR_AUXDIS;
		break;
	case I8042_CMD_AUX_ENABLE:
		st->ctr &= (uint8_t)~I8042_CTR_AUXDIS;
		break;
	case I8042_CMD_KBD_DISABLE:
		st->ctr |= I8042_CTR_KBDDIS;
		break;
	case I8042_CMD_KBD_ENABLE:
		st->ctr &= (uint8_t)~I8042_CTR_KBDDIS;
		break;
	case I8042_CMD_SELF_TEST:
		st->ctr |= I8042_CTR_SYS;
		i8042_put(st, I8042_SELF_TEST_OK, false);
		break;
	case I8042_CMD_AUX_TEST:
	case I8042_CMD_KBD_TEST:
		i8042_put(st, I8042_PORT_TEST_OK, false);
		break;
	case I8042_CMD_READ_OUT:
		i8042_put(st, st->outport, false);
		break;
	case I8042_CMD_A20_OFF:
		st->outport &= (uint8_t)~I8042_OUT_A20;
		break;
	case I8042_CMD_A20_ON:
		st->outport |= I8042_OUT_A20;
		break;
	default:
		break;
	}
}

static enum vm_action i8042_command(struct i8042_state *st, uint8_t cmd)
{
	st->status |= I8042_STR_CMD;
	st->pending = 0; /* a new command abandons one still waiting for data */
	if (cmd >= I8042_CMD_PULSE)
		return (cmd & I8042_OUT_RESET) ? VM_CONTINUE : VM_REBOOT;
	if (cmd >= I8042_CMD_READ_CTR && cmd <= I8042_CMD_READ_RAM_END) {
		/* Internal RAM: byte 0 is the command byte, the rest reads as zero. */
		i8042_put(st, cmd == I8042_CMD_READ_CTR ? st->ctr : 0, false);
		return VM_CONTINUE;
	}
	if (i8042_takes_data(cmd))
		st->pending = cmd;
	else
		i8042_simple_command(st, cmd);
	return VM_CONTINUE;
}

static enum vm_action i8042_data(struct i8042_state *st, uint8_t v)
{
	uint8_t cmd = st->pending;

	st->status &= (uint8_t)~I8042_STR_CMD;
	st->pending = 0;
	switch (cmd) {
	case I8042_CMD_WRITE_CTR:
		st->ctr = v;
		break;
	case I8042_CMD_WRITE_OUT:
		if (!(v & I8042_OUT_RESET))
			return VM_REBOOT;
		st->outport = v;
		break;
	case I8042_CMD_KBD_LOOP:
	case I8042_CMD_AUX_LOOP:
		i8042_put(st, v, cmd == I8042_CMD_AUX_LOOP);
		break;
	default:
		break; /* for a keyboard or mouse that is not there */
	}
	return VM_CONTINUE;
}

static uint8_t i8042_status(const struct i8042_state *st)
{
	uint8_t v = (st->status & I8042_STR_STORED) | I8042_STR_UNLOCK;

	if (st->ctr & I8042_CTR_SYS)
		v |= I8042_STR_SYS;
	return v;
}

/* The ports are one byte wide; only byte 0 of a wider access means anything. */
static enum vm_action i8042_read_port(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
				      bool cmd_port)
{
	struct i8042 *kbc = opaque;

	memset(data, 0xff, len);
	if (offset != 0)
		return VM_CONTINUE;
	pthread_mutex_lock(&kbc->lock);
	if (cmd_port) {
		data[0] = i8042_status(&kbc->st);
	} else {
		/* An empty buffer reads its last byte again, as the real latch does. */
		data[0] = kbc->st.out;
		kbc->st.status &= (uint8_t) ~(I8042_STR_OBF | I8042_STR_AUXDATA);
	}
	pthread_mutex_unlock(&kbc->lock);
	return VM_CONTINUE;
}

static enum vm_action i8042_write_port(void *opaque, uint64_t offset, const uint8_t *data,
				       bool cmd_port)
{
	struct i8042 *kbc = opaque;
	enum vm_action action;

	if (offset != 0)
		return VM_CONTINUE;
	pthread_mutex_lock(&kbc->lock);
	if (cmd_port)
		action = i8042_command(&kbc->st, data[0]);
	else
		action = i8042_data(&kbc->st, data[0]);
	pthread_mutex_unlock(&kbc->lock);
	return action;
}

static enum vm_action i8042_data_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	return i8042_read_port(opaque, offset, data, len, false);
}

static enum vm_action i8042_cmd_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	return i8042_read_port(opaque, offset, data, len, true);
}

static enum vm_action i8042_data_write(void *opaque, uint64_t offset, const uint8_t *data,
				       uint32_t len)
{
	(void)len;
	return i8042_write_port(opaque, offset, data, false);
}

static enum vm_action i8042_cmd_write(void *opaque, uint64_t offset, const uint8_t *data,
				      uint32_t len)
{
	(void)len;
	return i8042_write_port(opaque, offset, data, true);
}

static const struct bus_ops i8042_data_ops = {i8042_data_read, i8042_data_write};
static const struct bus_ops i8042_cmd_ops = {i8042_cmd_read, i8042_cmd_write};

struct i8042 *i8042_create(void)
{
	struct i8042 *kbc = calloc(1, sizeof(*kbc));

	if (kbc == NULL)
		return NULL;
	if (pthread_mutex_init(&kbc->lock, NULL) != 0) {
		free(kbc);
		return NULL;
	}
	kbc->st.ctr = I8042_CTR_DEFAULT;
	kbc->st.outport = I8042_OUT_DEFAULT;
	return kbc;
}

void i8042_destroy(struct i8042 *kbc)
{
	if (kbc == NULL)
		return;
	pthread_mutex_destroy(&kbc->lock);
	free(kbc);
}

int i8042_attach(struct i8042 *kbc, struct bus *pio)
{
	int ret = bus_register(pio, PORT_I8042_DATA, 1, &i8042_data_ops, kbc);

	if (ret != 0)
		return ret;
	ret = bus_register(pio, PORT_I8042_CMD, 1, &i8042_cmd_ops, kbc);
	if (ret != 0)
		bus_unregister(pio, PORT_I8042_DATA);
	return ret;
}

void i8042_save(struct i8042 *kbc, struct i8042_state *out)
{
	pthread_mutex_lock(&kbc->lock);
	*out = kbc->st;
	pthread_mutex_unlock(&kbc->lock);
}

int i8042_restore(struct i8042 *kbc, const struct i8042_state *in)
{
	if ((in->pending != 0 && !i8042_takes_data(in->pending)) ||
	    (in->status & ~I8042_STR_STORED))
		return -EINVAL;
	pthread_mutex_lock(&kbc->lock);
	kbc->st = *in;
	pthread_mutex_unlock(&kbc->lock);
	return 0;
}
