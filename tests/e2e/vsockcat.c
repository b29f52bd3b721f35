/*
 * vsockcat: the guest's end of the vsock end-to-end tests (busybox has no
 * vsock client or server). Built static on the host and put into the guest
 * by an extra initramfs appended to the default guest's.
 *
 *   vsockcat listen PORT        accept one stream, print what arrives and
 *                               echo it back, until the peer closes
 *   vsockcat connect CID PORT   send stdin, then print the replies until
 *                               the peer closes
 *
 * Progress goes to stderr ("vsockcat: ..."), data to stdout. Every run ends
 * within VSOCKCAT_TIMEOUT seconds (SIGALRM), so a test never hangs a shell.
 */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define VSOCKCAT_TIMEOUT 180

static int fail(const char *what)
{
	fprintf(stderr, "vsockcat: %s: %s\n", what, strerror(errno));
	return 1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static unsigned parse_u32(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v > 0xffffffffUL) {
		fprintf(stderr, "vsockcat: '%s' is not a number\n", s);
		exit(2);
	}
	return (unsigned)v;
}

static int do_listen(unsigned port)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
	struct sockaddr_vm peer;
	socklen_t plen = sizeof(peer);
	char buf[4096];
	ssize_t n;
	int s = socket(AF_VSOCK, SOCK_STREAM, 0), c;

	if (s < 0)
		return fail("socket");
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(s, 1) != 0)
		return fail("bind/listen");
	fprintf(stderr, "vsockcat: listening on port %u\n", port);
	c = accept(s, (struct sockaddr *)&peer, &plen);
	if (c < 0)
		return fail("accept");
	fprintf(stderr, "vsockcat: accepted cid %u port %u\n", peer.svm_cid, peer.svm_port);
	while ((n = read(c, buf, sizeof(buf))) > 0) {
		if (write_all(STDOUT_FILENO, buf, (size_t)n) != 0 ||
		    write_all(c, buf, (size_t)n) != 0)
			return fail("write");
	}
	if (n < 0)
		return fail("read");
	fprintf(stderr, "vsockcat: peer closed\n");
	close(c);
	close(s);
	return 0;
}

static int do_connect(unsigned cid, unsigned port)
{
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
	char buf[4096];
	ssize_t n;
	int s = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (s < 0)
		return fail("socket");
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return fail("connect");
	fprintf(stderr, "vsockcat: connected to cid %u port %u\n", cid, port);
	while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0)
		if (write_all(s, buf, (size_t)n) != 0)
			return fail("send");
	shutdown(s, SHUT_WR);
	while ((n = read(s, buf, sizeof(buf))) > 0)
		if (write_all(STDOUT_FILENO, buf, (size_t)n) != 0)
			return fail("write");
	if (n < 0)
		return fail("receive");
	fprintf(stderr, "vsockcat: peer closed\n");
	close(s);
	return 0;
}

static void timed_out(int sig)
{
	static const char msg[] = "vsockcat: timed out\n";

	(void)sig;
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(3);
}

int main(int argc, char **argv)
{
	signal(SIGALRM, timed_out);
	alarm(VSOCKCAT_TIMEOUT);
	if (argc == 3 && strcmp(argv[1], "listen") == 0)
		return do_listen(parse_u32(argv[2]));
	if (argc == 4 && strcmp(argv[1], "connect") == 0)
		return do_connect(parse_u32(argv[2]), parse_u32(argv[3]));
	fprintf(stderr, "usage: vsockcat listen PORT | vsockcat connect CID PORT\n");
	return 2;
}
