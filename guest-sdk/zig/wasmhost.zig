//! wasmhost guest SDK for Zig 0.17 (the `handler` interface of guest-sdk/ABI.md).
//!
//! ```zig
//! const wasmhost = @import("wasmhost");
//! comptime { wasmhost.exportHandler(handle); }
//! fn handle(req: *const wasmhost.Request, res: *wasmhost.Response) !void {
//!     wasmhost.log("called");
//!     try res.text(200, "Hello from Zig!\n");
//! }
//! ```
//!
//! Build: `zig build-exe -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseSmall
//! --dep wasmhost -Mroot=main.zig -Mwasmhost=wasmhost.zig` (see guest-sdk/zig/README.md).
//! No dependencies beyond `std`; no WASI; the only import is `wasmhost.log`, and only if used.
//!
//! Memory: each call runs in a fresh instance and the host drops it afterwards, so the SDK uses a
//! bump allocator (`allocator`) that never frees. Request strings are slices of the request bytes
//! the host wrote (no copies).

const std = @import("std");
const builtin = @import("builtin");

const is_wasm = builtin.target.cpu.arch.isWasm();

// ---------------------------------------------------------------------------------------------
// Allocator
// ---------------------------------------------------------------------------------------------

/// A bump allocator over the wasm linear memory (grows it with `memory.grow` as needed). `free` only
/// gives back the most recent allocation; everything else is reclaimed when the instance is dropped.
const Bump = struct {
    next: usize = 0,
    end: usize = 0,

    extern var __heap_base: u8;

    fn init(self: *Bump) void {
        if (self.next == 0) {
            self.next = @intFromPtr(&__heap_base);
            self.end = @wasmMemorySize(0) * std.wasm.page_size;
        }
    }

    fn allocRaw(self: *Bump, len: usize, alignment: std.mem.Alignment) ?[*]u8 {
        self.init();
        const start = alignment.forward(self.next);
        const stop = std.math.add(usize, start, len) catch return null;
        if (stop > self.end) {
            const missing = stop - self.end;
            const pages = (missing + std.wasm.page_size - 1) / std.wasm.page_size;
            if (@wasmMemoryGrow(0, pages) < 0) return null;
            self.end += pages * std.wasm.page_size;
        }
        self.next = stop;
        return @ptrFromInt(start);
    }

    fn alloc(ctx: *anyopaque, len: usize, alignment: std.mem.Alignment, ret: usize) ?[*]u8 {
        _ = ret;
        const self: *Bump = @ptrCast(@alignCast(ctx));
        return self.allocRaw(len, alignment);
    }

    fn resize(ctx: *anyopaque, memory: []u8, alignment: std.mem.Alignment, new_len: usize, ret: usize) bool {
        _ = alignment;
        _ = ret;
        const self: *Bump = @ptrCast(@alignCast(ctx));
        if (new_len <= memory.len) {
            if (@intFromPtr(memory.ptr) + memory.len == self.next) self.next = @intFromPtr(memory.ptr) + new_len;
            return true;
        }
        // Grow in place only when this is the last allocation.
        if (@intFromPtr(memory.ptr) + memory.len != self.next) return false;
        self.next = @intFromPtr(memory.ptr);
        const got = self.allocRaw(new_len, .@"1") orelse {
            self.next = @intFromPtr(memory.ptr) + memory.len;
            return false;
        };
        std.debug.assert(got == memory.ptr);
        return true;
    }

    fn remap(ctx: *anyopaque, memory: []u8, alignment: std.mem.Alignment, new_len: usize, ret: usize) ?[*]u8 {
        return if (resize(ctx, memory, alignment, new_len, ret)) memory.ptr else null;
    }

    fn free(ctx: *anyopaque, memory: []u8, alignment: std.mem.Alignment, ret: usize) void {
        _ = alignment;
        _ = ret;
        const self: *Bump = @ptrCast(@alignCast(ctx));
        if (@intFromPtr(memory.ptr) + memory.len == self.next) self.next = @intFromPtr(memory.ptr);
    }

    const vtable: std.mem.Allocator.VTable = .{ .alloc = alloc, .resize = resize, .remap = remap, .free = free };
};

var bump: Bump = .{};

/// The allocator handlers should use: a bump allocator inside wasm (nothing needs freeing),
/// `std.heap.page_allocator` elsewhere (native `zig test`).
pub const allocator: std.mem.Allocator = if (is_wasm)
    .{ .ptr = &bump, .vtable = &Bump.vtable }
else
    std.heap.page_allocator;

// ---------------------------------------------------------------------------------------------
// Growable byte buffer
// ---------------------------------------------------------------------------------------------

/// A growable byte string (used for response bodies and msgpack output).
pub const Buffer = struct {
    gpa: std.mem.Allocator,
    items: []u8 = &.{},
    capacity: usize = 0,

    pub fn init(gpa: std.mem.Allocator) Buffer {
        return .{ .gpa = gpa };
    }

    pub fn deinit(self: *Buffer) void {
        if (self.capacity != 0) self.gpa.free(self.items.ptr[0..self.capacity]);
        self.* = .{ .gpa = self.gpa };
    }

    /// Room for `n` more bytes; returns the (uninitialised) slice and counts it as written.
    pub fn addMany(self: *Buffer, n: usize) ![]u8 {
        const need = self.items.len + n;
        if (need > self.capacity) {
            var cap = @max(self.capacity * 2, 64);
            while (cap < need) cap *= 2;
            const old = self.items.ptr[0..self.capacity];
            const mem = if (self.capacity == 0) try self.gpa.alloc(u8, cap) else try self.gpa.realloc(old, cap);
            self.items = mem[0..self.items.len];
            self.capacity = cap;
        }
        const start = self.items.len;
        self.items = self.items.ptr[0..need];
        return self.items[start..need];
    }

    pub fn append(self: *Buffer, bytes: []const u8) !void {
        @memcpy(try self.addMany(bytes.len), bytes);
    }

    pub fn appendByte(self: *Buffer, byte: u8) !void {
        (try self.addMany(1))[0] = byte;
    }

    /// Appends `std.fmt` formatted text.
    pub fn print(self: *Buffer, comptime fmt: []const u8, args: anytype) !void {
        const n = std.fmt.count(fmt, args);
        const dest = try self.addMany(n);
        _ = std.fmt.bufPrint(dest, fmt, args) catch unreachable;
    }

    pub fn clear(self: *Buffer) void {
        self.items = self.items.ptr[0..0];
    }
};

// ---------------------------------------------------------------------------------------------
// msgpack (the subset the ABI needs, plus skipping of anything else)
// ---------------------------------------------------------------------------------------------

pub const msgpack = struct {
    pub const Error = error{ Truncated, WrongType, TooDeep };

    /// Reads msgpack values from a byte slice. Strings and bins are returned as slices of the input.
    pub const Decoder = struct {
        buf: []const u8,
        pos: usize = 0,

        pub fn init(buf: []const u8) Decoder {
            return .{ .buf = buf };
        }

        fn byte(self: *Decoder) Error!u8 {
            if (self.pos >= self.buf.len) return error.Truncated;
            self.pos += 1;
            return self.buf[self.pos - 1];
        }

        fn peek(self: *Decoder) Error!u8 {
            if (self.pos >= self.buf.len) return error.Truncated;
            return self.buf[self.pos];
        }

        fn take(self: *Decoder, n: usize) Error![]const u8 {
            if (n > self.buf.len - self.pos) return error.Truncated;
            self.pos += n;
            return self.buf[self.pos - n .. self.pos];
        }

        fn uint(self: *Decoder, comptime T: type) Error!T {
            const bytes = try self.take(@sizeOf(T));
            return std.mem.readInt(T, bytes[0..@sizeOf(T)], .big);
        }

        pub fn atEnd(self: *const Decoder) bool {
            return self.pos >= self.buf.len;
        }

        /// True (and consumed) when the next value is nil.
        pub fn readNil(self: *Decoder) Error!bool {
            if (try self.peek() == 0xc0) {
                self.pos += 1;
                return true;
            }
            return false;
        }

        pub fn readMapLen(self: *Decoder) Error!usize {
            const b = try self.byte();
            return switch (b) {
                0x80...0x8f => b & 0x0f,
                0xde => try self.uint(u16),
                0xdf => try self.uint(u32),
                else => {
                    self.pos -= 1;
                    return error.WrongType;
                },
            };
        }

        pub fn readArrayLen(self: *Decoder) Error!usize {
            const b = try self.byte();
            return switch (b) {
                0x90...0x9f => b & 0x0f,
                0xdc => try self.uint(u16),
                0xdd => try self.uint(u32),
                else => {
                    self.pos -= 1;
                    return error.WrongType;
                },
            };
        }

        /// A str or a bin (the ABI sends non-UTF-8 header values, paths and queries as bin).
        pub fn readBytes(self: *Decoder) Error![]const u8 {
            const b = try self.byte();
            const n: usize = switch (b) {
                0xa0...0xbf => b & 0x1f,
                0xd9, 0xc4 => try self.uint(u8),
                0xda, 0xc5 => try self.uint(u16),
                0xdb, 0xc6 => try self.uint(u32),
                else => {
                    self.pos -= 1;
                    return error.WrongType;
                },
            };
            return self.take(n);
        }

        pub fn readInt(self: *Decoder) Error!i64 {
            const b = try self.byte();
            return switch (b) {
                0x00...0x7f => b,
                0xe0...0xff => @as(i64, @as(i8, @bitCast(b))),
                0xcc => try self.uint(u8),
                0xcd => try self.uint(u16),
                0xce => try self.uint(u32),
                0xcf => @bitCast(try self.uint(u64)),
                0xd0 => @as(i8, @bitCast(try self.uint(u8))),
                0xd1 => @as(i16, @bitCast(try self.uint(u16))),
                0xd2 => @as(i32, @bitCast(try self.uint(u32))),
                0xd3 => @as(i64, @bitCast(try self.uint(u64))),
                else => {
                    self.pos -= 1;
                    return error.WrongType;
                },
            };
        }

        /// Skips one complete value of any type (iteratively: no recursion however deep).
        pub fn skip(self: *Decoder) Error!void {
            var pending: u64 = 1;
            while (pending > 0) {
                pending -= 1;
                const b = try self.byte();
                switch (b) {
                    0x00...0x7f, 0xe0...0xff, 0xc0, 0xc2, 0xc3 => {},
                    0x80...0x8f => pending += 2 * @as(u64, b & 0x0f),
                    0x90...0x9f => pending += b & 0x0f,
                    0xa0...0xbf => _ = try self.take(b & 0x1f),
                    0xc4, 0xd9 => _ = try self.take(try self.uint(u8)),
                    0xc5, 0xda => _ = try self.take(try self.uint(u16)),
                    0xc6, 0xdb => _ = try self.take(try self.uint(u32)),
                    0xc7 => _ = try self.take(@as(usize, try self.uint(u8)) + 1),
                    0xc8 => _ = try self.take(@as(usize, try self.uint(u16)) + 1),
                    0xc9 => _ = try self.take(@as(usize, try self.uint(u32)) + 1),
                    0xca, 0xce, 0xd2 => _ = try self.take(4),
                    0xcb, 0xcf, 0xd3 => _ = try self.take(8),
                    0xcc, 0xd0 => _ = try self.take(1),
                    0xcd, 0xd1 => _ = try self.take(2),
                    0xd4 => _ = try self.take(2),
                    0xd5 => _ = try self.take(3),
                    0xd6 => _ = try self.take(5),
                    0xd7 => _ = try self.take(9),
                    0xd8 => _ = try self.take(17),
                    0xdc => pending += try self.uint(u16),
                    0xdd => pending += try self.uint(u32),
                    0xde => pending += 2 * @as(u64, try self.uint(u16)),
                    0xdf => pending += 2 * @as(u64, try self.uint(u32)),
                    0xc1 => return error.WrongType, // never used
                }
            }
        }
    };

    /// Appends msgpack values to a Buffer, always in the smallest encoding.
    pub const Encoder = struct {
        out: *Buffer,

        fn head(self: Encoder, fix: u8, fix_max: usize, b8: ?u8, b16: u8, b32: u8, n: usize) !void {
            if (n <= fix_max) {
                try self.out.appendByte(fix | @as(u8, @intCast(n)));
            } else if (b8 != null and n <= 0xff) {
                try self.out.append(&.{ b8.?, @intCast(n) });
            } else if (n <= 0xffff) {
                try self.out.appendByte(b16);
                std.mem.writeInt(u16, (try self.out.addMany(2))[0..2], @intCast(n), .big);
            } else {
                try self.out.appendByte(b32);
                std.mem.writeInt(u32, (try self.out.addMany(4))[0..4], @intCast(n), .big);
            }
        }

        pub fn writeMapLen(self: Encoder, n: usize) !void {
            try self.head(0x80, 15, null, 0xde, 0xdf, n);
        }

        pub fn writeArrayLen(self: Encoder, n: usize) !void {
            try self.head(0x90, 15, null, 0xdc, 0xdd, n);
        }

        pub fn writeStr(self: Encoder, s: []const u8) !void {
            try self.head(0xa0, 31, 0xd9, 0xda, 0xdb, s.len);
            try self.out.append(s);
        }

        pub fn writeBin(self: Encoder, s: []const u8) !void {
            if (s.len <= 0xff) {
                try self.out.append(&.{ 0xc4, @intCast(s.len) });
            } else try self.head(0, 0, null, 0xc5, 0xc6, s.len);
            try self.out.append(s);
        }

        pub fn writeNil(self: Encoder) !void {
            try self.out.appendByte(0xc0);
        }

        pub fn writeBool(self: Encoder, v: bool) !void {
            try self.out.appendByte(if (v) 0xc3 else 0xc2);
        }

        pub fn writeInt(self: Encoder, v: i64) !void {
            if (v >= 0) {
                const u: u64 = @intCast(v);
                if (u <= 0x7f) {
                    try self.out.appendByte(@intCast(u));
                } else if (u <= 0xff) {
                    try self.out.append(&.{ 0xcc, @intCast(u) });
                } else if (u <= 0xffff) {
                    try self.out.appendByte(0xcd);
                    std.mem.writeInt(u16, (try self.out.addMany(2))[0..2], @intCast(u), .big);
                } else if (u <= 0xffff_ffff) {
                    try self.out.appendByte(0xce);
                    std.mem.writeInt(u32, (try self.out.addMany(4))[0..4], @intCast(u), .big);
                } else {
                    try self.out.appendByte(0xcf);
                    std.mem.writeInt(u64, (try self.out.addMany(8))[0..8], u, .big);
                }
            } else if (v >= -32) {
                try self.out.appendByte(@bitCast(@as(i8, @intCast(v))));
            } else if (v >= -128) {
                try self.out.append(&.{ 0xd0, @bitCast(@as(i8, @intCast(v))) });
            } else if (v >= -32768) {
                try self.out.appendByte(0xd1);
                std.mem.writeInt(i16, (try self.out.addMany(2))[0..2], @intCast(v), .big);
            } else if (v >= -2147483648) {
                try self.out.appendByte(0xd2);
                std.mem.writeInt(i32, (try self.out.addMany(4))[0..4], @intCast(v), .big);
            } else {
                try self.out.appendByte(0xd3);
                std.mem.writeInt(i64, (try self.out.addMany(8))[0..8], v, .big);
            }
        }
    };
};

// ---------------------------------------------------------------------------------------------
// Request / Response
// ---------------------------------------------------------------------------------------------

/// A header (or config entry): raw bytes; header names are lower-case as the host sends them.
pub const Header = struct { name: []const u8, value: []const u8 };

/// The function's configuration variables, in the order the host sent them.
pub const Config = struct {
    entries: []const Header = &.{},

    /// The value of configuration variable `name` (exact, case-sensitive match), or null.
    pub fn get(self: Config, name: []const u8) ?[]const u8 {
        for (self.entries) |e| if (std.mem.eql(u8, e.name, name)) return e.value;
        return null;
    }
};

pub const Request = struct {
    method: []const u8 = "GET",
    /// After the function's prefix, starting with "/", still percent-encoded.
    path: []const u8 = "/",
    /// The raw query string, without "?".
    query: []const u8 = "",
    /// Lower-case names; order and repeats kept.
    headers: []const Header = &.{},
    body: []const u8 = "",
    /// Configuration variables: `req.config.get("NAME")`.
    config: Config = .{},

    /// The first value of header `name` (case-insensitive), or null.
    pub fn header(self: *const Request, name: []const u8) ?[]const u8 {
        for (self.headers) |h| if (std.ascii.eqlIgnoreCase(h.name, name)) return h.value;
        return null;
    }

    /// Decodes the request map of ABI.md. Unknown keys are skipped; strings are slices of `bytes`.
    pub fn decode(gpa: std.mem.Allocator, bytes: []const u8) !Request {
        var d = msgpack.Decoder.init(bytes);
        var req: Request = .{};
        const n = try d.readMapLen();
        for (0..n) |_| {
            const key = d.readBytes() catch |e| switch (e) {
                error.WrongType => { // a non-string key: not ours, skip key and value
                    try d.skip();
                    try d.skip();
                    continue;
                },
                else => return e,
            };
            if (try d.readNil()) continue;
            if (std.mem.eql(u8, key, "method")) {
                req.method = try d.readBytes();
            } else if (std.mem.eql(u8, key, "path")) {
                req.path = try d.readBytes();
            } else if (std.mem.eql(u8, key, "query")) {
                req.query = try d.readBytes();
            } else if (std.mem.eql(u8, key, "body")) {
                req.body = try d.readBytes();
            } else if (std.mem.eql(u8, key, "headers")) {
                const count = try d.readArrayLen();
                if (count > d.buf.len - d.pos) return error.Truncated; // each pair takes bytes
                const list = try gpa.alloc(Header, count);
                for (list) |*h| {
                    if (try d.readArrayLen() != 2) return error.WrongType;
                    h.* = .{ .name = try d.readBytes(), .value = try d.readBytes() };
                }
                req.headers = list;
            } else if (std.mem.eql(u8, key, "config")) {
                const count = try d.readMapLen();
                if (count > d.buf.len - d.pos) return error.Truncated;
                const list = try gpa.alloc(Header, count);
                for (list) |*h| h.* = .{ .name = try d.readBytes(), .value = try d.readBytes() };
                req.config = .{ .entries = list };
            } else {
                try d.skip();
            }
        }
        return req;
    }
};

pub const Response = struct {
    status: u16 = 200,
    headers: std.ArrayList(Header) = .empty,
    body: Buffer,
    gpa: std.mem.Allocator,

    pub fn init(gpa: std.mem.Allocator) Response {
        return .{ .gpa = gpa, .body = Buffer.init(gpa) };
    }

    pub fn deinit(self: *Response) void {
        self.headers.deinit(self.gpa);
        self.body.deinit();
    }

    /// Adds a header (repeats allowed, e.g. set-cookie). Name and value must outlive the call
    /// (string literals, request slices, or memory from `wasmhost.allocator`).
    pub fn addHeader(self: *Response, name: []const u8, value: []const u8) !void {
        try self.headers.append(self.gpa, .{ .name = name, .value = value });
    }

    /// Replaces every header called `name` (case-insensitive) by one with `value`.
    pub fn setHeader(self: *Response, name: []const u8, value: []const u8) !void {
        var i: usize = 0;
        while (i < self.headers.items.len) {
            if (std.ascii.eqlIgnoreCase(self.headers.items[i].name, name)) {
                _ = self.headers.orderedRemove(i);
            } else i += 1;
        }
        try self.addHeader(name, value);
    }

    /// Appends bytes to the body.
    pub fn write(self: *Response, bytes: []const u8) !void {
        try self.body.append(bytes);
    }

    /// Appends `std.fmt` formatted text to the body.
    pub fn print(self: *Response, comptime fmt: []const u8, args: anytype) !void {
        try self.body.print(fmt, args);
    }

    /// Status, content-type and the whole body in one call.
    pub fn send(self: *Response, status: u16, content_type: []const u8, body: []const u8) !void {
        self.status = status;
        try self.setHeader("content-type", content_type);
        self.body.clear();
        try self.body.append(body);
    }

    /// `text/plain; charset=utf-8`.
    pub fn text(self: *Response, status: u16, body: []const u8) !void {
        try self.send(status, "text/plain; charset=utf-8", body);
    }

    /// `text/html; charset=utf-8`.
    pub fn html(self: *Response, status: u16, body: []const u8) !void {
        try self.send(status, "text/html; charset=utf-8", body);
    }

    /// `application/json` with an already serialised JSON document.
    pub fn jsonRaw(self: *Response, status: u16, body: []const u8) !void {
        try self.send(status, "application/json", body);
    }

    /// `application/json` with `value` serialised by std.json.
    pub fn json(self: *Response, status: u16, value: anytype) !void {
        self.status = status;
        try self.setHeader("content-type", "application/json");
        self.body.clear();
        const s = try std.fmt.allocPrint(self.gpa, "{f}", .{std.json.fmt(value, .{})});
        try self.body.append(s);
    }

    /// The msgpack map of ABI.md: {"status": int, "headers": [[str, str]...], "body": bin}.
    pub fn encode(self: *const Response, out: *Buffer) !void {
        const e = msgpack.Encoder{ .out = out };
        try e.writeMapLen(3);
        try e.writeStr("status");
        try e.writeInt(self.status);
        try e.writeStr("headers");
        try e.writeArrayLen(self.headers.items.len);
        for (self.headers.items) |h| {
            try e.writeArrayLen(2);
            try e.writeStr(h.name);
            try e.writeStr(h.value);
        }
        try e.writeStr("body");
        try e.writeBin(self.body.items);
    }
};

// ---------------------------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------------------------

const imports = struct {
    extern "wasmhost" fn log(ptr: [*]const u8, len: usize) void;
};

/// Appends `msg` as one line to the invocation's log (the `wasmhost.log` import; stderr natively).
pub fn log(msg: []const u8) void {
    if (is_wasm) {
        imports.log(msg.ptr, msg.len);
    } else {
        std.debug.print("{s}\n", .{msg});
    }
}

/// `log` with `std.fmt` formatting (lines over 1 KiB are cut).
pub fn logf(comptime fmt: []const u8, args: anytype) void {
    var buf: [1024]u8 = undefined;
    const s = std.fmt.bufPrint(&buf, fmt, args) catch buf[0..];
    log(s);
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

/// Runs `handler` on encoded request bytes and returns the encoded response (what
/// `wasmhost_handle` does; exposed for tests). A handler error becomes a 500 and a log line;
/// a request that cannot be decoded becomes a 400.
pub fn serve(gpa: std.mem.Allocator, comptime handler: anytype, request_bytes: []const u8) ![]const u8 {
    var res = Response.init(gpa);
    if (Request.decode(gpa, request_bytes)) |req| {
        handler(&req, &res) catch |err| {
            logf("handler failed: {s}", .{@errorName(err)});
            res.headers.clearRetainingCapacity();
            try res.text(500, "internal error\n");
        };
    } else |err| {
        logf("cannot decode request: {s}", .{@errorName(err)});
        try res.text(400, "bad request\n");
    }
    var out = Buffer.init(gpa);
    try res.encode(&out);
    return out.items;
}

/// Exports `wasmhost_alloc` and `wasmhost_handle` for `handler`, a
/// `fn (req: *const Request, res: *Response) !void`. Use once, at top level:
/// `comptime { wasmhost.exportHandler(handle); }` (and build with `-rdynamic` so `memory` is exported).
pub fn exportHandler(comptime handler: anytype) void {
    if (!is_wasm) return; // native `zig test` of an example: nothing to export
    const S = struct {
        fn alloc(size: u32) callconv(.c) u32 {
            const p = bump.allocRaw(size, .@"8") orelse @trap();
            return @intCast(@intFromPtr(p));
        }

        fn handle(ptr: u32, len: u32) callconv(.c) u64 {
            const in: [*]const u8 = @ptrFromInt(ptr);
            const out = serve(allocator, handler, in[0..len]) catch @trap();
            return (@as(u64, @intFromPtr(out.ptr)) << 32) | out.len;
        }
    };
    @export(&S.alloc, .{ .name = "wasmhost_alloc" });
    @export(&S.handle, .{ .name = "wasmhost_handle" });
}

// ---------------------------------------------------------------------------------------------
// Tests (`zig test guest-sdk/zig/wasmhost.zig`)
// ---------------------------------------------------------------------------------------------

const testing = std.testing;

fn hex(comptime s: []const u8) [s.len / 2]u8 {
    var out: [s.len / 2]u8 = undefined;
    _ = std.fmt.hexToBytes(&out, s) catch unreachable;
    return out;
}

test "decode the ABI.md worked example" {
    var arena = std.heap.ArenaAllocator.init(testing.allocator);
    defer arena.deinit();
    const bytes = hex("86a66d6574686f64a3474554a470617468a32f6869a57175657279a3783d31a7686561646572739192a6616363657074a32a2f2aa4626f6479c4026f6ba6636f6e66696781a14ba176");
    try testing.expectEqual(@as(usize, 73), bytes.len);
    const req = try Request.decode(arena.allocator(), &bytes);
    try testing.expectEqualStrings("GET", req.method);
    try testing.expectEqualStrings("/hi", req.path);
    try testing.expectEqualStrings("x=1", req.query);
    try testing.expectEqual(@as(usize, 1), req.headers.len);
    try testing.expectEqualStrings("accept", req.headers[0].name);
    try testing.expectEqualStrings("*/*", req.header("Accept").?);
    try testing.expect(req.header("missing") == null);
    try testing.expectEqualStrings("ok", req.body);
    try testing.expectEqualStrings("v", req.config.get("K").?);
    try testing.expect(req.config.get("k") == null);
}

test "encode the ABI.md hello response byte for byte" {
    var arena = std.heap.ArenaAllocator.init(testing.allocator);
    defer arena.deinit();
    var res = Response.init(arena.allocator());
    try res.addHeader("content-type", "text/plain; charset=utf-8");
    try res.write("Hello, world!\n");
    var out = Buffer.init(arena.allocator());
    try res.encode(&out);
    // Same as ABI.md except the body, which the SDK always sends as bin (c4 0e) rather than str (ae).
    const want = hex("83a6737461747573ccc8a7686561646572739192ac636f6e74656e742d74797065b9746578742f706c61696e3b20636861727365743d7574662d38a4626f6479c40e48656c6c6f2c20776f726c64210a");
    try testing.expectEqualSlices(u8, &want, out.items);
}

test "unknown keys of every type are skipped, bin values accepted, nil ignored" {
    var arena = std.heap.ArenaAllocator.init(testing.allocator);
    defer arena.deinit();
    var buf = Buffer.init(arena.allocator());
    const e = msgpack.Encoder{ .out = &buf };
    try e.writeMapLen(8);
    try e.writeStr("zzz"); // nested unknown value
    try e.writeArrayLen(3);
    try e.writeMapLen(1);
    try e.writeStr("a");
    try e.writeArrayLen(2);
    try e.writeInt(-5);
    try e.writeInt(1 << 40);
    try e.writeBin("xx");
    try buf.append(&.{ 0xcb, 0, 0, 0, 0, 0, 0, 0, 0 }); // float64
    try e.writeInt(7); // an int key
    try e.writeStr("ignored");
    try e.writeStr("ext");
    try buf.append(&.{ 0xd6, 1, 1, 2, 3, 4 }); // fixext4
    try e.writeStr("path");
    try e.writeBin("/\xff\xfe");
    try e.writeStr("headers");
    try e.writeArrayLen(2);
    try e.writeArrayLen(2);
    try e.writeStr("x-a");
    try e.writeBin("\xc3\x28");
    try e.writeArrayLen(2);
    try e.writeStr("x-a");
    try e.writeStr("second");
    try e.writeStr("query");
    try e.writeNil();
    try e.writeStr("method");
    try e.writeStr("PUT");
    try e.writeStr("later");
    try e.writeBool(true);
    const req = try Request.decode(arena.allocator(), buf.items);
    try testing.expectEqualStrings("PUT", req.method);
    try testing.expectEqualStrings("/\xff\xfe", req.path);
    try testing.expectEqualStrings("", req.query);
    try testing.expectEqual(@as(usize, 2), req.headers.len);
    try testing.expectEqualStrings("\xc3\x28", req.header("X-A").?);
    try testing.expectEqualStrings("second", req.headers[1].value);
}

test "integers and lengths use the smallest encoding and round trip" {
    var arena = std.heap.ArenaAllocator.init(testing.allocator);
    defer arena.deinit();
    const cases = [_]struct { v: i64, enc: []const u8 }{
        .{ .v = 0, .enc = "\x00" },
        .{ .v = 127, .enc = "\x7f" },
        .{ .v = 128, .enc = "\xcc\x80" },
        .{ .v = 200, .enc = "\xcc\xc8" },
        .{ .v = 256, .enc = "\xcd\x01\x00" },
        .{ .v = 65536, .enc = "\xce\x00\x01\x00\x00" },
        .{ .v = 1 << 32, .enc = "\xcf\x00\x00\x00\x01\x00\x00\x00\x00" },
        .{ .v = -1, .enc = "\xff" },
        .{ .v = -32, .enc = "\xe0" },
        .{ .v = -33, .enc = "\xd0\xdf" },
        .{ .v = -129, .enc = "\xd1\xff\x7f" },
        .{ .v = -40000, .enc = "\xd2\xff\xff\x63\xc0" },
        .{ .v = std.math.minInt(i64), .enc = "\xd3\x80\x00\x00\x00\x00\x00\x00\x00" },
    };
    for (cases) |c| {
        var buf = Buffer.init(arena.allocator());
        try (msgpack.Encoder{ .out = &buf }).writeInt(c.v);
        try testing.expectEqualSlices(u8, c.enc, buf.items);
        var d = msgpack.Decoder.init(buf.items);
        try testing.expectEqual(c.v, try d.readInt());
        try testing.expect(d.atEnd());
        var d2 = msgpack.Decoder.init(buf.items);
        try d2.skip();
        try testing.expect(d2.atEnd());
    }
    const lens = [_]usize{ 0, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000 };
    const big = try arena.allocator().alloc(u8, 70000);
    @memset(big, 'a');
    for (lens) |n| {
        var buf = Buffer.init(arena.allocator());
        const e = msgpack.Encoder{ .out = &buf };
        try e.writeStr(big[0..n]);
        try e.writeBin(big[0..n]);
        try e.writeArrayLen(n);
        try e.writeMapLen(n);
        var d = msgpack.Decoder.init(buf.items);
        try testing.expectEqual(n, (try d.readBytes()).len);
        try testing.expectEqual(n, (try d.readBytes()).len);
        try testing.expectEqual(n, try d.readArrayLen());
        try testing.expectEqual(n, try d.readMapLen());
        try testing.expect(d.atEnd());
    }
    // str8 header only from 32 bytes; bin8 always for short bins.
    var buf = Buffer.init(arena.allocator());
    try (msgpack.Encoder{ .out = &buf }).writeStr(big[0..32]);
    try testing.expectEqual(@as(u8, 0xd9), buf.items[0]);
    buf.clear();
    try (msgpack.Encoder{ .out = &buf }).writeBin("");
    try testing.expectEqualSlices(u8, "\xc4\x00", buf.items);
}

test "truncated and wrong input is an error, never a crash" {
    var arena = std.heap.ArenaAllocator.init(testing.allocator);
    defer arena.deinit();
    const good = hex("86a66d6574686f64a3474554a470617468a32f6869a57175657279a3783d31a7686561646572739192a6616363657074a32a2f2aa4626f6479c4026f6ba6636f6e66696781a14ba176");
    for (0..good.len) |cut| {
        try testing.expectError(error.Truncated, Request.decode(arena.allocator(), good[0..cut]));
    }
    try testing.expectError(error.WrongType, Request.decode(arena.allocator(), "\x93\x01\x02\x03"));
    try testing.expectError(error.WrongType, Request.decode(arena.allocator(), "\x81\xa6method\x05"));
    // a huge declared array must fail on the data, not loop forever or allocate it
    var d = msgpack.Decoder.init("\xdd\xff\xff\xff\xff");
    try testing.expectError(error.Truncated, d.skip());
    try testing.expectError(error.Truncated, Request.decode(arena.allocator(), "\x81\xa7headers\xdd\x7f\xff\xff\xff"));
    try testing.expectError(error.Truncated, Request.decode(arena.allocator(), "\x81\xa6config\xdf\x7f\xff\xff\xff"));
}

fn testHandler(req: *const Request, res: *Response) !void {
    if (std.mem.eql(u8, req.path, "/fail")) return error.Boom;
    try res.addHeader("set-cookie", "a=1");
    try res.addHeader("set-cookie", "b=2");
    try res.setHeader("content-type", "text/plain");
    try res.setHeader("Content-Type", "text/x-test");
    try res.print("{s} {s} {d}", .{ req.method, req.path, req.body.len });
}

test "serve: handler output, handler errors, undecodable requests" {
    var arena = std.heap.ArenaAllocator.init(testing.allocator);
    defer arena.deinit();
    const gpa = arena.allocator();

    const req_bytes = "\x83\xa6method\xa4POST\xa4path\xa2/x\xa4body\xc4\x03abc";
    const out = try serve(gpa, testHandler, req_bytes);
    var d = msgpack.Decoder.init(out);
    try testing.expectEqual(@as(usize, 3), try d.readMapLen());
    try testing.expectEqualStrings("status", try d.readBytes());
    try testing.expectEqual(@as(i64, 200), try d.readInt());
    try testing.expectEqualStrings("headers", try d.readBytes());
    try testing.expectEqual(@as(usize, 3), try d.readArrayLen());
    const want = [_][2][]const u8{ .{ "set-cookie", "a=1" }, .{ "set-cookie", "b=2" }, .{ "Content-Type", "text/x-test" } };
    for (want) |w| {
        try testing.expectEqual(@as(usize, 2), try d.readArrayLen());
        try testing.expectEqualStrings(w[0], try d.readBytes());
        try testing.expectEqualStrings(w[1], try d.readBytes());
    }
    try testing.expectEqualStrings("body", try d.readBytes());
    try testing.expectEqualStrings("POST /x 3", try d.readBytes());
    try testing.expect(d.atEnd());

    const failed = try serve(gpa, testHandler, "\x81\xa4path\xa5/fail");
    d = msgpack.Decoder.init(failed);
    _ = try d.readMapLen();
    _ = try d.readBytes();
    try testing.expectEqual(@as(i64, 500), try d.readInt());

    const bad = try serve(gpa, testHandler, "\xc1");
    d = msgpack.Decoder.init(bad);
    _ = try d.readMapLen();
    _ = try d.readBytes();
    try testing.expectEqual(@as(i64, 400), try d.readInt());
}

test "response helpers" {
    var arena = std.heap.ArenaAllocator.init(testing.allocator);
    defer arena.deinit();
    var res = Response.init(arena.allocator());
    try res.write("discarded");
    try res.json(201, .{ .ok = true, .n = 3 });
    try testing.expectEqual(@as(u16, 201), res.status);
    try testing.expectEqualStrings("{\"ok\":true,\"n\":3}", res.body.items);
    try res.html(404, "<p>x</p>");
    try testing.expectEqual(@as(usize, 1), res.headers.items.len);
    try testing.expectEqualStrings("text/html; charset=utf-8", res.headers.items[0].value);
    try testing.expectEqualStrings("<p>x</p>", res.body.items);
}
