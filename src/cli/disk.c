/*
 * tabique disk: image files. create, info, resize, convert; each prints one
 * line and exits 1 when it cannot do its work, 2 on a bad command line, and
 * never leaves a half-written file behind.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "disk/image.h"
#include "disk/qcow2.h"
#include "util/log.h"
#include "util/size.h"

struct disk_args {
	const char *pos[3]; /* positional arguments */
	unsigned npos;
	enum disk_format format;
	const char *backing;
	const char *backing_format;
	unsigned cluster_bits;
	bool json, shrink, help;
};

static void disk_usage(FILE *out)
{
	fprintf(out,
		"usage: tabique disk create FILE [SIZE] [--format qcow2|raw] [--backing FILE]\n"
		"                          [--backing-format qcow2|raw] [--cluster-size SIZE]\n"
		"       tabique disk info FILE [--json]\n"
		"       tabique disk resize FILE SIZE [--shrink]\n"
		"       tabique disk convert SRC DST [--format qcow2|raw] [--cluster-size SIZE]\n"
		"\n"
		"Disk image files for --disk, raw or qcow2 (version 3; version 2 is read).\n"
		"\n"
		"  create    a new image of SIZE bytes (10G, 512M ...), qcow2 by default. With\n"
		"            --backing, a qcow2 image whose unwritten parts read FILE (qcow2 or\n"
		"            raw, named relative to the new image's folder; SIZE defaults to its\n"
		"            size). --cluster-size: 512 to 2M, a power of two (default 64K)\n"
		"  info      format, sizes, cluster size and backing file; --json for programs\n"
		"  resize    a new virtual size; shrinking needs --shrink and is refused if\n"
		"            anything is written past the new size\n"
		"  convert   copies the disk SRC shows (backing files included) into a new image\n"
		"            DST, qcow2 by default, skipping what is unallocated or zeroes\n"
		"\n"
		"A file that exists is never overwritten. The format of an image given to\n"
		"these commands is probed.\n"
		"\n"
		"exit status: 0 done, 1 error, 2 usage\n");
}

/* ---- the command line ---- */

static int disk_parse_size(const char *what, const char *text, uint64_t *bytes)
{
	if (size_parse(text, bytes) == 0)
		return 0;
	log_error("disk: %s '%s' is not a size (e.g. 10G, 512M, 4096)", what, text);
	return -EINVAL;
}

static int disk_parse_cluster(const char *text, unsigned *bits)
{
	uint64_t bytes;

	if (disk_parse_size("cluster size", text, &bytes) != 0)
		return -EINVAL;
	for (unsigned b = QCOW2_MIN_CLUSTER_BITS; b <= QCOW2_MAX_CLUSTER_BITS; b++)
		if (bytes == 1ull << b) {
			*bits = b;
			return 0;
		}
	log_error("disk: --cluster-size must be a power of two from 512 to 2M, not '%s'", text);
	return -EINVAL;
}

static int disk_parse_option(struct disk_args *a, int opt, const char *arg)
{
	switch (opt) {
	case 'f':
		if (disk_format_parse(arg, &a->format) == 0)
			return 0;
		log_error("disk: unknown format '%s' (use qcow2 or raw)", arg);
		return -EINVAL;
	case 'b':
		a->backing = arg;
		return 0;
	case 'B':
		a->backing_format = arg;
		return 0;
	case 'c':
		return disk_parse_cluster(arg, &a->cluster_bits);
	case 'j':
		a->json = true;
		return 0;
	case 's':
		a->shrink = true;
		return 0;
	default:
		a->help = true;
		return 0;
	}
}

static int disk_parse_args(int argc, char **argv, struct disk_args *a)
{
	static const struct option longopts[] = {
	    {"format", required_argument, NULL, 'f'},
	    {"backing", required_argument, NULL, 'b'},
	    {"backing-format", required_argument, NULL, 'B'},
	    {"cluster-size", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"shrink", no_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	memset(a, 0, sizeof(*a));
	opterr = 0;
	optind = 0; /* a fresh scan: argv[0] is the subcommand */
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (opt == '?' && optopt != 0) { /* a short one, perhaps inside "-1G" */
			log_error("disk %s: unknown option '-%c': see 'tabique disk --help'",
				  argv[0], optopt);
			return -EINVAL;
		}
		if (opt == ':' || opt == '?') {
			log_error("disk %s: %s '%s': see 'tabique disk --help'", argv[0],
				  opt == ':' ? "option needs a value" : "unknown option",
				  argv[optind - 1]);
			return -EINVAL;
		}
		if (disk_parse_option(a, opt, optarg) != 0)
			return -EINVAL;
	}
	for (; optind < argc; optind++) {
		if (a->npos == 3) {
			log_error("disk %s: unexpected argument '%s': see 'tabique disk --help'",
				  argv[0], argv[optind]);
			return -EINVAL;
		}
		a->pos[a->npos++] = argv[optind];
	}
	return 0;
}

/* Exactly min..max positional arguments, else a usage error. */
static int disk_want_args(const struct disk_args *a, const char *cmd, unsigned min, unsigned max,
			  const char *what)
{
	if (a->npos >= min && a->npos <= max)
		return 0;
	log_error("disk %s takes %s: see 'tabique disk --help'", cmd, what);
	return -EINVAL;
}

/* ---- create ---- */

static int disk_create(const struct disk_args *a)
{
	enum disk_format format = a->format != DISK_FORMAT_AUTO ? a->format : DISK_FORMAT_QCOW2;
	struct disk_image_info info;
	uint64_t size = 0;
	char human[32];
	int ret;

	if (disk_want_args(a, "create", a->backing ? 1 : 2, 2, "FILE and SIZE") != 0)
		return EXIT_USAGE;
	if (a->npos == 2 && disk_parse_size("size", a->pos[1], &size) != 0)
		return EXIT_USAGE;
	if (format == DISK_FORMAT_RAW && (a->backing || a->backing_format || a->cluster_bits)) {
		log_error("disk create: --backing, --backing-format and --cluster-size are for "
			  "qcow2 images");
		return EXIT_USAGE;
	}
	if (format == DISK_FORMAT_RAW)
		ret = disk_create_raw(a->pos[0], size);
	else
		ret = qcow2_create(a->pos[0], size, a->backing, a->backing_format, a->cluster_bits);
	if (ret != 0)
		return EXIT_ERROR;
	if (size == 0 && disk_image_info(a->pos[0], format, &info) == 0)
		size = info.virtual_size; /* the backing file's */
	disk_human_size(size, human, sizeof(human));
	printf("created %s (%s, %s)\n", a->pos[0], disk_format_name(format), human);
	return 0;
}

/* ---- info ---- */

static void disk_print_info(const char *path, const struct disk_image_info *i)
{
	char v[32], f[32], al[32];

	disk_human_size(i->virtual_size, v, sizeof(v));
	disk_human_size(i->file_size, f, sizeof(f));
	disk_human_size(i->allocated, al, sizeof(al));
	printf("image:          %s\n", path);
	printf("format:         %s", disk_format_name(i->format));
	if (i->format == DISK_FORMAT_QCOW2)
		printf(" (version %u)", i->version);
	printf("\nvirtual size:   %s (%llu bytes)\n", v, (unsigned long long)i->virtual_size);
	printf("file size:      %s\nallocated:      %s\n", f, al);
	if (i->format != DISK_FORMAT_QCOW2)
		return;
	printf("cluster size:   %u\nrefcount bits:  %u\n", i->cluster_size, i->refcount_bits);
	if (i->backing[0] != '\0')
		printf("backing file:   %s (%s)\n", i->backing,
		       i->backing_format == DISK_FORMAT_AUTO ? "format not recorded"
							     : disk_format_name(i->backing_format));
	if (i->dirty || i->corrupt)
		printf("flags:          %s%s\n", i->dirty ? "dirty " : "",
		       i->corrupt ? "corrupt" : "");
}

static json_t *disk_info_json(const char *path, const struct disk_image_info *i)
{
	json_t *o =
	    json_pack("{s:s, s:s, s:I, s:I, s:I}", "filename", path, "format",
		      disk_format_name(i->format), "virtual_size", (json_int_t)i->virtual_size,
		      "file_size", (json_int_t)i->file_size, "allocated", (json_int_t)i->allocated);

	if (o == NULL || i->format != DISK_FORMAT_QCOW2)
		return o;
	json_object_set_new(o, "cluster_size", json_integer(i->cluster_size));
	json_object_set_new(o, "version", json_integer(i->version));
	json_object_set_new(o, "refcount_bits", json_integer(i->refcount_bits));
	json_object_set_new(o, "dirty", json_boolean(i->dirty));
	json_object_set_new(o, "corrupt", json_boolean(i->corrupt));
	if (i->backing[0] != '\0')
		json_object_set_new(o, "backing_file", json_string(i->backing));
	if (i->backing[0] != '\0' && i->backing_format != DISK_FORMAT_AUTO)
		json_object_set_new(o, "backing_format",
				    json_string(disk_format_name(i->backing_format)));
	return o;
}

static int disk_info(const struct disk_args *a)
{
	struct disk_image_info info;
	json_t *o;

	if (disk_want_args(a, "info", 1, 1, "one FILE") != 0)
		return EXIT_USAGE;
	if (disk_image_info(a->pos[0], DISK_FORMAT_AUTO, &info) != 0)
		return EXIT_ERROR;
	if (!a->json) {
		disk_print_info(a->pos[0], &info);
		return 0;
	}
	/* Backing names are bytes: jansson refuses what is not UTF-8. */
	o = disk_info_json(a->pos[0], &info);
	if (o == NULL || json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
		log_error("disk %s: its name or backing file name is not UTF-8: no JSON for it",
			  a->pos[0]);
		json_decref(o);
		return EXIT_ERROR;
	}
	putchar('\n');
	json_decref(o);
	return 0;
}

/* ---- resize ---- */

static int disk_resize_cmd(const struct disk_args *a)
{
	uint64_t size;

	if (disk_want_args(a, "resize", 2, 2, "FILE and SIZE") != 0)
		return EXIT_USAGE;
	if (disk_parse_size("size", a->pos[1], &size) != 0)
		return EXIT_USAGE;
	return disk_resize(a->pos[0], DISK_FORMAT_AUTO, size, a->shrink) == 0 ? 0 : EXIT_ERROR;
}

/* ---- convert ---- */

static int disk_convert_cmd(const struct disk_args *a)
{
	struct disk_convert_options o = {
	    .dst_format = a->format != DISK_FORMAT_AUTO ? a->format : DISK_FORMAT_QCOW2,
	    .cluster_bits = a->cluster_bits,
	};
	struct disk_bar bar = {0};
	char w[32];
	int ret;

	if (disk_want_args(a, "convert", 2, 2, "SRC and DST") != 0)
		return EXIT_USAGE;
	if (o.dst_format == DISK_FORMAT_RAW && a->cluster_bits) {
		log_error("disk convert: --cluster-size is for qcow2 images");
		return EXIT_USAGE;
	}
	if (isatty(STDERR_FILENO)) {
		o.progress = disk_bar_progress;
		o.opaque = &bar;
	}
	ret = disk_convert(a->pos[0], a->pos[1], &o);
	disk_bar_end(&bar);
	if (ret != 0)
		return EXIT_ERROR;
	disk_human_size(o.written, w, sizeof(w));
	printf("converted %s to %s (%s): %s of data written\n", a->pos[0], a->pos[1],
	       disk_format_name(o.dst_format), w);
	return 0;
}

/* ---- dispatch ---- */

int cmd_disk(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(const struct disk_args *a);
	} subs[] = {
	    {"create", disk_create},
	    {"info", disk_info},
	    {"resize", disk_resize_cmd},
	    {"convert", disk_convert_cmd},
	};
	struct disk_args a;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		disk_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(argv[1], subs[i].name) != 0)
			continue;
		if (disk_parse_args(argc - 1, argv + 1, &a) != 0)
			return EXIT_USAGE;
		if (a.help) {
			disk_usage(stdout);
			return 0;
		}
		return subs[i].run(&a);
	}
	log_error("disk: unknown command '%s' (create, info, resize or convert)", argv[1]);
	return EXIT_USAGE;
}
