/*
 * `ipcs -m` for the busybox test image (Debian's busybox has no ipcs applet):
 * the System V shared memory segments this IPC namespace holds, from
 * /proc/sysvipc/shm, in util-linux's column order.
 */
#include <stdio.h>

int main(void) {
  FILE *f = fopen("/proc/sysvipc/shm", "r");
  if (!f) {
    perror("/proc/sysvipc/shm");
    return 1;
  }
  char line[512];
  printf("\n------ Shared Memory Segments --------\n");
  printf("key        shmid      owner      perms      bytes      nattch     status\n");
  if (!fgets(line, sizeof line, f)) return 0; /* header */
  long key, shmid, perms, size, cpid, lpid, nattch, uid;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%ld %ld %lo %ld %ld %ld %ld %ld", &key, &shmid, &perms, &size, &cpid, &lpid,
               &nattch, &uid) == 8) {
      printf("0x%08x %-10ld %-10ld %-10lo %-10ld %-10ld\n", (unsigned)key, shmid, uid, perms, size,
             nattch);
    }
  }
  return 0;
}
