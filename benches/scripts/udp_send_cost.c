/* Kernel cost of one 172-byte UDP send on loopback, by the ways the media relay could send.
 *
 *   benches/scripts/udp_send_cost.sh      (needs gcc and liburing-dev)
 *
 * 2000 sender sockets each send one datagram per round to their own receiver socket (as the
 * relay does: every packet leaves by another socket); receivers are drained between rounds
 * and their cost is outside the timed part, except what the kernel does for them inside the
 * send (on loopback the sender runs the receive path). Timed by getrusage, per packet:
 *   sendto        unconnected socket, as before the media twins
 *   send          connected socket (the twins: no route lookup per packet)
 *   ... in epoll  the sender also registered for EPOLLIN, as a relay socket is: the send then
 *                 also wakes the socket's own wait queue (sock_wfree -> write space)
 *   io_uring      IORING_OP_SENDMSG, BATCH per io_uring_enter (would batch across sockets)
 *   raw           one SOCK_RAW/IPPROTO_RAW socket (needs CAP_NET_RAW) sending the IP and UDP
 *                 headers we write, source port the sender's: sendto each, or sendmmsg of
 *                 BATCH (the relay's send path with media.raw_socket); in no epoll set
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define N 2000
#define ROUNDS 300
#define BATCH 64

static int src[N], csrc[N], dst[N];
static struct sockaddr_in daddr[N], saddr[N];
static char buf[172], rbuf[2048];
static unsigned char frames[BATCH][28 + sizeof buf];

/* IPv4 + UDP headers (UDP checksum 0: RFC 768 "none"; the kernel fills ID and IP checksum). */
static int frame(unsigned char *p, int i) {
    memset(p, 0, 28);
    p[0] = 0x45, p[8] = 64, p[9] = 17;
    unsigned short total = htons(28 + sizeof buf), ulen = htons(8 + sizeof buf);
    memcpy(p + 2, &total, 2);
    memcpy(p + 12, &saddr[i].sin_addr, 4);
    memcpy(p + 16, &daddr[i].sin_addr, 4);
    memcpy(p + 20, &saddr[i].sin_port, 2);
    memcpy(p + 22, &daddr[i].sin_port, 2);
    memcpy(p + 24, &ulen, 2);
    memcpy(p + 28, buf, sizeof buf);
    return 28 + sizeof buf;
}

static double cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static void drain(void) {
    for (int i = 0; i < N; i++)
        while (recv(dst[i], rbuf, sizeof rbuf, MSG_DONTWAIT) > 0) {
        }
}

static int udp_socket(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    if (s < 0 || bind(s, (void *)&a, sizeof a) < 0) {
        perror("socket");
        exit(1);
    }
    return s;
}

static void run(const char *name, int epoll_senders) {
    int ep = epoll_create1(0);
    for (int i = 0; i < N; i++) {
        src[i] = udp_socket();
        csrc[i] = udp_socket();
        dst[i] = udp_socket();
        socklen_t l = sizeof daddr[i];
        getsockname(dst[i], (void *)&daddr[i], &l);
        l = sizeof saddr[i];
        getsockname(src[i], (void *)&saddr[i], &l);
        connect(csrc[i], (void *)&daddr[i], sizeof daddr[i]);
        if (epoll_senders) {
            struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
            epoll_ctl(ep, EPOLL_CTL_ADD, src[i], &e);
            epoll_ctl(ep, EPOLL_CTL_ADD, csrc[i], &e);
        }
    }
    struct io_uring ring;
    if (io_uring_queue_init(256, &ring, 0) < 0) {
        fprintf(stderr, "io_uring_queue_init failed\n");
        exit(1);
    }
    static struct msghdr msgs[BATCH];
    static struct mmsghdr mmsgs[BATCH];
    static struct iovec iov[BATCH];
    int raw = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (raw < 0) {
        perror("raw socket (needs CAP_NET_RAW)");
        exit(1);
    }
    double t_sendto = 0, t_send = 0, t_uring = 0, t_raw = 0, t_rawm = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double c0 = cpu();
        for (int i = 0; i < N; i++) sendto(src[i], buf, sizeof buf, 0, (void *)&daddr[i], sizeof daddr[i]);
        t_sendto += cpu() - c0;
        drain();
        c0 = cpu();
        for (int i = 0; i < N; i++) send(csrc[i], buf, sizeof buf, 0);
        t_send += cpu() - c0;
        drain();
        c0 = cpu();
        for (int i = 0; i < N; i += BATCH) {
            int m = N - i < BATCH ? N - i : BATCH;
            for (int k = 0; k < m; k++) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                iov[k] = (struct iovec){.iov_base = buf, .iov_len = sizeof buf};
                msgs[k] = (struct msghdr){.msg_name = &daddr[i + k], .msg_namelen = sizeof daddr[0], .msg_iov = &iov[k], .msg_iovlen = 1};
                io_uring_prep_sendmsg(sqe, src[i + k], &msgs[k], 0);
            }
            io_uring_submit_and_wait(&ring, m);
            struct io_uring_cqe *cqe;
            unsigned head, seen = 0;
            io_uring_for_each_cqe(&ring, head, cqe) seen++;
            io_uring_cq_advance(&ring, seen);
        }
        t_uring += cpu() - c0;
        drain();
        c0 = cpu();
        for (int i = 0; i < N; i++) {
            int n = frame(frames[0], i);
            sendto(raw, frames[0], n, 0, (void *)&daddr[i], sizeof daddr[i]);
        }
        t_raw += cpu() - c0;
        drain();
        c0 = cpu();
        for (int i = 0; i < N; i += BATCH) {
            int m = N - i < BATCH ? N - i : BATCH;
            for (int k = 0; k < m; k++) {
                iov[k] = (struct iovec){.iov_base = frames[k], .iov_len = frame(frames[k], i + k)};
                mmsgs[k].msg_hdr = (struct msghdr){.msg_name = &daddr[i + k], .msg_namelen = sizeof daddr[0], .msg_iov = &iov[k], .msg_iovlen = 1};
            }
            sendmmsg(raw, mmsgs, m, 0);
        }
        t_rawm += cpu() - c0;
        drain();
    }
    double per = 1e9 / ((double)N * ROUNDS);
    printf("%-22s sendto %5.0f ns   send (connected) %5.0f ns   io_uring sendmsg x%d %5.0f ns   "
           "raw sendto %5.0f ns   raw sendmmsg x%d %5.0f ns\n",
           name, t_sendto * per, t_send * per, BATCH, t_uring * per, t_raw * per, BATCH, t_rawm * per);
    io_uring_queue_exit(&ring);
    close(raw);
    for (int i = 0; i < N; i++) {
        close(src[i]);
        close(csrc[i]);
        close(dst[i]);
    }
    close(ep);
}

int main(void) {
    memset(buf, 0x80, sizeof buf);
    run("senders not in epoll", 0);
    run("senders in epoll", 1);
    return 0;
}
