#include "guest/kmods.h"

#include "guest/modinfo.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KMODS_NAME_MAX 64 /* the kernel's MODULE_NAME_LEN */
#define KMODS_DEPS_MAX 4096

enum kmod_state { KMOD_NEW, KMOD_VISITING, KMOD_DONE };

struct kmod {
	char *path; /* as listed in modules.order / modules.builtin */
	char name[KMODS_NAME_MAX];
	int builtin;
	enum kmod_state state;
};

struct kmods_ctx {
	const char *moddir;
	struct kmod *mods;
	size_t n, cap;
	struct kmod_list *out;
	size_t outcap;
};

/* Module names treat '-' and '_' alike; the kernel reports them with '_'. */
static void kmods_normalize(char *name)
{
	for (; *name; name++)
		if (*name == '-')
			*name = '_';
}

/* "kernel/fs/fuse/cuse.ko" -> "cuse". Returns -EINVAL for a line that is not a module. */
static int kmods_name_of(const char *path, char *name, size_t len)
{
	const char *base = strrchr(path, '/');
	const char *dot;

	base = base ? base + 1 : path;
	dot = strstr(base, ".ko");
	if (!dot || dot == base || (size_t)(dot - base) >= len)
		return -EINVAL;
	memcpy(name, base, (size_t)(dot - base));
	name[dot - base] = '\0';
	kmods_normalize(name);
	return 0;
}

static int kmods_add(struct kmods_ctx *ctx, const char *path, int builtin)
{
	struct kmod *m;

	if (ctx->n == ctx->cap) {
		size_t cap = ctx->cap ? ctx->cap * 2 : 1024;
		struct kmod *mods = realloc(ctx->mods, cap * sizeof(*mods));

		if (!mods)
			return -ENOMEM;
		ctx->mods = mods;
		ctx->cap = cap;
	}
	m = &ctx->mods[ctx->n];
	memset(m, 0, sizeof(*m));
	if (kmods_name_of(path, m->name, sizeof(m->name)) < 0)
		return 0; /* tolerate odd lines: they just never match */
	m->path = strdup(path);
	if (!m->path)
		return -ENOMEM;
	m->builtin = builtin;
	ctx->n++;
	return 0;
}

static int kmods_load_list(struct kmods_ctx *ctx, const char *file, int builtin)
{
	char path[PATH_MAX];
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/%s", ctx->moddir, file);
	f = fopen(path, "re");
	if (!f) {
		err = -errno;
		log_error("cannot read %s: %s; the kernel package looks incomplete, run "
			  "'tabique prepare-guest --force'",
			  path, strerror(errno));
		return err;
	}
	while (!err && (len = getline(&line, &cap, f)) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0])
			err = kmods_add(ctx, line, builtin);
	}
	free(line);
	fclose(f);
	return err;
}

static struct kmod *kmods_find(struct kmods_ctx *ctx, const char *name)
{
	for (size_t i = 0; i < ctx->n; i++)
		if (strcmp(ctx->mods[i].name, name) == 0)
			return &ctx->mods[i];
	return NULL;
}

static int kmods_emit(struct kmods_ctx *ctx, const char *path)
{
	if (ctx->out->n == ctx->outcap) {
		size_t cap = ctx->outcap ? ctx->outcap * 2 : 32;
		char **paths = realloc(ctx->out->paths, cap * sizeof(*paths));

		if (!paths)
			return -ENOMEM;
		ctx->out->paths = paths;
		ctx->outcap = cap;
	}
	ctx->out->paths[ctx->out->n] = strdup(path);
	if (!ctx->out->paths[ctx->out->n])
		return -ENOMEM;
	ctx->out->n++;
	return 0;
}

static int kmods_visit(struct kmods_ctx *ctx, struct kmod *m);

/* Visits each name of a "depends=" list. */
static int kmods_visit_deps(struct kmods_ctx *ctx, struct kmod *m, char *deps)
{
	char *save = NULL;

	for (char *dep = strtok_r(deps, ",", &save); dep; dep = strtok_r(NULL, ",", &save)) {
		struct kmod *d;
		int err;

		kmods_normalize(dep);
		d = kmods_find(ctx, dep);
		if (!d) {
			log_error("module %s needs %s, which its kernel package lacks; the package "
				  "looks broken, try 'tabique prepare-guest --force'",
				  m->name, dep);
			return -ENOENT;
		}
		err = kmods_visit(ctx, d);
		if (err)
			return err;
	}
	return 0;
}

/* Depth-first: dependencies are emitted before their users. */
static int kmods_visit(struct kmods_ctx *ctx, struct kmod *m)
{
	char path[PATH_MAX], deps[KMODS_DEPS_MAX];
	int err;

	if (m->builtin || m->state == KMOD_DONE)
		return 0;
	if (m->state == KMOD_VISITING) {
		log_error("module %s depends on itself through its dependencies; the kernel "
			  "package looks broken",
			  m->name);
		return -ELOOP;
	}
	m->state = KMOD_VISITING;
	snprintf(path, sizeof(path), "%s/%s", ctx->moddir, m->path);
	err = modinfo_depends_file(path, deps, sizeof(deps));
	if (err) {
		log_error("cannot read the dependencies of module %s: %s; try 'tabique "
			  "prepare-guest --force'",
			  path, strerror(-err));
		return err;
	}
	err = kmods_visit_deps(ctx, m, deps);
	if (!err)
		err = kmods_emit(ctx, m->path);
	m->state = KMOD_DONE;
	return err;
}

/* An entry ending in '/' selects a directory under kernel/. */
static int kmods_want_dir(struct kmods_ctx *ctx, const char *dir)
{
	char prefix[PATH_MAX];
	size_t len;
	int found = 0, err;

	len = (size_t)snprintf(prefix, sizeof(prefix), "kernel/%s", dir);
	for (size_t i = 0; i < ctx->n; i++) {
		if (ctx->mods[i].builtin || strncmp(ctx->mods[i].path, prefix, len) != 0)
			continue;
		found = 1;
		err = kmods_visit(ctx, &ctx->mods[i]);
		if (err)
			return err;
	}
	if (!found)
		log_warn("the kernel package has no modules under %s; skipping them", prefix);
	return 0;
}

static int kmods_want(struct kmods_ctx *ctx, const char *want)
{
	char name[KMODS_NAME_MAX];
	struct kmod *m;

	if (want[0] && want[strlen(want) - 1] == '/')
		return kmods_want_dir(ctx, want);
	snprintf(name, sizeof(name), "%s", want);
	kmods_normalize(name);
	m = kmods_find(ctx, name);
	if (!m) {
		log_warn("the kernel package has no module %s; the guest goes without it", name);
		return 0;
	}
	return kmods_visit(ctx, m);
}

void kmods_free(struct kmod_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
	l->paths = NULL;
	l->n = 0;
}

int kmods_resolve(const char *moddir, const char *const *wanted, size_t nwanted,
		  struct kmod_list *out)
{
	struct kmods_ctx ctx = {.moddir = moddir, .out = out};
	int err;

	out->n = 0;
	out->paths = NULL;
	/* Modules first, so that a name both built in and modular resolves to the module. */
	err = kmods_load_list(&ctx, "modules.order", 0);
	if (!err)
		err = kmods_load_list(&ctx, "modules.builtin", 1);
	for (size_t i = 0; !err && i < nwanted; i++)
		err = kmods_want(&ctx, wanted[i]);
	for (size_t i = 0; i < ctx.n; i++)
		free(ctx.mods[i].path);
	free(ctx.mods);
	if (err)
		kmods_free(out);
	return err;
}
