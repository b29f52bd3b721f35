/*
 * The control API server (api/server.c) over a real Unix socket in a temporary
 * directory, with a fake VM behind struct api_ops; and the client
 * (api/client.c) against it. Raw requests go through a plain socket so that
 * malformed and half-sent ones can be made.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/client.h"
#include "api/server.h"

#define TIMEOUT_S 4 /* the server's connection timeout in these tests */

/* ---- a fake VM ---- */

static struct fake {
	pthread_mutex_t lock;
	bool paused;
	unsigned acts[API_REBOOT + 1];
	int fail; /* next act returns this */
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int fake_info(void *opaque, struct api_vm_info *info)
{
	struct api_device *d = info->devices;

	(void)opaque;
	info->name = "test-vm";
	pthread_mutex_lock(&fake.lock);
	info->paused = fake.paused;
	pthread_mutex_unlock(&fake.lock);
	info->cpus = 2;
	info->memory = 512ULL << 20;
	info->pid = (int)getpid();
	info->uptime_seconds = 12.5;
	info->boots = 1;
	d[0] = (struct api_device){.type = API_DEV_BLOCK, .id = "vda"};
	d[0].block.path = "/images/a.img";
	d[0].block.serial = "SER1";
	d[0].block.size = 1 << 20;
	d[1] = (struct api_device){.type = API_DEV_NET, .id = "net0"};
	snprintf(d[1].net.mac, sizeof(d[1].net.mac), "52:54:00:12:34:56");
	d[1].net.backend = "user";
	d[2] = (struct api_device){.type = API_DEV_VSOCK, .id = "vsock"};
	d[2].vsock.cid = 3;
	d[2].vsock.socket = "/run/v.sock";
	d[3] = (struct api_device){.type = API_DEV_RNG, .id = "rng0"};
	info->ndevices = 4;
	return 0;
}

static int fake_counters(void *opaque, struct api_counters *c)
{
	(void)opaque;
	c->devices[0] = (struct api_dev_counters){.type = API_DEV_BLOCK, .id = "vda"};
	c->devices[0].block.read_ops = 7;
	c->devices[0].block.read_bytes = 7 * 4096;
	c->devices[0].block.flush_ops = 2;
	c->devices[1] = (struct api_dev_counters){.type = API_DEV_NET, .id = "net0"};
	c->devices[1].net.rx_packets = 5;
	c->devices[1].net.tx_bytes = 1500;
	c->devices[2] = (struct api_dev_counters){.type = API_DEV_VSOCK, .id = "vsock"};
	c->devices[2].vsock.connections_total = 1;
	c->ndevices = 3;
	return 0;
}

static int fake_act(void *opaque, enum api_action action, char *why, size_t len)
{
	int ret = 0;

	(void)opaque;
	pthread_mutex_lock(&fake.lock);
	fake.acts[action]++;
	if (fake.fail) {
		ret = fake.fail;
		snprintf(why, len, "the fake says no");
	} else if (action == API_PAUSE || action == API_RESUME) {
		if (fake.paused == (action == API_PAUSE)) {
			snprintf(why, len,
				 fake.paused ? "the VM is paused already" : "the VM is not paused");
			ret = -EALREADY;
		}
		fake.paused = action == API_PAUSE;
	}
	pthread_mutex_unlock(&fake.lock);
	return ret;
}

/* Two vCPUs: a 64-bit kernel halted with interrupts on, an AP never started. */
static int fake_vcpus(void *opaque, struct api_vcpus *out, char *why, size_t len)
{
	(void)opaque;
	if (fake.fail) {
		snprintf(why, len, "the fake says no");
		return fake.fail;
	}
	out->n = 2;
	out->vcpus[0] = (struct vcpu_summary){.index = 0, .state = "halted", .mode = "long",
					  .rip = 0xffffffff81e3c4a5ull, .rflags = 0x246,
					  .cs = 0x10, .cr0 = 0x80050033, .efer = 0xd01,
					  .pending_vector = -1};
	out->vcpus[1] = (struct vcpu_summary){.index = 1, .state = "uninitialized", .mode = "real",
					  .rip = 0xfff0, .rflags = 0x2, .pending_vector = 0x31};
	return 0;
}

static const struct api_ops fake_ops = {fake_info, fake_counters, fake_act, fake_vcpus};

/* ---- the server under test ---- */

static char dir[] = "/tmp/tabique-api-XXXXXX";
static char sock_path[128];
static struct api_server *srv;

static void start_server(void)
{
	struct api_socket s;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/api.sock", dir);
	cr_assert_eq(api_listen(&s, sock_path, "--api-socket"), 0);
	cr_assert_eq(api_server_start(&srv, &s, &fake_ops, NULL, TIMEOUT_S), 0);
}

static void stop_server(void)
{
	api_server_stop(srv);
	srv = NULL;
	unlink(sock_path);
	rmdir(dir);
}

TestSuite(api, .init = start_server, .fini = stop_server, .timeout = 30);

static void sun_set(struct sockaddr_un *sa, const char *path)
{
	cr_assert_lt(strlen(path), sizeof(sa->sun_path));
	memcpy(sa->sun_path, path, strlen(path) + 1);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	sun_set(&sa, path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect %s: %s", path,
		     strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Reads until the server closes (or 5 s pass); returns the bytes read. */
static size_t read_all(int fd, char *out, size_t cap)
{
	size_t n = 0;
	ssize_t r;

	while (n + 1 < cap && (r = read(fd, out + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	return n;
}

/* Sends a raw request (which should say Connection: close) and returns the whole answer. */
static int raw(const char *req, size_t len, char *out, size_t cap)
{
	int fd = connect_to(sock_path);
	int status = 0;

	cr_assert_eq(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	read_all(fd, out, cap);
	close(fd);
	sscanf(out, "HTTP/1.%*d %d", &status);
	return status;
}

static int raw_str(const char *req, char *out, size_t cap)
{
	return raw(req, strlen(req), out, cap);
}

static const char *body_of(const char *resp)
{
	const char *b = strstr(resp, "\r\n\r\n");

	return b ? b + 4 : "";
}

/* An error answer: JSON {"error": one line}. */
static void assert_error_json(const char *resp, const char *word)
{
	json_t *o = json_loads(body_of(resp), 0, NULL);
	const char *msg;

	cr_assert_not_null(o, "error body is not JSON: %s", resp);
	msg = json_string_value(json_object_get(o, "error"));
	cr_assert_not_null(msg, "no \"error\" in %s", resp);
	cr_assert_null(strchr(msg, '\n'), "error is not one line: %s", msg);
	if (word != NULL)
		cr_assert(strstr(msg, word) != NULL, "'%s' not in '%s'", word, msg);
	cr_assert(strstr(resp, "Content-Type: application/json") != NULL, "%s", resp);
	json_decref(o);
}

/* The client, expecting no transport error. */
static long call(const char *method, const char *path, const json_t *body, json_t **reply)
{
	char err[256] = "";
	long status = 0;
	int ret = api_request(sock_path, method, path, body, &status, reply, err, sizeof(err));

	cr_assert_eq(ret, 0, "%s %s: %d %s", method, path, ret, err);
	return status;
}

/* ---- every endpoint ---- */

Test(api, get_vm)
{
	json_t *r = NULL, *dev;

	cr_assert_eq(call("GET", "/v1/vm", NULL, &r), 200);
	cr_assert_str_eq(json_string_value(json_object_get(r, "name")), "test-vm");
	cr_assert_str_eq(json_string_value(json_object_get(r, "state")), "running");
	cr_assert_eq(json_integer_value(json_object_get(r, "cpus")), 2);
	cr_assert_eq(json_integer_value(json_object_get(r, "memory")), 512LL << 20);
	cr_assert_eq(json_integer_value(json_object_get(r, "pid")), getpid());
	cr_assert_float_eq(json_real_value(json_object_get(r, "uptime_seconds")), 12.5, 1e-9);
	cr_assert_eq(json_integer_value(json_object_get(r, "boots")), 1);
	cr_assert_eq(json_array_size(json_object_get(r, "devices")), 4);
	dev = json_array_get(json_object_get(r, "devices"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(dev, "id")), "vda");
	cr_assert_str_eq(json_string_value(json_object_get(dev, "type")), "block");
	cr_assert_str_eq(json_string_value(json_object_get(dev, "path")), "/images/a.img");
	cr_assert_str_eq(json_string_value(json_object_get(dev, "serial")), "SER1");
	cr_assert_eq(json_integer_value(json_object_get(dev, "size")), 1 << 20);
	cr_assert(json_is_false(json_object_get(dev, "readonly")));
	dev = json_array_get(json_object_get(r, "devices"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(dev, "type")), "net");
	cr_assert_str_eq(json_string_value(json_object_get(dev, "mac")), "52:54:00:12:34:56");
	cr_assert_str_eq(json_string_value(json_object_get(dev, "backend")), "user");
	dev = json_array_get(json_object_get(r, "devices"), 2);
	cr_assert_str_eq(json_string_value(json_object_get(dev, "type")), "vsock");
	cr_assert_eq(json_integer_value(json_object_get(dev, "cid")), 3);
	dev = json_array_get(json_object_get(r, "devices"), 3);
	cr_assert_str_eq(json_string_value(json_object_get(dev, "type")), "rng");
	json_decref(r);
}

Test(api, pause_and_resume_with_conflicts)
{
	char out[4096];
	json_t *r = NULL;

	cr_assert_eq(call("PUT", "/v1/vm/pause", NULL, &r), 204);
	cr_assert_null(r, "204 has no body");
	cr_assert_eq(call("GET", "/v1/vm", NULL, &r), 200);
	cr_assert_str_eq(json_string_value(json_object_get(r, "state")), "paused");
	json_decref(r);
	cr_assert_eq(raw_str("PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			     out, sizeof(out)),
		     409);
	assert_error_json(out, "paused already");
	cr_assert_eq(call("PUT", "/v1/vm/resume", NULL, NULL), 204);
	cr_assert_eq(raw_str("PUT /v1/vm/resume HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			     out, sizeof(out)),
		     409);
	assert_error_json(out, "not paused");
	cr_assert_eq(fake.acts[API_PAUSE], 2);
	cr_assert_eq(fake.acts[API_RESUME], 2);
}

Test(api, shutdown_poweroff_reboot_are_accepted)
{
	json_t *r = (json_t *)1;

	cr_assert_eq(call("PUT", "/v1/vm/shutdown", NULL, &r), 202);
	cr_assert_null(r);
	cr_assert_eq(call("PUT", "/v1/vm/poweroff", NULL, NULL), 202);
	cr_assert_eq(call("PUT", "/v1/vm/reboot", NULL, NULL), 202);
	cr_assert_eq(fake.acts[API_SHUTDOWN], 1);
	cr_assert_eq(fake.acts[API_POWEROFF], 1);
	cr_assert_eq(fake.acts[API_REBOOT], 1);
}

Test(api, counters)
{
	json_t *r = NULL, *d;

	cr_assert_eq(call("GET", "/v1/vm/counters", NULL, &r), 200);
	d = json_object_get(r, "vda");
	cr_assert_eq(json_integer_value(json_object_get(d, "read_ops")), 7);
	cr_assert_eq(json_integer_value(json_object_get(d, "read_bytes")), 7 * 4096);
	cr_assert_eq(json_integer_value(json_object_get(d, "flush_ops")), 2);
	cr_assert(json_is_integer(json_object_get(d, "write_ops")));
	cr_assert(json_is_integer(json_object_get(d, "write_bytes")));
	cr_assert(json_is_integer(json_object_get(d, "errors")));
	d = json_object_get(r, "net0");
	cr_assert_eq(json_integer_value(json_object_get(d, "rx_packets")), 5);
	cr_assert_eq(json_integer_value(json_object_get(d, "tx_bytes")), 1500);
	cr_assert(json_is_integer(json_object_get(d, "rx_dropped")));
	d = json_object_get(r, "vsock");
	cr_assert_eq(json_integer_value(json_object_get(d, "connections_total")), 1);
	cr_assert(json_is_integer(json_object_get(d, "rx_bytes")));
	cr_assert_eq(json_object_size(r), 3, "no rng counters");
	json_decref(r);
}

Test(api, server_side_failure_is_500)
{
	char out[4096];

	fake.fail = -EIO;
	cr_assert_eq(raw_str("PUT /v1/vm/reboot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			     out, sizeof(out)),
		     500);
	assert_error_json(out, "the fake says no");
	fake.fail = -EBUSY;
	cr_assert_eq(raw_str("PUT /v1/vm/shutdown HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			     out, sizeof(out)),
		     409);
	assert_error_json(out, "the fake says no");
	fake.fail = -ETIMEDOUT; /* a vCPU that did not park in time */
	cr_assert_eq(raw_str("PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			     out, sizeof(out)),
		     503);
	assert_error_json(out, "the fake says no");
}

Test(api, vcpus_where_each_is)
{
	json_t *r = NULL, *v0, *v1;

	cr_assert_eq(call("GET", "/v1/vm/vcpus", NULL, &r), 200);
	cr_assert_eq(json_array_size(json_object_get(r, "vcpus")), 2);
	v0 = json_array_get(json_object_get(r, "vcpus"), 0);
	v1 = json_array_get(json_object_get(r, "vcpus"), 1);
	/* Addresses past 2^53 are exact: strings, not JSON numbers. */
	cr_assert_str_eq(json_string_value(json_object_get(v0, "rip")), "0xffffffff81e3c4a5");
	cr_assert_str_eq(json_string_value(json_object_get(v0, "state")), "halted");
	cr_assert_str_eq(json_string_value(json_object_get(v0, "mode")), "long");
	cr_assert(json_is_true(json_object_get(v0, "interrupts_enabled")));
	cr_assert(json_is_null(json_object_get(v0, "pending_interrupt")));
	cr_assert(json_is_false(json_object_get(v1, "interrupts_enabled")));
	cr_assert_eq(json_integer_value(json_object_get(v1, "pending_interrupt")), 0x31);
	cr_assert_str_eq(json_string_value(json_object_get(v1, "rip")), "0xfff0");
	json_decref(r);
	cr_assert_eq(call("PUT", "/v1/vm/vcpus", NULL, NULL), 405);
}

/* What the manager's console makes of the answer: the fake's vCPUs, back as they were sent. */
Test(api, vcpus_parse_back)
{
	json_t *r = NULL, *bad;
	struct vcpu_summary v;
	char line[448];

	cr_assert_eq(call("GET", "/v1/vm/vcpus", NULL, &r), 200);
	cr_assert_eq(api_vcpu_parse(json_array_get(json_object_get(r, "vcpus"), 0), &v), 0);
	cr_assert_eq(v.rip, 0xffffffff81e3c4a5ull);
	cr_assert_eq(v.efer, 0xd01);
	cr_assert_eq(v.pending_vector, -1);
	vcpu_summary_line(&v, line, sizeof(line));
	cr_assert(strstr(line, "vCPU 0: halted, long mode, CPL 0, rip 0xffffffff81e3c4a5") == line,
		  "%s", line);
	cr_assert(strstr(line, "(interrupts on)") != NULL, "%s", line);
	cr_assert_eq(api_vcpu_parse(json_array_get(json_object_get(r, "vcpus"), 1), &v), 0);
	cr_assert_eq(v.pending_vector, 0x31);
	/* A member missing, or not hex: refused, not guessed. */
	bad = json_deep_copy(json_array_get(json_object_get(r, "vcpus"), 0));
	json_object_set_new(bad, "rip", json_string("12"));
	cr_assert_eq(api_vcpu_parse(bad, &v), -EPROTO);
	json_object_del(bad, "rip");
	cr_assert_eq(api_vcpu_parse(bad, &v), -EPROTO);
	json_decref(bad);
	json_decref(r);
}

Test(api, vcpus_that_do_not_stop_are_503)
{
	char out[4096];

	fake.fail = -ETIMEDOUT;
	cr_assert_eq(raw_str("GET /v1/vm/vcpus HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			     out, sizeof(out)),
		     503);
	assert_error_json(out, "the fake says no");
}

/* ---- every error class ---- */

Test(api, bodies)
{
	json_t *ok = json_object(), *bad = json_pack("{s:b}", "force", 1), *r = NULL;
	char out[4096];

	cr_assert_eq(call("PUT", "/v1/vm/pause", ok, NULL), 204, "{} is an empty body");
	cr_assert_eq(call("PUT", "/v1/vm/resume", bad, &r), 400);
	cr_assert(strstr(json_string_value(json_object_get(r, "error")), "force") != NULL);
	json_decref(r);
	cr_assert_eq(raw_str("PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			     "Content-Length: 8\r\n\r\n{\"a\": 1,",
			     out, sizeof(out)),
		     400);
	assert_error_json(out, "not valid JSON");
	cr_assert_eq(raw_str("PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			     "Content-Length: 6\r\n\r\n[1, 2]",
			     out, sizeof(out)),
		     400);
	assert_error_json(out, "JSON object");
	cr_assert_eq(raw_str("PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			     "Content-Length: 16\r\n\r\n{\"a\": 1, \"a\": 2}",
			     out, sizeof(out)),
		     400);
	cr_assert_eq(raw_str("GET /v1/vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			     "Content-Length: 2\r\n\r\n{}",
			     out, sizeof(out)),
		     400);
	assert_error_json(out, "takes no body");
	cr_assert_eq(fake.acts[API_PAUSE], 1, "only the good request reached the VM");
	json_decref(ok);
	json_decref(bad);
}

Test(api, unknown_paths_are_404)
{
	static const char *const paths[] = {
	    "/", "/v1", "/v1/vm/", "/v1/vm/pause/now", "/v2/vm", "/v1/vm/Pause", "/v1/vm?x=1"};
	char req[256], out[4096];

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", paths[i]);
		int status = raw_str(req, out, sizeof(out));

		if (strchr(paths[i], '?') != NULL) {
			cr_assert_eq(status, 200, "a query string is not part of the path");
			continue;
		}
		cr_assert_eq(status, 404, "%s: %s", paths[i], out);
		assert_error_json(out, "no such endpoint");
	}
}

Test(api, wrong_methods_are_405_with_allow)
{
	char out[4096];

	cr_assert_eq(raw_str("POST /v1/vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			     "Content-Length: 0\r\n\r\n",
			     out, sizeof(out)),
		     405);
	assert_error_json(out, "GET");
	cr_assert(strstr(out, "\r\nAllow: GET\r\n") != NULL, "%s", out);
	cr_assert_eq(raw_str("GET /v1/vm/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			     out, sizeof(out)),
		     405);
	cr_assert(strstr(out, "\r\nAllow: PUT\r\n") != NULL, "%s", out);
	cr_assert_eq(
	    raw_str("DELETE /v1/vm/counters HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out,
		    sizeof(out)),
	    405);
	cr_assert_eq(fake.acts[API_PAUSE], 0);
}

Test(api, too_big_bodies_are_413)
{
	size_t big = API_BODY_MAX + 1;
	char *req = malloc(big + 256), out[4096];
	int n = snprintf(req, 256,
			 "PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			 "Content-Length: %zu\r\n\r\n",
			 big);
	json_t *huge = json_object(), *r = NULL;
	char *pad = malloc(big);

	/* Announced over the limit: refused at the headers, whatever follows. */
	memset(req + n, ' ', big);
	cr_assert_eq(raw(req, (size_t)n, out, sizeof(out)), 413);
	assert_error_json(out, "64 KiB");
	/* Through the client, which sends it all. */
	memset(pad, 'x', big - 1);
	pad[big - 1] = '\0';
	json_object_set_new(huge, "pad", json_string(pad));
	cr_assert_eq(call("PUT", "/v1/vm/pause", huge, &r), 413);
	json_decref(r);
	cr_assert_eq(fake.acts[API_PAUSE], 0);
	/* Exactly at the limit: read, parsed, refused for its content only. */
	pad[API_BODY_MAX - 12] = '\0';
	json_object_set_new(huge, "pad", json_string(pad));
	cr_assert_eq(call("PUT", "/v1/vm/pause", huge, &r), 400);
	json_decref(r);
	json_decref(huge);
	free(pad);
	free(req);
}

/* Sends a chunked body of n 4 KiB chunks (until the server stops reading); returns bytes sent. */
static size_t send_chunks(int fd, size_t n)
{
	static const char head[] = "PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\n"
				   "Transfer-Encoding: chunked\r\n\r\n";
	char chunk[4096 + 16];
	size_t sent = 0;

	cr_assert_eq(send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(head) - 1);
	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk, "1000\r\n", 6);
	memcpy(chunk + 6 + 4096, "\r\n", 2);
	while (sent < n * 4096 && send(fd, chunk, 6 + 4096 + 2, MSG_NOSIGNAL) > 0)
		sent += 4096;
	return sent;
}

/* Chunked, with no length up front: read to its end, then a 413. */
Test(api, too_big_chunked_body_is_413)
{
	char out[4096];
	int fd = connect_to(sock_path);

	cr_assert_eq(send_chunks(fd, 2 * API_BODY_MAX / 4096), 2 * API_BODY_MAX);
	cr_assert_eq(send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL), 5);
	read_all(fd, out, sizeof(out));
	close(fd);
	cr_assert(strncmp(out, "HTTP/1.1 413", 12) == 0, "answer: %.60s", out);
	assert_error_json(out, "64 KiB");
	cr_assert_eq(fake.acts[API_PAUSE], 0);
}

/* One that never ends: the server stops reading it and hangs up, and serves the next client. */
Test(api, endless_chunked_body_is_cut_off)
{
	char out[4096];
	int fd = connect_to(sock_path);

	cr_assert_lt(send_chunks(fd, 4 * API_BODY_DRAIN_MAX / 4096), 4 * API_BODY_DRAIN_MAX,
		     "the server kept reading");
	read_all(fd, out, sizeof(out));
	close(fd);
	cr_assert_eq(fake.acts[API_PAUSE], 0);
	cr_assert_eq(call("GET", "/v1/vm", NULL, NULL), 200, "the server is still there");
}

Test(api, garbage_is_answered_or_dropped)
{
	static const char *const junk[] = {
	    "\r\n\r\n",
	    "GET\r\n\r\n",
	    "GET /v1/vm HTTP/9.9\r\n\r\n",
	    "GET /v1/vm HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
	    "\x16\x03\x01\x02\x00\x01\x00\x01",
	    "PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"};
	char out[4096];

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		int fd = connect_to(sock_path);

		send(fd, junk[i], strlen(junk[i]), MSG_NOSIGNAL);
		shutdown(fd, SHUT_WR);
		read_all(fd, out, sizeof(out));
		close(fd);
	}
	cr_assert_eq(fake.acts[API_PAUSE], 0);
	cr_assert_eq(call("GET", "/v1/vm", NULL, NULL), 200, "the server is still there");
}

/* What the client sent comes back in errors: always as valid JSON, one line. */
Test(api, hostile_bytes_in_errors)
{
	char out[4096], name[96], body[128], req[256];
	int n;

	cr_assert_eq(raw_str("GET /\xff\xfe\xc3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			     out, sizeof(out)),
		     404);
	assert_error_json(out, "no such endpoint");
	cr_assert_eq(raw_str("PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			     "Content-Length: 4\r\n\r\n{\"\xff\x01",
			     out, sizeof(out)),
		     400);
	assert_error_json(out, "not valid JSON");
	/* A member name cut in the middle of a multi-byte character. */
	for (int i = 0; i < 47; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	name[94] = '\0';
	n = snprintf(body, sizeof(body), "{\"%s\": 1}", name);
	snprintf(req, sizeof(req),
		 "PUT /v1/vm/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		 "Content-Length: %d\r\n\r\n%s",
		 n, body);
	cr_assert_eq(raw_str(req, out, sizeof(out)), 400);
	assert_error_json(out, "takes no field");
	cr_assert_eq(fake.acts[API_PAUSE], 0);
}

/* Answers to clients that left must not raise SIGPIPE in the VMM (it would kill it). */
Test(api, clients_that_leave_before_the_answer)
{
	static const char req[] = "GET /v1/vm HTTP/1.1\r\nHost: x\r\n\r\n";

	for (int i = 0; i < 50; i++) {
		int fd = connect_to(sock_path);

		cr_assert_eq(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
		close(fd);
	}
	usleep(200000);
	cr_assert_eq(call("GET", "/v1/vm", NULL, NULL), 200, "the server is still there");
}

/* ---- load and stalls ---- */

#define NTHREADS 48
#define NREQ	 20

static void *hammer(void *arg)
{
	long *ok = arg;

	for (int i = 0; i < NREQ; i++) {
		char err[256];
		long status = 0;
		json_t *r = NULL;

		if (api_request(sock_path, "GET", i % 2 ? "/v1/vm" : "/v1/vm/counters", NULL,
				&status, &r, err, sizeof(err)) == 0 &&
		    status == 200 && json_is_object(r))
			(*ok)++;
		else
			fprintf(stderr, "status %ld: %s\n", status, err);
		json_decref(r);
	}
	return NULL;
}

Test(api, many_concurrent_connections)
{
	pthread_t t[NTHREADS];
	long ok[NTHREADS] = {0};

	for (int i = 0; i < NTHREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, &ok[i]), 0);
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(ok[i], NREQ, "thread %d: %ld of %d requests answered", i, ok[i], NREQ);
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(api, a_stalled_client_does_not_block_others)
{
	static const char half[] = "GET /v1/vm HTTP/1.1\r\nHost: x\r\nContent-Le";
	int stalled[8];
	char out[64];
	double t0;

	for (int i = 0; i < 8; i++) {
		stalled[i] = connect_to(sock_path);
		cr_assert_eq(send(stalled[i], half, sizeof(half) - 1, 0),
			     (ssize_t)sizeof(half) - 1);
	}
	t0 = now_s();
	for (int i = 0; i < 10; i++)
		cr_assert_eq(call("GET", "/v1/vm", NULL, NULL), 200);
	/* Blocked, they would wait for the stalled clients' timeout. */
	cr_assert_lt(now_s() - t0, TIMEOUT_S / 2.0, "answers waited for the stalled clients");
	/* The connection timeout ends them: the server closes their sockets. */
	t0 = now_s();
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(read(stalled[i], out, sizeof(out)), 0, "not closed by the server");
		close(stalled[i]);
	}
	cr_assert_lt(now_s() - t0, TIMEOUT_S + 3.0);
}

/* ---- the socket file ---- */

Test(api, socket_is_0600_and_refused_while_live)
{
	struct api_socket other;
	struct stat st;

	cr_assert_eq(stat(sock_path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	cr_assert_eq(api_listen(&other, sock_path, "--api-socket"), -EADDRINUSE);
	cr_assert_eq(call("GET", "/v1/vm", NULL, NULL), 200, "the live server is untouched");
}

Test(api, stop_removes_the_socket_file)
{
	api_server_stop(srv);
	srv = NULL;
	cr_assert_eq(access(sock_path, F_OK), -1, "the socket outlived the server");
}

Test(api, stop_leaves_a_successor_alone)
{
	struct api_socket next;

	/* Someone replaced our file (a new VMM after a crash): it is not ours to remove. */
	cr_assert_eq(unlink(sock_path), 0);
	cr_assert_eq(api_listen(&next, sock_path, "--api-socket"), 0);
	api_server_stop(srv);
	srv = NULL;
	cr_assert_eq(access(sock_path, F_OK), 0, "a successor's socket was removed");
	api_unlisten(&next);
	cr_assert_eq(access(sock_path, F_OK), -1);
}

Test(api, stale_socket_is_replaced_other_files_are_not)
{
	char path[192], file[192];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct api_socket s;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	FILE *f;

	/* Bound but never listening: what a VMM that died leaves. */
	snprintf(path, sizeof(path), "%s/stale.sock", dir);
	sun_set(&sa, path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	cr_assert_eq(api_listen(&s, path, "--api-socket"), 0);
	api_unlisten(&s);
	snprintf(file, sizeof(file), "%s/file", dir);
	f = fopen(file, "w");
	fputs("mine", f);
	fclose(f);
	cr_assert_eq(api_listen(&s, file, "--api-socket"), -EEXIST);
	cr_assert_eq(access(file, F_OK), 0);
	unlink(file);
	cr_assert_eq(api_listen(&s, "/nonexistent/dir/api.sock", "--api-socket"), -ENOENT);
	cr_assert_eq(api_listen(&s, "", "--api-socket"), -ENAMETOOLONG);
}

/* ---- the client's own errors ---- */

Test(api, client_without_a_vmm)
{
	char path[192], err[256];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	long status = -1;
	json_t *r = (json_t *)1;
	int fd;

	snprintf(path, sizeof(path), "%s/none.sock", dir);
	cr_assert_eq(api_request(path, "GET", "/v1/vm", NULL, &status, &r, err, sizeof(err)),
		     -ENOENT);
	cr_assert(strstr(err, "no VMM is listening on") != NULL, "%s", err);
	cr_assert(strstr(err, path) != NULL, "%s", err);
	cr_assert_null(r);
	cr_assert_eq(status, 0);
	/* A socket file with nobody behind it. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	sun_set(&sa, path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(api_request(path, "GET", "/v1/vm", NULL, &status, NULL, err, sizeof(err)),
		     -ECONNREFUSED);
	cr_assert(strstr(err, "no VMM is listening on") != NULL, "%s", err);
	/* Listening, but never answering. */
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(
	    api_request_timeout(path, "GET", "/v1/vm", NULL, 300, &status, NULL, err, sizeof(err)),
	    -ETIMEDOUT);
	cr_assert(strstr(err, "did not answer") != NULL, "%s", err);
	close(fd);
	unlink(path);
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	cr_assert_eq(api_request(path, "GET", "/v1/vm", NULL, &status, NULL, err, sizeof(err)),
		     -ENAMETOOLONG);
}

Test(api, client_reply_errors_are_json_too)
{
	json_t *r = NULL;

	cr_assert_eq(call("GET", "/nowhere", NULL, &r), 404);
	cr_assert_not_null(json_object_get(r, "error"));
	json_decref(r);
	cr_assert_eq(call("PUT", "/v1/vm", NULL, &r), 405);
	json_decref(r);
}

/* ---- names ---- */

Test(api_names, valid_and_invalid)
{
	char longest[API_NAME_MAX + 2];

	cr_assert(api_name_valid("web1"));
	cr_assert(api_name_valid("db.prod_2-a"));
	cr_assert(api_name_valid("9"));
	cr_assert_not(api_name_valid(""));
	cr_assert_not(api_name_valid("-x"));
	cr_assert_not(api_name_valid(".hidden"));
	cr_assert_not(api_name_valid("_x"));
	cr_assert_not(api_name_valid("a/b"));
	cr_assert_not(api_name_valid("a b"));
	cr_assert_not(api_name_valid("caf\xc3\xa9"));
	memset(longest, 'a', sizeof(longest));
	longest[API_NAME_MAX] = '\0';
	cr_assert(api_name_valid(longest));
	longest[API_NAME_MAX] = 'a';
	longest[API_NAME_MAX + 1] = '\0';
	cr_assert_not(api_name_valid(longest));
}
