/*
 * A client for a VMM's control API (api/server.h, docs/api.yaml), for the
 * manager: one HTTP request over the VMM's Unix socket, with libcurl.
 */
#ifndef TABIQUE_API_CLIENT_H
#define TABIQUE_API_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#define API_CLIENT_TIMEOUT_MS 10000 /* api_request()'s bound on the whole exchange */
#define API_REPLY_MAX	      (1u << 20)

/*
 * Sends method (e.g. "GET", "PUT") path (e.g. "/v1/vm") to the VMM listening
 * on socket_path, with body as JSON (NULL: no body), and waits at most
 * API_CLIENT_TIMEOUT_MS. On 0, *http_status is the HTTP status (the API's
 * errors, 4xx and 5xx, are replies like any other) and, when reply is not
 * NULL, *reply is the parsed JSON body (the caller's to json_decref) or NULL
 * when there was none (204, 202). Returns -errno when there was no usable
 * reply, with one line in err (e.g. "no VMM is listening on PATH"):
 * -ENOENT no socket file, -ECONNREFUSED nobody listens, -ETIMEDOUT no answer
 * in time, -EPROTO a reply that is not JSON, -ENAMETOOLONG, -ENOMEM, -EIO.
 */
int api_request(const char *socket_path, const char *method, const char *path, const json_t *body,
		long *http_status, json_t **reply, char *err, size_t errlen);

/* api_request() with another timeout (milliseconds, > 0). */
int api_request_timeout(const char *socket_path, const char *method, const char *path,
			const json_t *body, long timeout_ms, long *http_status, json_t **reply,
			char *err, size_t errlen);

struct vcpu_summary;

/*
 * One entry of GET /v1/vm/vcpus into out; its strings point into v and live
 * as long as it. Returns 0, or -EPROTO when a member is missing or of the
 * wrong type.
 */
int api_vcpu_parse(const json_t *v, struct vcpu_summary *out);

#endif
