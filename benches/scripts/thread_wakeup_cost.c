/* What one thread wakeup costs on this machine: two threads ping-pong a byte over pipes, so
 * each round trip is two sleeps and two wakeups. Prints wall time and CPU (user + system,
 * both threads) per wakeup. Run it across cores and on one core:
 *
 *   gcc -O2 -pthread -o /tmp/wakeup benches/scripts/thread_wakeup_cost.c
 *   /tmp/wakeup; taskset -c 0 /tmp/wakeup
 *
 * The call_rate bench counts context switches per call; times this cost is what they spend.
 * On a VM whose idle vCPUs halt (no guest halt polling), a cross-core wakeup is an IPI and a
 * VM exit, several times a same-core switch. */
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
static int a[2], b[2];
static const int N = 20000;
static void *peer(void *x) { char c; for (int i = 0; i < N; i++) { if (read(a[0], &c, 1) != 1) break; if (write(b[1], &c, 1) != 1) break; } return x; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static double cpu(void) { struct rusage r; getrusage(RUSAGE_SELF, &r); return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6; }
int main(void) {
  pipe(a); pipe(b); pthread_t t; pthread_create(&t, 0, peer, 0);
  double w0 = now(), c0 = cpu(); char c = 'x';
  for (int i = 0; i < N; i++) { if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1) return 1; }
  double w = now() - w0, cp = cpu() - c0; pthread_join(t, 0);
  printf("thread wakeup via pipe: %.1f us wall, %.1f us CPU per wakeup (%d round trips)\n", w / (2.0 * N) * 1e6, cp / (2.0 * N) * 1e6, N);
  return 0;
}
