/*
 * The VM store: one folder per VM under the state directory, holding the
 * VM's definition (vm.json, documented in docs/vm-definition.md) and, while
 * it runs, its sockets, console log and runtime state.
 *
 *   $TABIQUE_HOME, else /var/lib/tabique (root), else $XDG_DATA_HOME/tabique
 *   └── vms/NAME/vm.json   the definition, written atomically
 *                state.json what the VM's monitor last recorded (state.h)
 *                api.sock   the VMM's control API (docs/api.md)
 *                console.sock, console.log, vmm.log
 *
 * Definitions are untrusted input (they can be edited by hand): loading one
 * checks every field and says what is wrong in one line.
 */
#ifndef TABIQUE_MANAGE_STORE_H
#define TABIQUE_MANAGE_STORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "disk/disk.h"
#include "net/spec.h"

#define VM_NAME_MAX	 48
#define VM_DEF_VERSION	 1
#define VM_CMDLINE_MAX	 2048
#define VM_NET_SPEC_MAX	 1024
#define VM_MEMORY_MIN	 (16ull << 20)
#define VM_MEMORY_MAX	 (1ull << 40)
#define VM_CPUS_MAX	 255
#define VM_CID_MIN	 3
#define VM_CID_MAX	 0xfffffffeu

struct vm_def_disk {
	char path[PATH_MAX]; /* absolute */
	char format[8];	     /* "raw" or "qcow2" */
	bool readonly;
	char serial[DISK_SERIAL_MAX + 1];
	bool owned; /* created for this VM in its folder: removed with it */
	char base[PATH_MAX]; /* a linked clone's overlay: the image it is over; "" otherwise */
};

struct vm_def {
	char name[VM_NAME_MAX + 1];
	unsigned cpus;
	uint64_t memory;
	/* Empty strings: the default guest (tabique prepare-guest). */
	char kernel[PATH_MAX];
	char initrd[PATH_MAX];
	char cmdline[VM_CMDLINE_MAX];
	struct vm_def_disk disks[DISK_MAX];
	unsigned ndisks;
	char nets[NET_MAX_NICS][VM_NET_SPEC_MAX]; /* --net specs, mac= always present */
	unsigned nnets;
	uint32_t vsock_cid; /* 0: no vsock device */
	bool restart_on_reboot;
	int64_t created; /* seconds since the epoch */
};

/* The state directory (see above) into out; -ENAMETOOLONG or -ENOENT (no HOME). */
int store_home(char *out, size_t len);

/*
 * A VM name: 1..VM_NAME_MAX of [A-Za-z0-9._-], starting with a letter or a
 * digit (so never "." or ".." and never a path). Returns 0 or -EINVAL with
 * why in why[whylen].
 */
int store_check_name(const char *name, char *why, size_t whylen);

/* home/vms/NAME into out; -ENAMETOOLONG. */
int store_vm_dir(const char *home, const char *name, char *out, size_t len);

/* A file of the VM's folder into out: dir/leaf; -ENAMETOOLONG. */
int store_vm_file(const char *dir, const char *leaf, char *out, size_t len);

/* A definition with the defaults: 1 vCPU, 512 MiB, the default guest, reboots restart. */
void vm_def_init(struct vm_def *def, const char *name);

/*
 * Loads dir/vm.json into def. Returns 0, or a negative errno after one line
 * that names the file and what is wrong with it.
 */
int vm_def_load(const char *dir, struct vm_def *def);

/*
 * Writes def to dir/vm.json atomically: a temporary file, fsync, rename,
 * fsync of the folder. Returns 0 or -errno after one line.
 */
int vm_def_save(const char *dir, const struct vm_def *def);

/*
 * Checks a definition as a whole (ranges, name, paths). Returns 0 or -EINVAL
 * with why in why[whylen].
 */
int vm_def_check(const struct vm_def *def, char *why, size_t whylen);

/* Writes root to dir/leaf atomically, like vm_def_save(). Returns 0 or -errno. */
int store_write_json(const char *dir, const char *leaf, json_t *root);

/*
 * The VM names in the store, sorted, into a malloc'ed array of malloc'ed
 * strings. Returns the count (0 with *names NULL when the store is empty) or
 * -errno.
 */
int store_list(const char *home, char ***names);
void store_free_list(char **names, int count);

#endif
