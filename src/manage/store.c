#include "manage/store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define VM_DEF_FILE "vm.json"

static int copy_path(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s%s", a, b);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int store_home(char *out, size_t len)
{
	const char *env = getenv("TABIQUE_HOME");

	if (env != NULL && env[0] != '\0')
		return copy_path(out, len, env, "");
	if (geteuid() == 0)
		return copy_path(out, len, "/var/lib/tabique", "");
	env = getenv("XDG_DATA_HOME");
	if (env != NULL && env[0] == '/')
		return copy_path(out, len, env, "/tabique");
	env = getenv("HOME");
	if (env == NULL || env[0] != '/')
		return -ENOENT;
	return copy_path(out, len, env, "/.local/share/tabique");
}

int store_check_name(const char *name, char *why, size_t whylen)
{
	size_t len = strlen(name);

	if (len == 0) {
		snprintf(why, whylen, "a VM name cannot be empty");
		return -EINVAL;
	}
	if (len > VM_NAME_MAX) {
		snprintf(why, whylen, "VM name too long (%zu characters, at most %d)", len,
			 VM_NAME_MAX);
		return -EINVAL;
	}
	if (!isalnum((unsigned char)name[0])) {
		snprintf(why, whylen, "VM name '%s' must start with a letter or a digit", name);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!isascii(c) || !(isalnum(c) || c == '.' || c == '_' || c == '-')) {
			snprintf(why, whylen,
				 "VM name '%s' has '%c': use letters, digits, '.', '_' and '-'",
				 name, isprint(c) ? c : '?');
			return -EINVAL;
		}
	}
	return 0;
}

int store_vm_dir(const char *home, const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/vms/%s", home, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int store_vm_file(const char *dir, const char *leaf, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%s", dir, leaf);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

void vm_def_init(struct vm_def *def, const char *name)
{
	memset(def, 0, sizeof(*def));
	snprintf(def->name, sizeof(def->name), "%s", name);
	def->cpus = 1;
	def->memory = 512ull << 20;
	def->restart_on_reboot = true;
	def->created = (int64_t)time(NULL);
}

/* --- checking ------------------------------------------------------------- */

static int check_disk(const struct vm_def_disk *d, unsigned i, char *why, size_t whylen)
{
	if (d->path[0] != '/') {
		snprintf(why, whylen, "disk %u: the path must be absolute", i);
		return -EINVAL;
	}
	if (strcmp(d->format, "raw") != 0 && strcmp(d->format, "qcow2") != 0) {
		snprintf(why, whylen, "disk %u: format must be \"raw\" or \"qcow2\"", i);
		return -EINVAL;
	}
	for (const char *s = d->serial; *s; s++) {
		if (!isprint((unsigned char)*s) || *s == ',') {
			snprintf(why, whylen, "disk %u: serial has a character it cannot have", i);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_net(const char *spec, unsigned i, char *why, size_t whylen)
{
	struct net_spec parsed;
	char err[200];

	if (net_parse_spec(spec, i, &parsed, err, sizeof(err)) != 0) {
		snprintf(why, whylen, "net %u: %s", i, err);
		return -EINVAL;
	}
	return 0;
}

int vm_def_check(const struct vm_def *def, char *why, size_t whylen)
{
	if (store_check_name(def->name, why, whylen) != 0)
		return -EINVAL;
	if (def->cpus < 1 || def->cpus > VM_CPUS_MAX) {
		snprintf(why, whylen, "cpus must be 1..%d", VM_CPUS_MAX);
		return -EINVAL;
	}
	if (def->memory < VM_MEMORY_MIN || def->memory > VM_MEMORY_MAX ||
	    def->memory % 4096 != 0) {
		snprintf(why, whylen, "memory must be a multiple of 4 KiB from 16 MiB to 1 TiB");
		return -EINVAL;
	}
	if ((def->kernel[0] && def->kernel[0] != '/') || (def->initrd[0] && def->initrd[0] != '/')) {
		snprintf(why, whylen, "kernel and initrd paths must be absolute");
		return -EINVAL;
	}
	if (def->initrd[0] && !def->kernel[0]) {
		snprintf(why, whylen, "an initrd needs a kernel");
		return -EINVAL;
	}
	for (unsigned i = 0; i < def->ndisks; i++)
		if (check_disk(&def->disks[i], i, why, whylen) != 0)
			return -EINVAL;
	for (unsigned i = 0; i < def->nnets; i++)
		if (check_net(def->nets[i], i, why, whylen) != 0)
			return -EINVAL;
	if (def->vsock_cid != 0 && def->vsock_cid < VM_CID_MIN) {
		snprintf(why, whylen, "vsock cid must be 3 or more");
		return -EINVAL;
	}
	return 0;
}

/* --- JSON ----------------------------------------------------------------- */

static json_t *disk_to_json(const struct vm_def_disk *d)
{
	json_t *o = json_pack("{s:s, s:s, s:b, s:s, s:b}", "path", d->path, "format", d->format,
			      "readonly", d->readonly, "serial", d->serial, "owned", d->owned);

	if (d->base[0])
		json_object_set_new(o, "base", json_string(d->base));
	return o;
}

static json_t *vm_def_to_json(const struct vm_def *def)
{
	json_t *root = json_pack("{s:i, s:s, s:i, s:I, s:s, s:I}", "version", VM_DEF_VERSION,
				 "name", def->name, "cpus", (json_int_t)def->cpus, "memory",
				 (json_int_t)def->memory, "on_reboot",
				 def->restart_on_reboot ? "restart" : "exit", "created",
				 (json_int_t)def->created);
	json_t *disks = json_array(), *nets = json_array();

	if (def->kernel[0])
		json_object_set_new(root, "kernel", json_string(def->kernel));
	if (def->initrd[0])
		json_object_set_new(root, "initrd", json_string(def->initrd));
	if (def->cmdline[0])
		json_object_set_new(root, "cmdline", json_string(def->cmdline));
	for (unsigned i = 0; i < def->ndisks; i++)
		json_array_append_new(disks, disk_to_json(&def->disks[i]));
	for (unsigned i = 0; i < def->nnets; i++)
		json_array_append_new(nets, json_string(def->nets[i]));
	json_object_set_new(root, "disks", disks);
	json_object_set_new(root, "nets", nets);
	if (def->vsock_cid)
		json_object_set_new(root, "vsock_cid", json_integer(def->vsock_cid));
	return root;
}

/* A string field into out[len]: missing is "", too long or not a string is an error. */
static int get_string(json_t *obj, const char *key, char *out, size_t len, char *why,
		      size_t whylen)
{
	json_t *v = json_object_get(obj, key);

	out[0] = '\0';
	if (v == NULL)
		return 0;
	if (!json_is_string(v) || json_string_length(v) >= len ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(why, whylen, "\"%s\" must be a string of at most %zu bytes", key, len - 1);
		return -EINVAL;
	}
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *out, char *why,
		    size_t whylen)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max) {
		snprintf(why, whylen, "\"%s\" must be an integer from 0 to %llu", key,
			 (unsigned long long)max);
		return -EINVAL;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int only_keys(json_t *obj, const char *const *keys, const char *what, char *why,
		     size_t whylen)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		bool known = false;

		for (const char *const *k = keys; *k && !known; k++)
			known = strcmp(*k, key) == 0;
		if (!known) {
			snprintf(why, whylen, "unknown field \"%s\" in %s", key, what);
			return -EINVAL;
		}
	}
	return 0;
}

static int get_bool(json_t *obj, const char *key, bool *out, char *why, size_t whylen)
{
	json_t *v = json_object_get(obj, key);

	*out = false;
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v)) {
		snprintf(why, whylen, "\"%s\" must be true or false", key);
		return -EINVAL;
	}
	*out = json_is_true(v);
	return 0;
}

static int disk_from_json(json_t *obj, struct vm_def_disk *d, char *why, size_t whylen)
{
	static const char *const keys[] = {"path",  "format", "readonly", "serial",
					   "owned", "base",   NULL};

	if (!json_is_object(obj)) {
		snprintf(why, whylen, "every disk must be an object");
		return -EINVAL;
	}
	if (only_keys(obj, keys, "a disk", why, whylen) != 0 ||
	    get_string(obj, "path", d->path, sizeof(d->path), why, whylen) != 0 ||
	    get_string(obj, "format", d->format, sizeof(d->format), why, whylen) != 0 ||
	    get_string(obj, "serial", d->serial, sizeof(d->serial), why, whylen) != 0 ||
	    get_string(obj, "base", d->base, sizeof(d->base), why, whylen) != 0 ||
	    get_bool(obj, "readonly", &d->readonly, why, whylen) != 0 ||
	    get_bool(obj, "owned", &d->owned, why, whylen) != 0)
		return -EINVAL;
	if (d->format[0] == '\0')
		snprintf(d->format, sizeof(d->format), "raw");
	return 0;
}

static int disks_from_json(json_t *arr, struct vm_def *def, char *why, size_t whylen)
{
	size_t i;
	json_t *v;

	if (arr == NULL)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > DISK_MAX) {
		snprintf(why, whylen, "\"disks\" must be an array of at most %d disks", DISK_MAX);
		return -EINVAL;
	}
	json_array_foreach(arr, i, v) {
		if (disk_from_json(v, &def->disks[i], why, whylen) != 0)
			return -EINVAL;
		def->ndisks = (unsigned)i + 1;
	}
	return 0;
}

static int nets_from_json(json_t *arr, struct vm_def *def, char *why, size_t whylen)
{
	size_t i;
	json_t *v;

	if (arr == NULL)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > NET_MAX_NICS) {
		snprintf(why, whylen, "\"nets\" must be an array of at most %d strings",
			 NET_MAX_NICS);
		return -EINVAL;
	}
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) || json_string_length(v) >= VM_NET_SPEC_MAX) {
			snprintf(why, whylen, "\"nets\" must hold --net strings");
			return -EINVAL;
		}
		snprintf(def->nets[i], VM_NET_SPEC_MAX, "%s", json_string_value(v));
		def->nnets = (unsigned)i + 1;
	}
	return 0;
}

static int on_reboot_from_json(json_t *root, struct vm_def *def, char *why, size_t whylen)
{
	json_t *v = json_object_get(root, "on_reboot");

	def->restart_on_reboot = true;
	if (v == NULL)
		return 0;
	if (json_is_string(v) && strcmp(json_string_value(v), "restart") == 0)
		return 0;
	if (json_is_string(v) && strcmp(json_string_value(v), "exit") == 0) {
		def->restart_on_reboot = false;
		return 0;
	}
	snprintf(why, whylen, "\"on_reboot\" must be \"restart\" or \"exit\"");
	return -EINVAL;
}

static int vm_def_from_json(json_t *root, struct vm_def *def, char *why, size_t whylen)
{
	static const char *const keys[] = {"version", "name",	 "cpus",      "memory",
					   "kernel",  "initrd",	 "cmdline",   "disks",
					   "nets",    "vsock_cid", "on_reboot", "created",
					   NULL};
	uint64_t version, cpus, cid = 0, created = 0;

	memset(def, 0, sizeof(*def));
	if (!json_is_object(root)) {
		snprintf(why, whylen, "not a JSON object");
		return -EINVAL;
	}
	if (only_keys(root, keys, "the definition", why, whylen) != 0 ||
	    get_uint(root, "version", VM_DEF_VERSION, &version, why, whylen) != 0 ||
	    get_string(root, "name", def->name, sizeof(def->name), why, whylen) != 0 ||
	    get_uint(root, "cpus", VM_CPUS_MAX, &cpus, why, whylen) != 0 ||
	    get_uint(root, "memory", VM_MEMORY_MAX, &def->memory, why, whylen) != 0 ||
	    get_string(root, "kernel", def->kernel, sizeof(def->kernel), why, whylen) != 0 ||
	    get_string(root, "initrd", def->initrd, sizeof(def->initrd), why, whylen) != 0 ||
	    get_string(root, "cmdline", def->cmdline, sizeof(def->cmdline), why, whylen) != 0 ||
	    disks_from_json(json_object_get(root, "disks"), def, why, whylen) != 0 ||
	    nets_from_json(json_object_get(root, "nets"), def, why, whylen) != 0 ||
	    on_reboot_from_json(root, def, why, whylen) != 0)
		return -EINVAL;
	if (json_object_get(root, "vsock_cid") &&
	    get_uint(root, "vsock_cid", VM_CID_MAX, &cid, why, whylen) != 0)
		return -EINVAL;
	if (json_object_get(root, "created") &&
	    get_uint(root, "created", INT64_MAX, &created, why, whylen) != 0)
		return -EINVAL;
	def->cpus = (unsigned)cpus;
	def->vsock_cid = (uint32_t)cid;
	def->created = (int64_t)created;
	if (version != VM_DEF_VERSION) {
		snprintf(why, whylen, "\"version\" must be %d", VM_DEF_VERSION);
		return -EINVAL;
	}
	return vm_def_check(def, why, whylen);
}

int vm_def_load(const char *dir, struct vm_def *def)
{
	char path[PATH_MAX], why[300];
	json_error_t jerr;
	json_t *root;
	int ret;

	if (store_vm_file(dir, VM_DEF_FILE, path, sizeof(path)) != 0)
		return -ENAMETOOLONG;
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		if (access(path, F_OK) != 0) {
			log_error("%s: %s", path, strerror(errno));
			return -ENOENT;
		}
		log_error("%s is not valid JSON: line %d: %s (fix or remove it)", path, jerr.line,
			  jerr.text);
		return -EINVAL;
	}
	ret = vm_def_from_json(root, def, why, sizeof(why));
	json_decref(root);
	if (ret != 0)
		log_error("%s: %s (fix or remove it)", path, why);
	return ret;
}

/* --- atomic write --------------------------------------------------------- */

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		ret = -errno;
	close(fd);
	return ret;
}

static int write_all_fd(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes text to dir/leaf atomically (temporary file, fsync, rename, fsync dir). */
static int write_file_atomic(const char *dir, const char *leaf, const char *text)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16];
	int fd, ret;

	if (store_vm_file(dir, leaf, path, sizeof(path)) != 0)
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ret = write_all_fd(fd, text, strlen(text));
	if (ret == 0 && fsync(fd) != 0)
		ret = -errno;
	if (close(fd) != 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) != 0)
		ret = -errno;
	if (ret != 0) {
		unlink(tmp);
		return ret;
	}
	return fsync_dir(dir);
}

int store_write_json(const char *dir, const char *leaf, json_t *root)
{
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	int ret;

	if (text == NULL)
		return -ENOMEM;
	ret = write_file_atomic(dir, leaf, text);
	free(text);
	return ret;
}

int vm_def_save(const char *dir, const struct vm_def *def)
{
	json_t *root = vm_def_to_json(def);
	int ret;

	if (root == NULL)
		return -ENOMEM;
	ret = store_write_json(dir, VM_DEF_FILE, root);
	json_decref(root);
	if (ret != 0)
		log_error("cannot write %s/%s: %s", dir, VM_DEF_FILE, strerror(-ret));
	return ret;
}

/* --- listing -------------------------------------------------------------- */

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool listable(const char *name)
{
	char why[120];

	return store_check_name(name, why, sizeof(why)) == 0;
}

int store_list(const char *home, char ***names)
{
	char path[PATH_MAX];
	struct dirent *e;
	char **out = NULL;
	int count = 0;
	DIR *dir;

	*names = NULL;
	if (copy_path(path, sizeof(path), home, "/vms") != 0)
		return -ENAMETOOLONG;
	dir = opendir(path);
	if (dir == NULL)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(dir)) != NULL) {
		char **grown;

		if (!listable(e->d_name))
			continue;
		grown = realloc(out, sizeof(*out) * (size_t)(count + 1));
		if (grown == NULL || (grown[count] = strdup(e->d_name)) == NULL) {
			out = grown ? grown : out;
			store_free_list(out, count);
			closedir(dir);
			return -ENOMEM;
		}
		out = grown;
		count++;
	}
	closedir(dir);
	qsort(out, (size_t)count, sizeof(*out), compare_names);
	*names = out;
	return count;
}

void store_free_list(char **names, int count)
{
	for (int i = 0; i < count; i++)
		free(names[i]);
	free(names);
}
