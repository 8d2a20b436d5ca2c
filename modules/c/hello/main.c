/* hello: logs one line and answers "Hello from C!\n" as text/plain. */
#include "wasmhost.h"

static void hello(const wh_request *req, wh_response *res) {
    (void)req;
    wh_log("hello from C called");
    wh_respond_text(res, 200, "text/plain; charset=utf-8", "Hello from C!\n");
}

WASMHOST_HANDLER(hello)
