/* The first program run inside the sandbox (`make setup` builds it: grader/sandbox/init_program.py).
 *   sandbox-init UID GID [RESOURCE SOFT HARD]... -- COMMAND [ARGUMENT]...
 * Sets each rlimit (RESOURCE as in <sys/resource.h>); then, with UID and GID numbers (as
 * root): no supplementary groups, all gids GID, all uids UID, no capability in any set and
 * an empty bounding set (UID and GID "-": no drop). RLIMIT_NPROC is set after the drop.
 * Then no_new_privs, and COMMAND, searched in PATH.
 * Exit status 125: a step failed (said on stderr); 127: COMMAND could not be run. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static int failed(const char *step) {
  fprintf(stderr, "sandbox-init: %s: %s\n", step, strerror(errno));
  return 125;
}

static unsigned long long number(const char *text) {
  char *end;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  if (errno || !*text || *end) {
    fprintf(stderr, "sandbox-init: not a number: %s\n", text);
    exit(125);
  }
  return value;
}

static int set_rlimits(char **argv, int first, int end, int nproc) {
  for (int i = first; i < end; i += 3) {
    int resource = (int)number(argv[i]);
    struct rlimit limit = {number(argv[i + 1]), number(argv[i + 2])};
    if ((resource == RLIMIT_NPROC) == nproc && setrlimit(resource, &limit))
      return failed("setrlimit");
  }
  return 0;
}

int main(int argc, char **argv) {
  int end = 3;
  while (end + 2 < argc && strcmp(argv[end], "--")) end += 3;
  if (argc < 5 || end + 1 >= argc || strcmp(argv[end], "--")) {
    fprintf(stderr, "usage: sandbox-init UID GID [RESOURCE SOFT HARD]... -- COMMAND [ARGUMENT]...\n");
    return 125;
  }
  /* RLIMIT_NPROC after the drop: set before, the uid switch would count every process
     of UID on the machine against it and the exec would fail */
  if (set_rlimits(argv, 3, end, 0)) return 125;
  if (strcmp(argv[1], "-")) {
    uid_t uid = (uid_t)number(argv[1]);
    gid_t gid = (gid_t)number(argv[2]);
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)) return failed("emptying the bounding set");
    if (setgroups(0, NULL)) return failed("setgroups");
    if (setresgid(gid, gid, gid)) return failed("setresgid");
    if (setresuid(uid, uid, uid)) return failed("setresuid");
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct none[2] = {{0, 0, 0}, {0, 0, 0}};
    if (syscall(SYS_capset, &header, none)) return failed("capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)) return failed("clearing ambient capabilities");
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
      return failed("the uid or gid did not change");
  }
  if (set_rlimits(argv, 3, end, 1)) return 125;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return failed("no_new_privs");
  execvp(argv[end + 1], argv + end + 1);
  fprintf(stderr, "sandbox-init: cannot run %s: %s\n", argv[end + 1], strerror(errno));
  return 127;
}
