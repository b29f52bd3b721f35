/* tabique: one binary, the VMM and the manager. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static void main_usage(FILE *out)
{
	fprintf(out, "usage: tabique COMMAND [OPTIONS]\n\ncommands:\n");
	for (const struct command *c = commands; c->name != NULL; c++)
		fprintf(out, "  %-14s %s\n", c->name, c->summary);
	fprintf(out, "\n'tabique COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		main_usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		main_usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("tabique " TABIQUE_VERSION "\n");
		return 0;
	}
	for (const struct command *c = commands; c->name != NULL; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->main(argc - 1, argv + 1);
	fprintf(stderr, "tabique: unknown command '%s': run 'tabique --help' for the list\n",
		argv[1]);
	return EXIT_USAGE;
}
