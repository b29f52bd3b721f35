#include "cli/commands.h"

#include <stddef.h>

const struct command commands[] = {
	{"run", cmd_run, "boot a VM in the foreground with its serial console"},
	{"check", cmd_check, "tell whether this host can run guests at hardware speed"},
	{"prepare-guest", cmd_prepare_guest, "download and build the default guest"},
	{"disk", cmd_disk, "create, inspect, resize and convert disk images"},
	{"create", cmd_create, "define a VM in the store"},
	{"set", cmd_set, "change a stopped VM's CPUs, memory, disks, network"},
	{"start", cmd_start, "start a stored VM in the background"},
	{"console", cmd_console, "attach to a running VM's serial console"},
	{"stop", cmd_stop, "shut a VM down (ACPI power button, then hard)"},
	{"kill", cmd_kill, "stop a VM at once"},
	{"pause", cmd_pause, "pause a running VM"},
	{"resume", cmd_resume, "resume a paused VM"},
	{"list", cmd_list, "list the stored VMs and their state"},
	{"info", cmd_info, "show a VM's definition, state and devices"},
	{"clone", cmd_clone, "copy a stopped VM (--linked: disks as overlays)"},
	{"rm", cmd_rm, "remove a VM and its own disks"},
	{NULL, NULL, NULL},
};
