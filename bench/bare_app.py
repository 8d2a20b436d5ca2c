"""The bare endpoint bench/bench_http.py compares wasmhost against.

One Starlette route answering the same bytes and content type as the hello
function, at the same path, so the request bytes are identical too. Run it with
the uvicorn settings `wasmhost serve` uses (see bench_http.py):

    python -m uvicorn bench.bare_app:app --loop uvloop \
        --http wasmhost.http.protocol:LimitedHttpToolsProtocol --no-access-log \
        --no-server-header --log-level warning

(bench/common.py UVICORN_FLAGS: the floor runs on wasmhost's own head-limiting
protocol class, so the comparison measures the function call, not the limits.)
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HELLO = b"Hello, world!\n"


async def hello(request: Request) -> Response:
    return Response(HELLO, media_type="text/plain; charset=utf-8")


app = Starlette(routes=[Route("/fn/hello", hello, methods=["GET"])])
