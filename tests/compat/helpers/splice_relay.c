/* A TCP relay that moves bytes with blocking splice(2) through a pipe, one thread per direction: what Go's
 * io.Copy and haproxy's splicing do, without their event loops. Usage: splice_relay LISTEN_PORT UPSTREAM_PORT
 * (IPv4 loopback). One line per direction on stdout when it ends. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int upstream_port;

struct direction {
	const char *name;
	int from, to;
};

static void *pump(void *arg)
{
	struct direction *d = arg;
	int pipefd[2];
	long long moved = 0;
	const char *failed = NULL;
	int err = 0;
	if (pipe(pipefd) != 0) {
		perror("pipe");
		exit(1);
	}
	for (;;) {
		ssize_t in = splice(d->from, NULL, pipefd[1], NULL, 1 << 16, SPLICE_F_MOVE);
		if (in == 0)
			break;
		if (in < 0) {
			if (errno == EINTR)
				continue;
			failed = "splice from socket";
			err = errno;
			break;
		}
		while (in > 0) {
			ssize_t out = splice(pipefd[0], NULL, d->to, NULL, (size_t)in, SPLICE_F_MOVE);
			if (out < 0 && errno == EINTR)
				continue;
			if (out <= 0) {
				failed = "splice to socket";
				err = errno;
				break;
			}
			in -= out;
			moved += out;
		}
		if (failed)
			break;
	}
	shutdown(d->to, SHUT_WR);
	printf("conn %s bytes=%lld %s%s%s\n", d->name, moved, failed ? failed : "eof", failed ? ": " : "",
	       failed ? strerror(err) : "");
	fflush(stdout);
	close(pipefd[0]);
	close(pipefd[1]);
	return NULL;
}

static void *relay(void *arg)
{
	int down = (int)(long)arg;
	int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(upstream_port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(up, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		printf("connect upstream: %s\n", strerror(errno));
		fflush(stdout);
		close(down);
		close(up);
		return NULL;
	}
	struct direction to_up = {"up", down, up}, to_down = {"down", up, down};
	pthread_t t;
	pthread_create(&t, NULL, pump, &to_up);
	pump(&to_down);
	pthread_join(t, NULL);
	close(down);
	close(up);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: splice_relay LISTEN_PORT UPSTREAM_PORT\n");
		return 2;
	}
	upstream_port = atoi(argv[2]);
	int ln = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	setsockopt(ln, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(ln, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(ln, 64) != 0) {
		perror("listen");
		return 1;
	}
	for (;;) {
		int c = accept4(ln, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			perror("accept");
			return 1;
		}
		pthread_t t;
		pthread_create(&t, NULL, relay, (void *)(long)c);
		pthread_detach(t);
	}
}
