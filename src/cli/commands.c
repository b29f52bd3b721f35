#include "cli/commands.h"

#include <stddef.h>

const struct command commands[] = {
	{"run", cmd_run, "boot a VM in the foreground with its serial console"},
	{"check", cmd_check, "tell whether this host can run guests at hardware speed"},
	{"prepare-guest", cmd_prepare_guest, "download and build the default guest"},
	{NULL, NULL, NULL},
};
