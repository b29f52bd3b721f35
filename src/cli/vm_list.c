/* tabique list and tabique info: what the store holds and how each VM is doing. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/vm_cli.h"
#include "manage/vm.h"
#include "util/log.h"

static int json_take(int opt, const char *arg, void *json)
{
	(void)opt;
	(void)arg;
	*(bool *)json = true;
	return 0;
}

static int parse_json_flag(int argc, char **argv, bool *json, const char *usage, bool want_name,
			   const char **name)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	int ret;

	*json = false;
	ret = vm_cli_parse(argc, argv, ":h", longopts, usage, json_take, json,
			   want_name ? name : NULL);
	if (ret == 0 && !want_name && optind < argc) {
		log_error("unexpected argument '%s': see 'tabique %s --help'", argv[optind], argv[0]);
		return -EINVAL;
	}
	return ret;
}

/* What list and info show of one VM, as JSON. */
static json_t *vm_summary(const struct managed_vm *vm)
{
	enum vm_state state = managed_vm_live_state(vm);
	bool active = state == VM_STATE_RUNNING || state == VM_STATE_PAUSED;
	json_t *o = json_pack("{s:s, s:s, s:i, s:I}", "name", vm->def.name, "state",
			      vm_state_name(state), "cpus", (int)vm->def.cpus, "memory",
			      (json_int_t)vm->def.memory);

	if (active) {
		json_object_set_new(o, "pid", json_integer(vm->rt.vmm_pid));
		json_object_set_new(o, "uptime_seconds",
				    json_integer((json_int_t)time(NULL) - vm->rt.started));
	} else {
		json_object_set_new(o, "pid", json_null());
		json_object_set_new(o, "uptime_seconds", json_null());
	}
	if (!active && vm->rt.reason[0])
		json_object_set_new(o, "reason", json_string(vm->rt.reason));
	return o;
}

static void format_uptime(json_t *seconds, char *out, size_t len)
{
	json_int_t s = json_integer_value(seconds);

	if (!json_is_integer(seconds))
		snprintf(out, len, "-");
	else if (s < 3600)
		snprintf(out, len, "%lldm%02llds", (long long)s / 60, (long long)s % 60);
	else if (s < 86400)
		snprintf(out, len, "%lldh%02lldm", (long long)s / 3600, (long long)s % 3600 / 60);
	else
		snprintf(out, len, "%lldd%02lldh", (long long)s / 86400, (long long)s % 86400 / 3600);
}

static void print_row(json_t *vm)
{
	char uptime[32], pid[16] = "-";
	json_t *p = json_object_get(vm, "pid");

	format_uptime(json_object_get(vm, "uptime_seconds"), uptime, sizeof(uptime));
	if (json_is_integer(p))
		snprintf(pid, sizeof(pid), "%lld", (long long)json_integer_value(p));
	const char *state = json_string_value(json_object_get(vm, "state"));
	const char *reason = json_string_value(json_object_get(vm, "reason"));

	printf("%-24s %-8s %4lld %7lldM %9s %8s", json_string_value(json_object_get(vm, "name")),
	       state, (long long)json_integer_value(json_object_get(vm, "cpus")),
	       (long long)(json_integer_value(json_object_get(vm, "memory")) >> 20), uptime, pid);
	/* A crash says why on its line: the one thing a user wants to know next. */
	if (strcmp(state, "crashed") == 0 && reason)
		printf("  %s", reason);
	putchar('\n');
}

/* Every VM's summary; a VM whose definition is damaged is listed as such. */
static json_t *list_all(const char *home)
{
	json_t *all = json_array();
	char **names;
	int n = store_list(home, &names);

	for (int i = 0; i < n; i++) {
		struct managed_vm vm;

		if (managed_vm_open(names[i], false, &vm) == 0)
			json_array_append_new(all, vm_summary(&vm));
		else
			json_array_append_new(all, json_pack("{s:s, s:s}", "name", names[i], "state",
							     "invalid"));
		managed_vm_close(&vm);
	}
	if (n > 0)
		store_free_list(names, n);
	return all;
}

int cmd_list(int argc, char **argv)
{
	char home[PATH_MAX];
	size_t i;
	json_t *all, *vm;
	bool json;
	int ret = parse_json_flag(argc, argv, &json,
				  "usage: tabique list [--json]\n\n"
				  "The VMs in the store: name, state, vCPUs, memory, uptime, VMM pid.\n",
				  false, NULL);

	if (ret != 0)
		return ret > 0 ? 0 : EXIT_USAGE;
	if (managed_home(home, sizeof(home)) != 0)
		return EXIT_ERROR;
	all = list_all(home);
	if (json) {
		json_dumpf(all, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else {
		printf("%-24s %-8s %4s %8s %9s %8s\n", "NAME", "STATE", "CPUS", "MEMORY", "UPTIME",
		       "PID");
		json_array_foreach(all, i, vm) {
			if (json_object_get(vm, "cpus"))
				print_row(vm);
			else
				printf("%-24s invalid  (see tabique info %s)\n",
				       json_string_value(json_object_get(vm, "name")),
				       json_string_value(json_object_get(vm, "name")));
		}
	}
	json_decref(all);
	return 0;
}

/* --- info ------------------------------------------------------------------- */

static json_t *vm_details(const struct managed_vm *vm)
{
	json_t *o = vm_summary(vm), *disks = json_array(), *nets = json_array(), *live = NULL;

	json_object_set_new(o, "folder", json_string(vm->dir));
	json_object_set_new(o, "kernel", json_string(vm->def.kernel[0] ? vm->def.kernel : "default"));
	for (unsigned i = 0; i < vm->def.ndisks; i++)
		json_array_append_new(disks, json_pack("{s:s, s:s, s:b}", "path",
						       vm->def.disks[i].path, "format",
						       vm->def.disks[i].format, "readonly",
						       vm->def.disks[i].readonly));
	for (unsigned i = 0; i < vm->def.nnets; i++)
		json_array_append_new(nets, json_string(vm->def.nets[i]));
	json_object_set_new(o, "disks", disks);
	json_object_set_new(o, "nets", nets);
	if (vm->def.vsock_cid)
		json_object_set_new(o, "vsock_cid", json_integer(vm->def.vsock_cid));
	if (managed_vm_active(vm) && managed_vm_api(vm, "GET", "/v1/vm", &live) == 200)
		json_object_set(o, "devices", json_object_get(live, "devices"));
	json_decref(live);
	return o;
}

static void print_details(json_t *o)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v) {
		char *text;

		if (json_is_null(v))
			continue;
		if (json_is_string(v)) {
			printf("%-15s %s\n", key, json_string_value(v));
			continue;
		}
		text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		printf("%-15s %s\n", key, text ? text : "?");
		free(text);
	}
}

int cmd_info(int argc, char **argv)
{
	struct managed_vm vm;
	const char *name;
	json_t *o;
	bool json;
	int ret = parse_json_flag(argc, argv, &json,
				  "usage: tabique info NAME [--json]\n\n"
				  "A VM's definition, state and devices.\n",
				  true, &name);

	if (ret != 0)
		return ret > 0 ? 0 : EXIT_USAGE;
	if (managed_vm_open(name, false, &vm) != 0) {
		managed_vm_close(&vm);
		return EXIT_ERROR;
	}
	o = vm_details(&vm);
	if (json) {
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else {
		print_details(o);
	}
	json_decref(o);
	managed_vm_close(&vm);
	return 0;
}
