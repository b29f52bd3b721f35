#include "api/server.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

struct api_server {
	struct MHD_Daemon *daemon;
	struct api_socket sock;
	const struct api_ops *ops;
	void *opaque;
};

struct api_route;

/* One request, from its headers to the end of its connection's turn. */
struct api_req {
	const struct api_route *route;
	char *body;
	size_t len;
	bool answered;	/* an error went out before the body came */
	size_t dropped; /* bytes of a chunked body over API_BODY_MAX, read and thrown away */
};

typedef enum MHD_Result (*api_handler)(struct api_server *srv, struct MHD_Connection *c,
				       const struct api_route *route);

struct api_route {
	const char *path;
	const char *method;
	api_handler handle;
	enum api_action action; /* PUT routes */
	unsigned ok;		/* PUT routes: the status when done or accepted */
};

/* ---- the Unix socket ---- */

static int api_sockaddr(struct sockaddr_un *sa, const char *path, const char *what)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(sa->sun_path)) {
		log_error("%s '%s': a socket path must be 1 to %zu bytes long", what, path,
			  sizeof(sa->sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

/* A socket file at path that nobody answers on was left by a process that died: remove it. */
static int api_claim_stale(const char *path, const struct sockaddr_un *sa, const char *what)
{
	struct stat st;
	int fd, err;

	if (lstat(path, &st) != 0)
		return 0; /* nothing there (or gone meanwhile) */
	if (!S_ISSOCK(st.st_mode)) {
		log_error("%s %s exists and is not a socket: choose another path", what, path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? 0 : errno;
	close(fd);
	if (err == 0 || err == EAGAIN) {
		log_error("%s %s is in use: another VMM answers there", what, path);
		return -EADDRINUSE;
	}
	if (err != ECONNREFUSED || unlink(path) != 0) {
		log_error("%s: cannot replace the socket %s: %s", what, path,
			  strerror(err != ECONNREFUSED ? err : errno));
		return -EADDRINUSE;
	}
	return 0;
}

/* fchmod before bind: the file gets the socket's mode (less the umask), never a wider one. */
static int api_bind(struct api_socket *sock, const struct sockaddr_un *sa, const char *what)
{
	struct stat st;
	int err = 0;

	if (fchmod(sock->fd, 0600) != 0 ||
	    bind(sock->fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 ||
	    listen(sock->fd, API_SOCKET_BACKLOG) != 0)
		err = errno;
	if (err != 0) {
		log_error("%s: cannot listen on %s: %s%s", what, sock->path, strerror(err),
			  err == ENOENT ? " (does its directory exist?)" : "");
		return -err;
	}
	/* Which file is ours: at exit we remove that one, never a successor's. */
	if (stat(sock->path, &st) == 0) {
		sock->dev = st.st_dev;
		sock->ino = st.st_ino;
	}
	return 0;
}

int api_listen(struct api_socket *sock, const char *path, const char *what)
{
	struct sockaddr_un sa;
	int ret;

	memset(sock, 0, sizeof(*sock));
	sock->fd = -1;
	if ((ret = api_sockaddr(&sa, path, what)) != 0 ||
	    (ret = api_claim_stale(path, &sa, what)) != 0)
		return ret;
	snprintf(sock->path, sizeof(sock->path), "%s", path);
	sock->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock->fd < 0) {
		ret = -errno;
		log_error("%s: cannot create a socket: %s", what, strerror(errno));
		return ret;
	}
	if ((ret = api_bind(sock, &sa, what)) != 0) {
		close(sock->fd);
		sock->fd = -1;
		sock->path[0] = '\0';
	}
	return ret;
}

void api_unlisten(struct api_socket *sock)
{
	struct stat st;

	if (sock->fd >= 0)
		close(sock->fd);
	if (sock->path[0] != '\0' && stat(sock->path, &st) == 0 && st.st_dev == sock->dev &&
	    st.st_ino == sock->ino)
		unlink(sock->path);
	sock->fd = -1;
	sock->path[0] = '\0';
}

bool api_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > API_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       n;
}

/* ---- responses ---- */

/* Takes obj over; allow, when not NULL, is the Allow header of a 405. */
static enum MHD_Result api_reply(struct MHD_Connection *c, unsigned status, json_t *obj,
				 const char *allow)
{
	/* 12 digits: 73.25, not 73.250000000000014. */
	char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
	struct MHD_Response *r;
	enum MHD_Result ret;

	json_decref(obj);
	if (text == NULL)
		return MHD_NO; /* out of memory: MHD closes the connection */
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result api_send_empty(struct MHD_Connection *c, unsigned status)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * Messages quote what the client sent (a path, a member name, what jansson
 * choked on), cut to a length: one line of ASCII, so that it is always valid
 * JSON (jansson refuses invalid UTF-8) and never more than one line.
 */
static void api_printable(char *msg)
{
	for (unsigned char *p = (unsigned char *)msg; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
}

static enum MHD_Result api_verror(struct MHD_Connection *c, unsigned status, const char *allow,
				  const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static enum MHD_Result api_verror(struct MHD_Connection *c, unsigned status, const char *allow,
				  const char *fmt, va_list ap)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	api_printable(msg);
	return api_reply(c, status, json_pack("{s:s}", "error", msg), allow);
}

/* {"error": "..."} with status. */
static enum MHD_Result api_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result api_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	enum MHD_Result ret;
	va_list ap;

	va_start(ap, fmt);
	ret = api_verror(c, status, NULL, fmt, ap);
	va_end(ap);
	return ret;
}

/* A 405: the error and the Allow header. */
static enum MHD_Result api_not_allowed(struct MHD_Connection *c, const char *allow, const char *fmt,
				       ...) __attribute__((format(printf, 3, 4)));
static enum MHD_Result api_not_allowed(struct MHD_Connection *c, const char *allow, const char *fmt,
				       ...)
{
	enum MHD_Result ret;
	va_list ap;

	va_start(ap, fmt);
	ret = api_verror(c, MHD_HTTP_METHOD_NOT_ALLOWED, allow, fmt, ap);
	va_end(ap);
	return ret;
}

/* ---- GET /v1/vm ---- */

static const char *api_dev_type_name(enum api_dev_type t)
{
	static const char *const names[] = {"block", "net", "vsock", "rng"};

	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

static json_t *api_device_json(const struct api_device *d)
{
	json_t *o = json_pack("{s:s,s:s}", "id", d->id, "type", api_dev_type_name(d->type));

	if (o == NULL)
		return NULL;
	switch (d->type) {
	case API_DEV_BLOCK:
		json_object_set_new(o, "path", json_string(d->block.path ? d->block.path : ""));
		json_object_set_new(o, "size", json_integer((json_int_t)d->block.size));
		json_object_set_new(o, "readonly", json_boolean(d->block.readonly));
		json_object_set_new(o, "serial",
				    json_string(d->block.serial ? d->block.serial : ""));
		break;
	case API_DEV_NET:
		json_object_set_new(o, "mac", json_string(d->net.mac));
		json_object_set_new(o, "backend",
				    json_string(d->net.backend ? d->net.backend : ""));
		break;
	case API_DEV_VSOCK:
		json_object_set_new(o, "cid", json_integer((json_int_t)d->vsock.cid));
		json_object_set_new(o, "socket",
				    json_string(d->vsock.socket ? d->vsock.socket : ""));
		break;
	default:
		break;
	}
	return o;
}

static json_t *api_info_json(const struct api_vm_info *info)
{
	json_t *devs = json_array();

	for (unsigned i = 0; devs != NULL && i < info->ndevices && i < API_MAX_DEVICES; i++)
		json_array_append_new(devs, api_device_json(&info->devices[i]));
	return json_pack("{s:s,s:s,s:I,s:I,s:i,s:f,s:I,s:o}", "name", info->name ? info->name : "",
			 "state", info->paused ? "paused" : "running", "cpus",
			 (json_int_t)info->cpus, "memory", (json_int_t)info->memory, "pid",
			 info->pid, "uptime_seconds", info->uptime_seconds, "boots",
			 (json_int_t)info->boots, "devices", devs);
}

static enum MHD_Result api_get_vm(struct api_server *srv, struct MHD_Connection *c,
				  const struct api_route *route)
{
	struct api_vm_info *info = calloc(1, sizeof(*info));
	json_t *o = NULL;
	int ret;

	(void)route;
	if (info == NULL)
		return MHD_NO;
	ret = srv->ops->info(srv->opaque, info);
	if (ret == 0)
		o = api_info_json(info);
	free(info);
	if (ret != 0)
		return api_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot describe the VM: %s",
				 strerror(-ret));
	return api_reply(c, MHD_HTTP_OK, o, NULL);
}

/* ---- GET /v1/vm/counters ---- */

struct api_field {
	const char *name;
	size_t offset;
};

#define API_FIELD(type, f)                                                                         \
	{                                                                                          \
#f, offsetof(struct type, f)                                                       \
	}

static const struct api_field api_blk_fields[] = {
    API_FIELD(blk_stats, read_ops),	 API_FIELD(blk_stats, read_bytes),
    API_FIELD(blk_stats, write_ops),	 API_FIELD(blk_stats, write_bytes),
    API_FIELD(blk_stats, flush_ops),	 API_FIELD(blk_stats, discard_ops),
    API_FIELD(blk_stats, discard_bytes), API_FIELD(blk_stats, errors),
};

static const struct api_field api_net_fields[] = {
    API_FIELD(net_stats, rx_packets), API_FIELD(net_stats, rx_bytes),
    API_FIELD(net_stats, rx_dropped), API_FIELD(net_stats, tx_packets),
    API_FIELD(net_stats, tx_bytes),   API_FIELD(net_stats, tx_dropped),
};

static const struct api_field api_vsock_fields[] = {
    API_FIELD(vsock_stats, rx_packets),	 API_FIELD(vsock_stats, rx_bytes),
    API_FIELD(vsock_stats, tx_packets),	 API_FIELD(vsock_stats, tx_bytes),
    API_FIELD(vsock_stats, connections), API_FIELD(vsock_stats, connections_total),
    API_FIELD(vsock_stats, resets),
};

static json_t *api_fields_json(const void *stats, const struct api_field *f, size_t n)
{
	json_t *o = json_object();

	for (size_t i = 0; o != NULL && i < n; i++) {
		uint64_t v;

		memcpy(&v, (const char *)stats + f[i].offset, sizeof(v));
		json_object_set_new(o, f[i].name, json_integer((json_int_t)v));
	}
	return o;
}

#define API_NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static json_t *api_dev_counters_json(const struct api_dev_counters *d)
{
	switch (d->type) {
	case API_DEV_BLOCK:
		return api_fields_json(&d->block, api_blk_fields, API_NFIELDS(api_blk_fields));
	case API_DEV_NET:
		return api_fields_json(&d->net, api_net_fields, API_NFIELDS(api_net_fields));
	case API_DEV_VSOCK:
		return api_fields_json(&d->vsock, api_vsock_fields, API_NFIELDS(api_vsock_fields));
	default:
		return NULL;
	}
}

static enum MHD_Result api_get_counters(struct api_server *srv, struct MHD_Connection *c,
					const struct api_route *route)
{
	struct api_counters *cnt = calloc(1, sizeof(*cnt));
	json_t *o = json_object();
	int ret;

	(void)route;
	if (cnt == NULL || o == NULL) {
		free(cnt);
		json_decref(o);
		return MHD_NO;
	}
	ret = srv->ops->counters(srv->opaque, cnt);
	for (unsigned i = 0; ret == 0 && i < cnt->ndevices && i < API_MAX_DEVICES; i++) {
		json_t *d = api_dev_counters_json(&cnt->devices[i]);

		if (d != NULL)
			json_object_set_new(o, cnt->devices[i].id, d);
	}
	free(cnt);
	if (ret != 0) {
		json_decref(o);
		return api_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the counters: %s",
				 strerror(-ret));
	}
	return api_reply(c, MHD_HTTP_OK, o, NULL);
}

/* ---- PUT /v1/vm/<action> ---- */

/* The status and message for an op's failure (why: its one line, maybe empty). */
static enum MHD_Result api_op_failed(struct MHD_Connection *c, const struct api_route *route,
				     int ret, const char *why)
{
	if (ret == -EALREADY || ret == -EBUSY || ret == -ESHUTDOWN)
		return api_error(c, MHD_HTTP_CONFLICT, "%s",
				 why[0] ? why : "the VM is not in a state for this");
	if (ret == -ETIMEDOUT)
		return api_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s",
				 why[0] ? why : "the VM did not answer in time");
	return api_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s failed: %s", route->path,
			 why[0] ? why : strerror(-ret));
}

static enum MHD_Result api_act(struct api_server *srv, struct MHD_Connection *c,
			       const struct api_route *route)
{
	char why[200] = "";
	int ret = srv->ops->act(srv->opaque, route->action, why, sizeof(why));

	if (ret == 0)
		return api_send_empty(c, route->ok);
	return api_op_failed(c, route, ret, why);
}

/* ---- GET /v1/vm/vcpus ---- */

/* 64-bit addresses as "0x..." strings: JSON numbers lose precision past 2^53. */
static json_t *api_hex(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return json_string(buf);
}

static json_t *api_vcpu_json(const struct vcpu_summary *v)
{
	json_t *o = json_pack("{s:i, s:s, s:s, s:i, s:b}", "index", (int)v->index, "state",
			      v->state, "mode", v->mode, "cpl", (int)v->cpl, "nmi_pending",
			      v->nmi_pending);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "rip", api_hex(v->rip));
	json_object_set_new(o, "rsp", api_hex(v->rsp));
	json_object_set_new(o, "rflags", api_hex(v->rflags));
	json_object_set_new(o, "cs", api_hex(v->cs));
	json_object_set_new(o, "cr0", api_hex(v->cr0));
	json_object_set_new(o, "cr2", api_hex(v->cr2));
	json_object_set_new(o, "cr3", api_hex(v->cr3));
	json_object_set_new(o, "cr4", api_hex(v->cr4));
	json_object_set_new(o, "efer", api_hex(v->efer));
	json_object_set_new(o, "interrupts_enabled", json_boolean(v->rflags & 0x200));
	json_object_set_new(o, "pending_interrupt",
			    v->pending_vector < 0 ? json_null() : json_integer(v->pending_vector));
	return o;
}

static enum MHD_Result api_get_vcpus(struct api_server *srv, struct MHD_Connection *c,
				     const struct api_route *route)
{
	struct api_vcpus *vs = calloc(1, sizeof(*vs));
	char why[200] = "";
	json_t *list;
	int ret;

	if (vs == NULL)
		return MHD_NO;
	ret = srv->ops->vcpus(srv->opaque, vs, why, sizeof(why));
	if (ret != 0) {
		free(vs);
		return api_op_failed(c, route, ret, why);
	}
	list = json_array();
	for (unsigned i = 0; list != NULL && i < vs->n && i < API_MAX_VCPUS; i++)
		json_array_append_new(list, api_vcpu_json(&vs->vcpus[i]));
	free(vs);
	return api_reply(c, MHD_HTTP_OK, json_pack("{s:o}", "vcpus", list), NULL);
}

/* ---- routing ---- */

static const struct api_route api_routes[] = {
    {"/v1/vm", "GET", api_get_vm, 0, 0},
    {"/v1/vm/counters", "GET", api_get_counters, 0, 0},
    {"/v1/vm/vcpus", "GET", api_get_vcpus, 0, 0},
    {"/v1/vm/pause", "PUT", api_act, API_PAUSE, MHD_HTTP_NO_CONTENT},
    {"/v1/vm/resume", "PUT", api_act, API_RESUME, MHD_HTTP_NO_CONTENT},
    {"/v1/vm/shutdown", "PUT", api_act, API_SHUTDOWN, MHD_HTTP_ACCEPTED},
    {"/v1/vm/poweroff", "PUT", api_act, API_POWEROFF, MHD_HTTP_ACCEPTED},
    {"/v1/vm/reboot", "PUT", api_act, API_REBOOT, MHD_HTTP_ACCEPTED},
};

#define API_NROUTES API_NFIELDS(api_routes)

/* The methods path takes, for a 405's Allow; "" when the path is unknown. */
static void api_allowed(const char *path, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < API_NROUTES && n < len; i++)
		if (strcmp(api_routes[i].path, path) == 0)
			n += (size_t)snprintf(out + n, len - n, "%s%s", n ? ", " : "",
					      api_routes[i].method);
}

static const struct api_route *api_route(const char *path, const char *method)
{
	for (size_t i = 0; i < API_NROUTES; i++)
		if (strcmp(api_routes[i].path, path) == 0 &&
		    strcmp(api_routes[i].method, method) == 0)
			return &api_routes[i];
	return NULL;
}

/* Content-Length, when the client sent one; -1 otherwise (chunked, or none). */
static long long api_content_length(struct MHD_Connection *c)
{
	const char *v =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	char *end;
	long long n;

	if (v == NULL)
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	return errno != 0 || end == v || *end != '\0' || n < 0 ? -1 : n;
}

/*
 * The headers are in: route the request. Errors that do not depend on the
 * body go out now, before it is read (a 413 spares reading 1 GiB).
 */
static enum MHD_Result api_begin(struct MHD_Connection *c, struct api_req *req, const char *url,
				 const char *method)
{
	char allow[64];

	req->route = api_route(url, method);
	if (req->route == NULL) {
		req->answered = true;
		api_allowed(url, allow, sizeof(allow));
		if (allow[0] == '\0')
			return api_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint: %.100s", url);
		return api_not_allowed(c, allow, "%s does not take %.16s: use %s", url, method,
				       allow);
	}
	if (api_content_length(c) > (long long)API_BODY_MAX) {
		req->answered = true;
		return api_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is over %u KiB",
				 API_BODY_MAX >> 10);
	}
	return MHD_YES;
}

/* Appends a piece of the body; false when it is over the limit (chunked, no length up front). */
static bool api_take_body(struct api_req *req, const char *data, size_t len)
{
	char *grown;

	if (len > API_BODY_MAX - req->len)
		return false;
	grown = realloc(req->body, req->len + len + 1);
	if (grown == NULL)
		return false;
	memcpy(grown + req->len, data, len);
	req->body = grown;
	req->len += len;
	req->body[req->len] = '\0';
	return true;
}

/*
 * A body, when there is one, is a JSON object whose members the endpoint
 * knows: none yet. Returns true when it is acceptable, else queues a 400
 * and sets *ret.
 */
static bool api_body_ok(struct MHD_Connection *c, const struct api_req *req, enum MHD_Result *ret)
{
	json_error_t jerr;
	json_t *body;

	if (req->len == 0)
		return true;
	if (strcmp(req->route->method, "GET") == 0) {
		*ret = api_error(c, MHD_HTTP_BAD_REQUEST, "GET %s takes no body", req->route->path);
		return false;
	}
	body = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr);
	if (body == NULL)
		*ret = api_error(c, MHD_HTTP_BAD_REQUEST,
				 "the body is not valid JSON: %s (line %d)", jerr.text, jerr.line);
	else if (!json_is_object(body))
		*ret = api_error(c, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
	else if (json_object_size(body) > 0)
		*ret = api_error(c, MHD_HTTP_BAD_REQUEST, "%s takes no field '%.40s'",
				 req->route->path, json_object_iter_key(json_object_iter(body)));
	else {
		json_decref(body);
		return true;
	}
	json_decref(body);
	return false;
}

static enum MHD_Result api_access(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **con_cls)
{
	struct api_server *srv = cls;
	struct api_req *req = *con_cls;
	enum MHD_Result ret;

	(void)version;
	if (req == NULL) {
		if ((req = calloc(1, sizeof(*req))) == NULL)
			return MHD_NO;
		*con_cls = req;
		return api_begin(c, req, url, method);
	}
	if (req->answered)
		return MHD_YES; /* the error is queued: whatever follows is dropped */
	if (*upload_len > 0) {
		bool ok = req->dropped == 0 && api_take_body(req, upload, *upload_len);

		if (!ok)
			req->dropped += *upload_len;
		*upload_len = 0;
		/*
		 * Over the limit with no length announced: read on to the end so that
		 * the 413 reaches the client (hanging up on unread data resets the
		 * connection and loses it), but not forever.
		 */
		return req->dropped <= API_BODY_DRAIN_MAX ? MHD_YES : MHD_NO;
	}
	if (req->dropped > 0)
		return api_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is over %u KiB",
				 API_BODY_MAX >> 10);
	if (!api_body_ok(c, req, &ret))
		return ret;
	return req->route->handle(srv, c, req->route);
}

static void api_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct api_req *req = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (req != NULL) {
		free(req->body);
		free(req);
	}
	*con_cls = NULL;
}

int api_server_start(struct api_server **out, struct api_socket *sock, const struct api_ops *ops,
		     void *opaque, unsigned conn_timeout)
{
	struct api_server *srv = calloc(1, sizeof(*srv));

	*out = NULL;
	if (srv == NULL)
		return -ENOMEM;
	srv->ops = ops;
	srv->opaque = opaque;
	srv->sock = *sock;
	srv->daemon = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, api_access, srv,
	    MHD_OPTION_LISTEN_SOCKET, sock->fd, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)API_MAX_CONNS, MHD_OPTION_CONNECTION_TIMEOUT,
	    conn_timeout ? conn_timeout : (unsigned)API_CONN_TIMEOUT, MHD_OPTION_NOTIFY_COMPLETED,
	    api_completed, srv, MHD_OPTION_END);
	if (srv->daemon == NULL) {
		log_error("cannot serve the control API on %s", sock->path);
		free(srv);
		return -EIO;
	}
	/* The daemon owns the fd now (it closes it when stopped); the file is still ours. */
	sock->fd = -1;
	sock->path[0] = '\0';
	*out = srv;
	return 0;
}

void api_server_stop(struct api_server *srv)
{
	if (srv == NULL)
		return;
	MHD_stop_daemon(srv->daemon);
	srv->sock.fd = -1; /* closed by MHD */
	api_unlisten(&srv->sock);
	free(srv);
}
