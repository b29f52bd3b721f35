#include "manage/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "api/client.h"
#include "util/log.h"

int managed_home(char *home, size_t len)
{
	int ret = store_home(home, len);

	if (ret == -ENOENT)
		log_error("no state directory: set TABIQUE_HOME or HOME");
	else if (ret != 0)
		log_error("the state directory path is too long");
	return ret;
}

int managed_lock_dir(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	if (store_vm_file(dir, "lock", path, sizeof(path)) != 0)
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int err = errno;

		close(fd);
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	return fd;
}

static int managed_vm_find(const char *name, struct managed_vm *vm)
{
	char why[160];

	if (store_check_name(name, why, sizeof(why)) != 0) {
		log_error("%s", why);
		return -EINVAL;
	}
	if (managed_home(vm->home, sizeof(vm->home)) != 0)
		return -ENAMETOOLONG;
	if (store_vm_dir(vm->home, name, vm->dir, sizeof(vm->dir)) != 0) {
		log_error("the state directory path is too long");
		return -ENAMETOOLONG;
	}
	if (access(vm->dir, F_OK) != 0) {
		log_error("no VM named '%s' (see tabique list)", name);
		return -ENOENT;
	}
	return 0;
}

int managed_vm_open(const char *name, bool lock, struct managed_vm *vm)
{
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->lock_fd = -1;
	if ((ret = managed_vm_find(name, vm)) != 0)
		return ret;
	if (lock) {
		vm->lock_fd = managed_lock_dir(vm->dir);
		if (vm->lock_fd < 0) {
			ret = vm->lock_fd;
			if (ret == -EBUSY)
				log_error("another tabique command is working on '%s': try again",
					  name);
			else
				log_error("cannot lock '%s': %s", name, strerror(-ret));
			return ret;
		}
	}
	if ((ret = vm_def_load(vm->dir, &vm->def)) != 0)
		return ret;
	return vm_runtime_probe(vm->dir, &vm->rt);
}

void managed_vm_close(struct managed_vm *vm)
{
	if (vm->lock_fd >= 0)
		close(vm->lock_fd);
	vm->lock_fd = -1;
}

void managed_vm_file(const struct managed_vm *vm, const char *leaf, char *out)
{
	if (store_vm_file(vm->dir, leaf, out, PATH_MAX) != 0)
		out[0] = '\0';
}

bool managed_vm_active(const struct managed_vm *vm)
{
	return vm->rt.state == VM_STATE_RUNNING || vm->rt.state == VM_STATE_PAUSED;
}

int managed_vm_api(const struct managed_vm *vm, const char *method, const char *path,
		   json_t **reply)
{
	char sock[PATH_MAX], err[256];
	long status = 0;
	int ret;

	managed_vm_file(vm, VM_API_SOCKET, sock);
	ret = api_request(sock, method, path, NULL, &status, reply, err, sizeof(err));
	if (ret != 0) {
		log_error("%s: %s", vm->def.name, err);
		return ret;
	}
	return (int)status;
}

enum vm_state managed_vm_live_state(const struct managed_vm *vm)
{
	char sock[PATH_MAX], err[256];
	json_t *reply = NULL;
	long status = 0;
	enum vm_state state = vm->rt.state;

	if (!managed_vm_active(vm))
		return state;
	managed_vm_file(vm, VM_API_SOCKET, sock);
	if (api_request(sock, "GET", "/v1/vm", NULL, &status, &reply, err, sizeof(err)) == 0 &&
	    status == 200) {
		const char *s = json_string_value(json_object_get(reply, "state"));

		if (s != NULL && strcmp(s, "paused") == 0)
			state = VM_STATE_PAUSED;
	}
	json_decref(reply);
	return state;
}
