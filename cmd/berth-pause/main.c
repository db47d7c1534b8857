/* berth-pause: the process that holds a pod's namespaces (net, ipc, uts, and pid when shared)
 * while its containers come and go, so no sandbox image is needed. As pid 1 of a shared pid
 * namespace it reaps the orphans that are re-parented to it. SIGINT and SIGTERM end it with
 * status 0; anything else it ignores. Plain C, static: it does nothing else and should cost
 * nothing (a few hundred KiB of RSS). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef BERTH_VERSION
#define BERTH_VERSION "dev"
#endif

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

int main(int argc, char** argv) {
  if (argc > 1) {
    if (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0) {
      printf("berth-pause %s\n", BERTH_VERSION);
      return 0;
    }
    fprintf(stderr, "usage: berth-pause [-v]\n");
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = stop;
  if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) return 1;
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  if (sigaction(SIGCHLD, &sa, NULL) < 0) return 1;
  for (;;) pause();
}
