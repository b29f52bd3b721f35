/*
 * A tiny TCP throughput tool for bench/net.py, run in the guest (static, so
 * it needs nothing from the default guest's busybox initramfs):
 *
 *   netperf send HOST PORT BYTES   writes BYTES, half-closes, waits for the
 *                                  peer to close: every byte was received
 *   netperf recv HOST PORT         reads until the peer closes
 *
 * Prints "RESULT bytes=N seconds=S mibps=R" (S from connect to the end).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 << 10)

static char buf[CHUNK];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_to(const char *host, const char *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("netperf: connect");
		exit(1);
	}
	return fd;
}

static long long drain(int fd)
{
	long long total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	if (n < 0) {
		perror("netperf: read");
		exit(1);
	}
	return total;
}

static long long send_all(int fd, long long bytes)
{
	long long left = bytes;

	while (left > 0) {
		ssize_t n = write(fd, buf, left < CHUNK ? (size_t)left : CHUNK);

		if (n <= 0) {
			perror("netperf: write");
			exit(1);
		}
		left -= n;
	}
	shutdown(fd, SHUT_WR);
	drain(fd);
	return bytes;
}

int main(int argc, char **argv)
{
	long long bytes;
	double t0, dt;
	int fd;

	if (argc < 4 || (strcmp(argv[1], "send") == 0 && argc != 5) ||
	    (strcmp(argv[1], "send") != 0 && strcmp(argv[1], "recv") != 0)) {
		fprintf(stderr, "usage: netperf send HOST PORT BYTES | recv HOST PORT\n");
		return 2;
	}
	t0 = now();
	fd = connect_to(argv[2], argv[3]);
	bytes = strcmp(argv[1], "send") == 0 ? send_all(fd, atoll(argv[4])) : drain(fd);
	dt = now() - t0;
	printf("RESULT bytes=%lld seconds=%.3f mibps=%.2f\n", bytes, dt, bytes / dt / (1 << 20));
	close(fd);
	return 0;
}
