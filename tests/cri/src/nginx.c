/*
 * A stand-in for the nginx and httpd test images critest uses. As nginx:
 * named "nginx" (its comm), with "nginx: master process" in its command
 * line as the real one shows. As httpd (started by that name): its command
 * line in the log as Apache's AH00094 line has it. Either way answering every HTTP request with a 200 and a small
 * page on $PORT (default 80), its pid in /var/run/nginx.pid as the real one
 * writes it. Built static by tests/cri/images.ts.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char page[] = "<html><body><h1>Welcome to nginx!</h1></body></html>\n";

int main(int argc, char **argv) {
  const char *base = strrchr(argv[0], '/');
  base = base ? base + 1 : argv[0];
  if (strcmp(base, "httpd") == 0) {
    printf("AH00094: Command line: '");
    for (int i = 0; i < argc; i++) printf(i ? " %s" : "%s", argv[i]);
    printf("'\n");
  } else if (strstr(argv[0], "master process") == NULL) {
    char *again[] = {"nginx: master process nginx -g daemon off;", NULL};
    execv("/usr/sbin/nginx", again);
    perror("execv /usr/sbin/nginx");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  mkdir("/var", 0755);
  mkdir("/var/run", 0755);
  FILE *pf = fopen("/var/run/nginx.pid", "w");
  if (pf) {
    fprintf(pf, "%d\n", (int)getpid());
    fclose(pf);
  }
  const char *p = getenv("PORT");
  int port = p ? atoi(p) : 80;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 64) != 0) {
    perror("listen");
    return 1;
  }
  printf("listening on %d\n", port);
  fflush(stdout);
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   sizeof page - 1);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    char buf[4096];
    (void)read(c, buf, sizeof buf);
    (void)write(c, head, (size_t)n);
    (void)write(c, page, sizeof page - 1);
    close(c);
  }
}
