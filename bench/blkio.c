/*
 * A tiny fio for bench/blk.py: runs inside the default guest (no fio there)
 * and on the nested host, built static.
 *
 *   blkio rand|seq PATH SECONDS JOBS BLOCKSIZE
 *
 * JOBS processes read PATH with O_DIRECT (buffered where the file system
 * refuses O_DIRECT, e.g. tmpfs before Linux 6.6) for SECONDS: "rand" reads
 * BLOCKSIZE blocks at random aligned offsets, "seq" reads its own slice of
 * the file front to back, wrapping. Each job keeps one read in flight, so
 * JOBS is the queue depth. Prints one line:
 *   RESULT mode=rand jobs=16 bs=4096 direct=1 seconds=5.00 ops=N iops=N mibps=N
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int open_file(const char *path, int *direct)
{
	int fd = open(path, O_RDONLY | O_DIRECT);

	*direct = 1;
	if (fd < 0 && errno == EINVAL) {
		fd = open(path, O_RDONLY);
		*direct = 0;
	}
	if (fd < 0) {
		fprintf(stderr, "blkio: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

/* One job: reads until the deadline; returns the number of reads. */
static uint64_t job(const char *path, int rand_mode, double seconds, unsigned id, unsigned jobs,
		    size_t bs)
{
	int direct, fd = open_file(path, &direct);
	uint64_t blocks = (uint64_t)lseek(fd, 0, SEEK_END) / bs, ops = 0;
	uint64_t first = blocks * id / jobs, span = blocks / jobs, pos = 0;
	uint64_t x = 0x9e3779b97f4a7c15ULL * (id + 1);
	double end = now() + seconds;
	void *buf;

	if (blocks == 0 || span == 0 || posix_memalign(&buf, 4096, bs) != 0)
		exit(1);
	for (;;) {
		uint64_t block;

		if ((ops & 31) == 0 && now() >= end)
			break;
		if (rand_mode) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			block = x % blocks;
		} else {
			block = first + pos++ % span;
		}
		if (pread(fd, buf, bs, (off_t)(block * bs)) != (ssize_t)bs) {
			fprintf(stderr, "blkio: read at %llu: %s\n",
				(unsigned long long)(block * bs), strerror(errno));
			exit(1);
		}
		ops++;
	}
	return ops;
}

int main(int argc, char **argv)
{
	unsigned jobs;
	size_t bs;
	double seconds, begin, took;
	uint64_t total = 0;
	int pipefd[2], rand_mode, direct;

	if (argc != 6 || (strcmp(argv[1], "rand") != 0 && strcmp(argv[1], "seq") != 0)) {
		fprintf(stderr, "usage: blkio rand|seq PATH SECONDS JOBS BLOCKSIZE\n");
		return 2;
	}
	rand_mode = strcmp(argv[1], "rand") == 0;
	seconds = atof(argv[3]);
	jobs = (unsigned)atoi(argv[4]);
	bs = (size_t)atol(argv[5]);
	if (jobs == 0 || jobs > 256 || bs < 512 || bs % 512 != 0 || seconds <= 0)
		return 2;
	close(open_file(argv[2], &direct));
	if (pipe(pipefd) != 0)
		return 1;
	begin = now();
	for (unsigned i = 0; i < jobs; i++) {
		if (fork() == 0) {
			uint64_t ops = job(argv[2], rand_mode, seconds, i, jobs, bs);

			if (write(pipefd[1], &ops, sizeof(ops)) != sizeof(ops))
				_exit(1);
			_exit(0);
		}
	}
	close(pipefd[1]);
	for (uint64_t ops; read(pipefd[0], &ops, sizeof(ops)) == sizeof(ops);)
		total += ops;
	while (wait(NULL) > 0)
		;
	took = now() - begin;
	printf("RESULT mode=%s jobs=%u bs=%zu direct=%d seconds=%.2f ops=%llu iops=%.0f "
	       "mibps=%.1f\n",
	       argv[1], jobs, bs, direct, took, (unsigned long long)total, (double)total / took,
	       (double)total * (double)bs / took / (1 << 20));
	return 0;
}
