/* tabique prepare-guest: build the default guest into the cache ahead of time. */
#include "cli/commands.h"
#include "guest/default_guest.h"

int cmd_prepare_guest(int argc, char **argv)
{
	return default_guest_main(argc, argv);
}
