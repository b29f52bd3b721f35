#include "net/backend.h"

#include <errno.h>

#include "net/spec.h"
#include "net/tap.h"
#include "net/user.h"

int net_backend_open(const struct net_spec *spec, struct net_backend **out)
{
	*out = NULL;
	switch (spec->kind) {
	case NET_USER:
		return netuser_open(spec, out);
	case NET_TAP:
		return tap_open(spec, out);
	}
	return -EINVAL;
}

void net_backend_close(struct net_backend *be)
{
	if (be != NULL)
		be->ops->destroy(be);
}
