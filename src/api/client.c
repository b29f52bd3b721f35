#include "api/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/vcpu.h"

/* What came back, capped: a VMM's answers are small. */
struct api_reply_buf {
	char *data;
	size_t len;
	bool overflow;
};

static pthread_once_t api_curl_once = PTHREAD_ONCE_INIT;
static CURLcode api_curl_init_result = CURLE_FAILED_INIT;

/* curl_global_init is not safe to race, and the manager may have threads. */
static void api_curl_init(void)
{
	api_curl_init_result = curl_global_init(CURL_GLOBAL_NOTHING);
}

static int api_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int api_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static size_t api_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct api_reply_buf *b = userdata;
	size_t n = size * nmemb;
	char *grown;

	if (n > API_REPLY_MAX - b->len) {
		b->overflow = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	grown = realloc(b->data, b->len + n + 1);
	if (grown == NULL)
		return 0;
	memcpy(grown + b->len, ptr, n);
	b->data = grown;
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* Why the connection failed: the socket file is missing, or nobody listens on it. */
static int api_connect_error(const char *socket_path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(socket_path, &st) != 0 && errno == ENOENT)
		return api_fail(err, errlen, -ENOENT, "no VMM is listening on %s (no such socket)",
				socket_path);
	return api_fail(err, errlen, -ECONNREFUSED, "no VMM is listening on %s", socket_path);
}

static int api_curl_error(CURLcode rc, const struct api_reply_buf *b, const char *socket_path,
			  long timeout_ms, char *err, size_t errlen)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return api_connect_error(socket_path, err, errlen);
	case CURLE_OPERATION_TIMEDOUT:
		return api_fail(err, errlen, -ETIMEDOUT, "the VMM on %s did not answer in %ld ms",
				socket_path, timeout_ms);
	case CURLE_OUT_OF_MEMORY:
		return api_fail(err, errlen, -ENOMEM, "out of memory talking to %s", socket_path);
	case CURLE_WRITE_ERROR:
		if (b->overflow)
			return api_fail(err, errlen, -EPROTO,
					"the VMM on %s sent a reply over %u KiB", socket_path,
					API_REPLY_MAX >> 10);
		return api_fail(err, errlen, -ENOMEM, "out of memory talking to %s", socket_path);
	default:
		return api_fail(err, errlen, -EIO, "cannot talk to the VMM on %s: %s", socket_path,
				curl_easy_strerror(rc));
	}
}

/* The parts of the request that do not depend on the outcome. */
static int api_setup(CURL *curl, const char *socket_path, const char *method, const char *path,
		     const char *body, long timeout_ms, struct curl_slist **headers,
		     struct api_reply_buf *b)
{
	char url[512];

	if ((size_t)snprintf(url, sizeof(url), "http://localhost%s", path) >= sizeof(url))
		return -ENAMETOOLONG;
	curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM: we may be in a thread */
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, api_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
	if (strcmp(method, "GET") == 0 && body == NULL)
		return 0;
	/* A body, possibly empty, with its length: never chunked, never Expect: 100-continue. */
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
	*headers = curl_slist_append(NULL, "Content-Type: application/json");
	*headers = *headers ? curl_slist_append(*headers, "Expect:") : NULL;
	if (*headers == NULL)
		return -ENOMEM;
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, *headers);
	return 0;
}

static int api_parse_reply(const struct api_reply_buf *b, const char *socket_path, json_t **reply,
			   char *err, size_t errlen)
{
	json_error_t jerr;

	if (reply == NULL)
		return 0;
	*reply = NULL;
	if (b->len == 0)
		return 0;
	*reply = json_loadb(b->data, b->len, 0, &jerr);
	if (*reply == NULL)
		return api_fail(err, errlen, -EPROTO,
				"the VMM on %s sent a reply that is not JSON: %s", socket_path,
				jerr.text);
	return 0;
}

static long api_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A full listen backlog makes a Unix socket's connect fail with EAGAIN at
 * once: the VMM is there and busy, so try again until the time is up.
 */
static CURLcode api_perform(CURL *curl, long timeout_ms)
{
	long deadline = api_now_ms() + timeout_ms, oserr = 0;
	CURLcode rc;

	for (;;) {
		rc = curl_easy_perform(curl);
		if (rc != CURLE_COULDNT_CONNECT ||
		    curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &oserr) != CURLE_OK ||
		    oserr != EAGAIN)
			return rc;
		if (api_now_ms() + 10 >= deadline)
			return CURLE_OPERATION_TIMEDOUT;
		usleep(10000);
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, deadline - api_now_ms());
	}
}

/* The socket path must fit a sockaddr_un, or curl would cut it silently. */
static bool api_path_fits(const char *socket_path)
{
	return strlen(socket_path) < sizeof(((struct sockaddr_un *)0)->sun_path);
}

int api_request_timeout(const char *socket_path, const char *method, const char *path,
			const json_t *body, long timeout_ms, long *http_status, json_t **reply,
			char *err, size_t errlen)
{
	struct api_reply_buf b = {0};
	struct curl_slist *headers = NULL;
	char *text = NULL;
	CURL *curl = NULL;
	CURLcode rc;
	int ret;

	if (reply != NULL)
		*reply = NULL;
	*http_status = 0;
	if (!api_path_fits(socket_path))
		return api_fail(err, errlen, -ENAMETOOLONG, "the socket path %s is too long",
				socket_path);
	pthread_once(&api_curl_once, api_curl_init);
	if (api_curl_init_result != CURLE_OK || (curl = curl_easy_init()) == NULL)
		return api_fail(err, errlen, -ENOMEM, "cannot set up libcurl");
	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		ret = api_fail(err, errlen, -ENOMEM, "cannot encode the request body");
		goto out;
	}
	ret = api_setup(curl, socket_path, method, path, text, timeout_ms, &headers, &b);
	if (ret != 0) {
		ret = api_fail(err, errlen, ret, "cannot build the request %s %s: %s", method, path,
			       strerror(-ret));
		goto out;
	}
	rc = api_perform(curl, timeout_ms);
	if (rc != CURLE_OK) {
		ret = api_curl_error(rc, &b, socket_path, timeout_ms, err, errlen);
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, http_status);
	ret = api_parse_reply(&b, socket_path, reply, err, errlen);
out:
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	free(text);
	free(b.data);
	return ret;
}

int api_request(const char *socket_path, const char *method, const char *path, const json_t *body,
		long *http_status, json_t **reply, char *err, size_t errlen)
{
	return api_request_timeout(socket_path, method, path, body, API_CLIENT_TIMEOUT_MS,
				   http_status, reply, err, errlen);
}

/* A "0x..." member of a vCPU entry; false when absent or not hex. */
static bool api_hex_member(const json_t *v, const char *key, uint64_t *out)
{
	const char *s = json_string_value(json_object_get(v, key));
	char *end;

	if (s == NULL || strncmp(s, "0x", 2) != 0)
		return false;
	errno = 0;
	*out = strtoull(s + 2, &end, 16);
	return errno == 0 && end != s + 2 && *end == '\0';
}

int api_vcpu_parse(const json_t *v, struct vcpu_summary *out)
{
	const json_t *pending = json_object_get(v, "pending_interrupt");
	uint64_t cs = 0;
	bool ok;

	memset(out, 0, sizeof(*out));
	out->state = json_string_value(json_object_get(v, "state"));
	out->mode = json_string_value(json_object_get(v, "mode"));
	ok = json_is_integer(json_object_get(v, "index")) &&
	     json_is_integer(json_object_get(v, "cpl")) && out->state != NULL &&
	     out->mode != NULL && (json_is_null(pending) || json_is_integer(pending)) &&
	     api_hex_member(v, "rip", &out->rip) && api_hex_member(v, "rsp", &out->rsp) &&
	     api_hex_member(v, "rflags", &out->rflags) && api_hex_member(v, "cs", &cs) &&
	     api_hex_member(v, "cr0", &out->cr0) && api_hex_member(v, "cr2", &out->cr2) &&
	     api_hex_member(v, "cr3", &out->cr3) && api_hex_member(v, "cr4", &out->cr4) &&
	     api_hex_member(v, "efer", &out->efer);
	if (!ok)
		return -EPROTO;
	out->index = (unsigned)json_integer_value(json_object_get(v, "index"));
	out->cpl = (unsigned)json_integer_value(json_object_get(v, "cpl"));
	out->cs = (uint16_t)cs;
	out->pending_vector = json_is_integer(pending) ? (int)json_integer_value(pending) : -1;
	out->nmi_pending = json_is_true(json_object_get(v, "nmi_pending"));
	return 0;
}
