/* The subcommands of the tabique binary, one file each in src/cli/. */
#ifndef TABIQUE_CLI_COMMANDS_H
#define TABIQUE_CLI_COMMANDS_H

/* Exit codes shared by the commands (documented in README and docs/). */
enum tabique_exit {
	EXIT_GUEST_POWEROFF = 0, /* the guest powered off */
	EXIT_ERROR = 1,          /* tabique could not do what was asked */
	EXIT_USAGE = 2,          /* bad command line */
	EXIT_GUEST_REBOOT = 3,   /* the guest rebooted (without --on-reboot restart) */
	EXIT_GUEST_CRASH = 4,    /* kernel panic, triple fault */
	EXIT_STOPPED = 5,        /* stopped from the host: Ctrl-A x or a signal */
};

struct command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_prepare_guest(int argc, char **argv);
int cmd_disk(int argc, char **argv);
/* The manager (src/manage/): one file per group in src/cli/vm_*.c. */
int cmd_create(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_console(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_clone(int argc, char **argv);
int cmd_rm(int argc, char **argv);

/* The table main() dispatches through; ends with a zeroed entry. */
extern const struct command commands[];

#endif
