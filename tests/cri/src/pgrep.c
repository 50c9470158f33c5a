/*
 * A stand-in for pgrep (Debian's busybox has none): `pgrep [-f] PATTERN`
 * prints the pid of every process whose name (or, with -f, whose command
 * line) matches the extended regular expression, itself excepted; exit 0
 * when one matched, 1 when none did. Built static by tests/cri/images.ts.
 */
#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int slurp(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  return (int)n;
}

int main(int argc, char **argv) {
  int full = 0, i = 1;
  if (i < argc && strcmp(argv[i], "-f") == 0) full = 1, i++;
  if (i != argc - 1) {
    fprintf(stderr, "usage: pgrep [-f] PATTERN\n");
    return 2;
  }
  regex_t re;
  if (regcomp(&re, argv[i], REG_EXTENDED | REG_NOSUB) != 0) {
    fprintf(stderr, "pgrep: bad pattern\n");
    return 2;
  }
  DIR *d = opendir("/proc");
  if (!d) return 3;
  int found = 0, self = getpid();
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int pid = atoi(e->d_name);
    if (pid <= 0 || pid == self) continue;
    char path[64], text[4096];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, full ? "cmdline" : "comm");
    int n = slurp(path, text, sizeof text);
    if (n <= 0) continue;
    for (int k = 0; k < n; k++)
      if (text[k] == 0 || (!full && text[k] == '\n')) text[k] = full && k < n - 1 ? ' ' : 0;
    if (regexec(&re, text, 0, NULL, 0) == 0) {
      printf("%d\n", pid);
      found = 1;
    }
  }
  closedir(d);
  return found ? 0 : 1;
}
