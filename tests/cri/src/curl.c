/*
 * A stand-in for curl in the agnhost image (upstream: Alpine's curl), which
 * the e2e tests run as `curl -g -q -s 'http://IP:PORT/path'`. One HTTP/1.1
 * request to a numeric IPv4/IPv6 host or localhost, the body to stdout (or
 * -o FILE). Flags: -g -q -s -S -L (accepted, nothing to do), -f (exit 22 on
 * status >= 400), -i (headers too), -I (HEAD), -X METHOD, -d DATA (POST),
 * -H HEADER, -m/--max-time N, --connect-timeout N, -w '%{http_code}'. Exit
 * codes as curl's: 3 bad URL, 6 host not numeric, 7 cannot connect, 28 time
 * out, 22 -f and an error status, 2 an unknown flag. No TLS, no redirects,
 * no name resolution (a static binary has no NSS). Built static by
 * tests/cri/images.ts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void timeout(int sig) {
  (void)sig;
  fprintf(stderr, "curl: (28) Operation timed out\n");
  _exit(28);
}

int main(int argc, char **argv) {
  const char *url = NULL, *method = NULL, *data = NULL, *out = NULL, *wfmt = NULL;
  const char *headers[16];
  int nheaders = 0, fail = 0, include = 0, head = 0, quiet = 0;
  unsigned maxtime = 0, conntime = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-g") || !strcmp(a, "-q") || !strcmp(a, "-L") || !strcmp(a, "-S") ||
        !strcmp(a, "--globoff") || !strcmp(a, "--location") || !strcmp(a, "--show-error")) {
    } else if (!strcmp(a, "-s") || !strcmp(a, "--silent")) quiet = 1;
    else if (!strcmp(a, "-f") || !strcmp(a, "--fail")) fail = 1;
    else if (!strcmp(a, "-i") || !strcmp(a, "--include")) include = 1;
    else if (!strcmp(a, "-I") || !strcmp(a, "--head")) head = 1;
    else if ((!strcmp(a, "-X") || !strcmp(a, "--request")) && next) method = argv[++i];
    else if ((!strcmp(a, "-d") || !strcmp(a, "--data")) && next) data = argv[++i];
    else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && next) out = argv[++i];
    else if ((!strcmp(a, "-w") || !strcmp(a, "--write-out")) && next) wfmt = argv[++i];
    else if ((!strcmp(a, "-H") || !strcmp(a, "--header")) && next && nheaders < 16)
      headers[nheaders++] = argv[++i];
    else if ((!strcmp(a, "-m") || !strcmp(a, "--max-time")) && next) maxtime = atoi(argv[++i]);
    else if (!strcmp(a, "--connect-timeout") && next) conntime = atoi(argv[++i]);
    else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "curl: option %s: is unknown to this stand-in\n", a);
      return 2;
    } else url = a;
  }
  (void)quiet;
  if (!url) {
    fprintf(stderr, "curl: no URL specified\n");
    return 2;
  }
  const char *p = url;
  if (!strncmp(p, "http://", 7)) p += 7;
  else if (strstr(p, "://")) {
    fprintf(stderr, "curl: (1) Protocol not supported: %s\n", url);
    return 1;
  }
  char host[256], path[4096] = "/";
  int port = 80;
  const char *slash;
  if (*p == '[') {
    const char *end = strchr(p, ']');
    if (!end || end - p - 1 >= (long)sizeof host) return 3;
    memcpy(host, p + 1, end - p - 1);
    host[end - p - 1] = 0;
    p = end + 1;
  } else {
    size_t n = strcspn(p, ":/?");
    if (n == 0 || n >= sizeof host) {
      fprintf(stderr, "curl: (3) URL malformed: %s\n", url);
      return 3;
    }
    memcpy(host, p, n);
    host[n] = 0;
    p += n;
  }
  if (*p == ':') port = atoi(++p);
  slash = p + strcspn(p, "/?");
  if (*slash == '/') snprintf(path, sizeof path, "%s", slash);
  else if (*slash == '?') snprintf(path, sizeof path, "/%s", slash);
  if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");

  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    sl = sizeof *v4;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    sl = sizeof *v6;
  } else {
    fprintf(stderr, "curl: (6) Could not resolve host: %s (this stand-in takes IP addresses)\n",
            host);
    return 6;
  }
  signal(SIGALRM, timeout);
  alarm(conntime ? conntime : maxtime);
  int fd = socket(ss.ss_family, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0) {
    fprintf(stderr, "curl: (7) Failed to connect to %s port %d\n", host, port);
    return 7;
  }
  alarm(maxtime);
  if (!method) method = head ? "HEAD" : data ? "POST" : "GET";
  char req[8192];
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: curl/8\r\n"
                   "Accept: */*\r\nConnection: close\r\n", method, path, host, port);
  for (int i = 0; i < nheaders && n < (int)sizeof req; i++)
    n += snprintf(req + n, sizeof req - n, "%s\r\n", headers[i]);
  if (data && n < (int)sizeof req)
    n += snprintf(req + n, sizeof req - n,
                  "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n",
                  strlen(data));
  if (n < (int)sizeof req) n += snprintf(req + n, sizeof req - n, "\r\n");
  if (n >= (int)sizeof req) return 3;
  if (write(fd, req, n) != n || (data && write(fd, data, strlen(data)) < 0)) return 55;

  /* The whole answer, then status line, headers and body (chunked bodies decoded). */
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  ssize_t r;
  while (buf && (r = read(fd, buf + len, cap - len - 1)) > 0) {
    len += r;
    if (len + 1 == cap) buf = realloc(buf, cap *= 2);
  }
  if (!buf) return 27;
  buf[len] = 0;
  int status = 0;
  if (sscanf(buf, "HTTP/%*s %d", &status) != 1) {
    fprintf(stderr, "curl: (52) Empty reply from server\n");
    return 52;
  }
  char *body = strstr(buf, "\r\n\r\n");
  body = body ? body + 4 : buf + len;
  FILE *f = out ? fopen(out, "w") : stdout;
  if (!f) return 23;
  if (include) fwrite(buf, 1, body - buf, f);
  if (fail && status >= 400) {
    fprintf(stderr, "curl: (22) The requested URL returned error: %d\n", status);
    return 22;
  }
  size_t blen = buf + len - body;
  if (strcasestr(buf, "transfer-encoding: chunked") && strcasestr(buf, "transfer-encoding: chunked") < body) {
    char *c = body;
    while (c < buf + len) {
      char *e;
      unsigned long sz = strtoul(c, &e, 16);
      if (e == c || sz == 0) break;
      c = strstr(e, "\r\n");
      if (!c) break;
      c += 2;
      if (c + sz > buf + len) sz = buf + len - c;
      fwrite(c, 1, sz, f);
      c += sz + 2;
    }
  } else if (!head) {
    fwrite(body, 1, blen, f);
  }
  if (wfmt) {
    for (const char *w = wfmt; *w; w++) {
      if (!strncmp(w, "%{http_code}", 12)) {
        fprintf(stdout, "%03d", status);
        w += 11;
      } else if (w[0] == '\\' && w[1] == 'n') {
        fputc('\n', stdout);
        w++;
      } else fputc(*w, stdout);
    }
  }
  if (f != stdout) fclose(f);
  return 0;
}
