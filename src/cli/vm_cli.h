/* What the manager's commands (create, start, list, ...) share. */
#ifndef TABIQUE_CLI_VM_CLI_H
#define TABIQUE_CLI_VM_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Reports a getopt error (':' missing value, '?' unknown); returns -EINVAL. */
int vm_cli_bad_option(char **argv, int opt, const char *cmd);

/* The one NAME operand after the options; -EINVAL after one line otherwise. */
int vm_cli_take_name(int argc, char **argv, const char **name, const char *cmd);

/* Makes home/vms/NAME (and its parents); a VM of that name already there is an error. */
int vm_cli_make_vm_dir(const char *home, const char *name, char *dir);

/* Removes a VM's folder and everything in it. Returns 0 or -errno. */
int vm_cli_remove_dir(const char *dir);

/*
 * Creates an empty image: format "qcow2" (with backing, of backing_format,
 * when backing is not NULL) or "raw" (sparse). Returns 0 or -errno after one line.
 */
int vm_cli_create_image(const char *path, uint64_t size, const char *format,
			const char *backing, const char *backing_format);

struct vm_def;

/* True if a disk of def is a linked clone's overlay over an image in folder dir. */
bool vm_cli_disks_use_folder(const struct vm_def *def, const char *dir);

struct option;

/*
 * A manager command's command line: getopt_long over shortopts/longopts
 * (which include "help", 'h': prints usage and returns 1); every other
 * option goes to take(opt, optarg, ctx), which returns 0 or -EINVAL after
 * one line. Then, when name is not NULL, the one NAME operand. Returns 0, 1
 * or -EINVAL.
 */
int vm_cli_parse(int argc, char **argv, const char *shortopts, const struct option *longopts,
		 const char *usage, int (*take)(int opt, const char *arg, void *ctx), void *ctx,
		 const char **name);

/* Parses the commands' common "--help"/NAME-only command line: returns 1 for help. */
int vm_cli_parse_name_only(int argc, char **argv, const char **name, const char *usage);

#endif
