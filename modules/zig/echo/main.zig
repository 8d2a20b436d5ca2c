//! echo: answers text/plain describing the decoded request, one item per line:
//!   method: GET
//!   path: /a/b
//!   query: x=1
//!   header: name: value        (one line per header, in order, repeats kept)
//!   config: KEY=value          (one line per config entry, in the host's order)
//!   body-length: 3
//!   body-sha256: <hex>         (so binary bodies can be checked without echoing them)
const std = @import("std");
const wasmhost = @import("wasmhost");

comptime {
    wasmhost.exportHandler(handle);
}

fn handle(req: *const wasmhost.Request, res: *wasmhost.Response) !void {
    try res.setHeader("content-type", "text/plain; charset=utf-8");
    try res.addHeader("x-echo-header-count", try std.fmt.allocPrint(wasmhost.allocator, "{d}", .{req.headers.len}));
    try res.print("method: {s}\npath: {s}\nquery: {s}\n", .{ req.method, req.path, req.query });
    for (req.headers) |h| try res.print("header: {s}: {s}\n", .{ h.name, h.value });
    for (req.config.entries) |c| try res.print("config: {s}={s}\n", .{ c.name, c.value });
    var digest: [32]u8 = undefined;
    std.crypto.hash.sha2.Sha256.hash(req.body, &digest, .{});
    try res.print("body-length: {d}\nbody-sha256: {x}\n", .{ req.body.len, &digest });
    if (req.header("x-echo-status")) |s| res.status = std.fmt.parseInt(u16, s, 10) catch 400;
}
