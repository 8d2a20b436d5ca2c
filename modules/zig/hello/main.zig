//! hello: logs one line and answers "Hello from Zig!\n".
const wasmhost = @import("wasmhost");

comptime {
    wasmhost.exportHandler(handle);
}

fn handle(req: *const wasmhost.Request, res: *wasmhost.Response) !void {
    wasmhost.logf("hello called: {s} {s}", .{ req.method, req.path });
    try res.text(200, "Hello from Zig!\n");
}
