/* wagi_hello: a plain WASI command speaking CGI (WAGI), with nothing but stdio and getenv.
 * Prints "Content-Type: text/plain", a blank line, "Hello from C WAGI, <REQUEST_METHOD> <PATH_INFO>"
 * and "QUERY_STRING=<value>"; logs one line on stderr. */
#include <stdio.h>
#include <stdlib.h>

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v ? v : "";
}

int main(void) {
    fputs("Content-Type: text/plain\n\n", stdout);
    fputs("Hello from C WAGI, ", stdout);
    fputs(env("REQUEST_METHOD"), stdout);
    fputs(" ", stdout);
    fputs(env("PATH_INFO"), stdout);
    fputs("\nQUERY_STRING=", stdout);
    fputs(env("QUERY_STRING"), stdout);
    fputs("\n", stdout);
    fputs("wagi_hello served ", stderr);
    fputs(env("PATH_INFO"), stderr);
    fputs("\n", stderr);
    return 0;
}
