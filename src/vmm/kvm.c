#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/log.h"

int kvm_open_quiet(void)
{
	int fd = open(KVM_DEVICE_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_EXPECTED_API) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

int kvm_open(void)
{
	int fd = kvm_open_quiet();

	switch (fd) {
	case -ENOENT:
	case -ENODEV:
	case -ENXIO:
		log_error("no %s: this host has no KVM; enable virtualization in the firmware and "
			  "load kvm_intel or kvm_amd (run 'tabique check')", KVM_DEVICE_PATH);
		break;
	case -EACCES:
	case -EPERM:
		log_error("permission denied on %s: add your user to the 'kvm' group or run as root",
			  KVM_DEVICE_PATH);
		break;
	case -EPROTO:
		log_error("%s speaks an unknown KVM API version (tabique needs %d)",
			  KVM_DEVICE_PATH, KVM_EXPECTED_API);
		break;
	default:
		if (fd < 0)
			log_error("cannot open %s: %s", KVM_DEVICE_PATH, strerror(-fd));
		break;
	}
	return fd;
}
