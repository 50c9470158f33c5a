/*
 * A stand-in for busybox's nmeter applet in the node e2e stand-in images
 * (tests/_helpers/node_images.ts), over upstream busybox 1.37.0's own. The
 * suite's "Containers Lifecycle" specs stamp their log lines with
 * `date -u +%FT$(nmeter -d0 '%3t' | head -n1)Z`. Under runc a container's
 * processes start with SIGPIPE at its default, so upstream's nmeter dies
 * silently when head exits; youki 0.7 (a Rust program: Rust's runtime
 * ignores SIGPIPE) leaves it ignored in the container's process, and
 * upstream's nmeter then writes "nmeter: write error: Broken pipe" to stderr,
 * which lands in the container's log the spec parses. This one ends quietly
 * on a failed write either way, as upstream's does under runc. Only the time
 * directive is here: `%[N]t`, the local time as HH:MM:SS with N decimals
 * (0..6); text around it is printed as is, `%%` is a percent sign. Any other
 * directive is refused. -dN: a line every N milliseconds (0: as fast as the
 * reader takes them; nmeter's default is 1000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int put(const char *fmt) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  localtime_r(&tv.tv_sec, &tm);
  for (const char *p = fmt; *p; p++) {
    if (*p != '%') {
      putchar(*p);
      continue;
    }
    p++;
    if (*p == '%') {
      putchar('%');
      continue;
    }
    int n = 0;
    if (*p >= '0' && *p <= '9') n = *p++ - '0';
    if (*p != 't' || n > 6) {
      fprintf(stderr, "nmeter: this stand-in knows only %%[N]t (N 0..6)\n");
      return 1;
    }
    printf("%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n > 0) {
      long frac = tv.tv_usec;
      for (int i = n; i < 6; i++) frac /= 10;
      printf(".%0*ld", n, frac);
    }
  }
  putchar('\n');
  return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  long delay = 1000;
  const char *fmt = NULL;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "-d", 2) == 0) {
      const char *v = argv[i][2] ? argv[i] + 2 : (i + 1 < argc ? argv[++i] : NULL);
      char *end;
      if (!v || (delay = strtol(v, &end, 10), *end != '\0') || delay < 0) {
        fprintf(stderr, "nmeter: -d wants milliseconds\n");
        return 1;
      }
    } else if (!fmt) {
      fmt = argv[i];
    } else {
      fprintf(stderr, "usage: nmeter [-dMSEC] FORMAT\n");
      return 1;
    }
  }
  if (!fmt) {
    fprintf(stderr, "usage: nmeter [-dMSEC] FORMAT\n");
    return 1;
  }
  for (;;) {
    if (put(fmt) != 0) return 1;
    if (delay > 0) usleep((useconds_t)delay * 1000);
  }
}
