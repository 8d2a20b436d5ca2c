//! markdown: POST a Markdown document, get HTML back (`text/html; charset=utf-8`).
//!
//! Blocks: ATX headings `#`..`######`, paragraphs (lines joined with "\n"), fenced code blocks
//! (``` with an optional language → `<pre><code class="language-X">`), unordered lists (`-`, `*`, `+`),
//! ordered lists (`1.`; a first number other than 1 becomes `start="N"`), thematic breaks (`---`,
//! `***`, `___` → `<hr />`). Lists do not nest; a following non-blank line that starts no other
//! block continues the current item (CommonMark's lazy continuation).
//! Inline: `` `code` ``, `**strong**`, `*em*`, `[text](url)` (`javascript:`, `vbscript:` and `data:`
//! URLs become `#`), backslash escapes of ASCII punctuation. Everything else is HTML-escaped
//! (`&`, `<`, `>`, `"`), so raw HTML such as `<script>` comes out as text.
//! Empty body → 400; a method other than POST → 405 with `allow: POST`.
const std = @import("std");
const wasmhost = @import("wasmhost");

comptime {
    wasmhost.exportHandler(handle);
}

fn handle(req: *const wasmhost.Request, res: *wasmhost.Response) !void {
    if (!std.mem.eql(u8, req.method, "POST")) {
        try res.addHeader("allow", "POST");
        return res.text(405, "POST a Markdown document\n");
    }
    if (req.body.len == 0) return res.text(400, "empty body: POST a Markdown document\n");
    try res.setHeader("content-type", "text/html; charset=utf-8");
    try render(wasmhost.allocator, req.body, &res.body);
}

const Out = wasmhost.Buffer;

fn escape(out: *Out, s: []const u8) !void {
    for (s) |c| switch (c) {
        '&' => try out.append("&amp;"),
        '<' => try out.append("&lt;"),
        '>' => try out.append("&gt;"),
        '"' => try out.append("&quot;"),
        else => try out.appendByte(c),
    };
}

const Block = enum { none, paragraph, ul, ol };

const Renderer = struct {
    gpa: std.mem.Allocator,
    out: *Out,
    block: Block = .none,
    /// Text of the open paragraph or list item, lines joined with "\n".
    text: Out,

    fn flushText(self: *Renderer) !void {
        switch (self.block) {
            .none => return,
            .paragraph => {
                try self.out.append("<p>");
                try inline_(self.out, self.text.items);
                try self.out.append("</p>\n");
            },
            .ul, .ol => {
                try self.out.append("<li>");
                try inline_(self.out, self.text.items);
                try self.out.append("</li>\n");
            },
        }
        self.text.clear();
    }

    /// Ends the open paragraph or list.
    fn close(self: *Renderer) !void {
        try self.flushText();
        switch (self.block) {
            .ul => try self.out.append("</ul>\n"),
            .ol => try self.out.append("</ol>\n"),
            else => {},
        }
        self.block = .none;
    }

    fn addText(self: *Renderer, line: []const u8) !void {
        if (self.text.items.len > 0) try self.text.appendByte('\n');
        try self.text.append(std.mem.trim(u8, line, " \t"));
    }
};

fn isBreak(line: []const u8) bool {
    const t = std.mem.trim(u8, line, " \t");
    if (t.len < 3) return false;
    const c = t[0];
    if (c != '-' and c != '*' and c != '_') return false;
    var n: usize = 0;
    for (t) |x| {
        if (x == c) n += 1 else if (x != ' ' and x != '\t') return false;
    }
    return n >= 3;
}

/// `#`..`######` then a space or the end: returns the level.
fn headingLevel(t: []const u8) usize {
    var n: usize = 0;
    while (n < t.len and t[n] == '#') n += 1;
    if (n == 0 or n > 6) return 0;
    if (n < t.len and t[n] != ' ' and t[n] != '\t') return 0;
    return n;
}

/// `- x`, `* x`, `+ x`: returns the item text.
fn bulletItem(t: []const u8) ?[]const u8 {
    if (t.len >= 2 and (t[0] == '-' or t[0] == '*' or t[0] == '+') and (t[1] == ' ' or t[1] == '\t')) return t[2..];
    if (t.len == 1 and (t[0] == '-' or t[0] == '*' or t[0] == '+')) return "";
    return null;
}

/// `12. x` (1-9 digits): returns the number and the item text.
fn orderedItem(t: []const u8) ?struct { n: u32, text: []const u8 } {
    var i: usize = 0;
    while (i < t.len and i < 9 and std.ascii.isDigit(t[i])) i += 1;
    if (i == 0 or i >= t.len or t[i] != '.') return null;
    if (i + 1 < t.len and t[i + 1] != ' ' and t[i + 1] != '\t') return null;
    const n = std.fmt.parseInt(u32, t[0..i], 10) catch return null;
    return .{ .n = n, .text = if (i + 1 < t.len) t[i + 2 ..] else "" };
}

fn fenceStart(t: []const u8) bool {
    return std.mem.startsWith(u8, t, "```");
}

pub fn render(gpa: std.mem.Allocator, src: []const u8, out: *Out) !void {
    var r = Renderer{ .gpa = gpa, .out = out, .text = Out.init(gpa) };
    // A final newline ends the last line; it does not start an empty one.
    const doc = if (std.mem.endsWith(u8, src, "\n")) src[0 .. src.len - 1] else src;
    var lines = std.mem.splitScalar(u8, doc, '\n');
    while (lines.next()) |raw| {
        const line = std.mem.trimEnd(u8, raw, "\r");
        // Up to three spaces of indentation are allowed before a block marker.
        var indent: usize = 0;
        while (indent < line.len and indent < 3 and line[indent] == ' ') indent += 1;
        const t = line[indent..];
        const blank = std.mem.trim(u8, line, " \t").len == 0;

        if (blank) {
            try r.close();
        } else if (fenceStart(t)) {
            try r.close();
            const info = std.mem.trim(u8, t[3..], " \t`");
            try out.append("<pre><code");
            if (info.len > 0) {
                const end = std.mem.indexOfAny(u8, info, " \t") orelse info.len;
                try out.append(" class=\"language-");
                try escape(out, info[0..end]);
                try out.append("\"");
            }
            try out.append(">");
            while (lines.next()) |code_raw| {
                const code = std.mem.trimEnd(u8, code_raw, "\r");
                if (std.mem.startsWith(u8, std.mem.trimStart(u8, code, " "), "```") and
                    std.mem.trim(u8, code, " `").len == 0) break;
                try escape(out, code);
                try out.appendByte('\n');
            }
            try out.append("</code></pre>\n");
        } else if (headingLevel(t) > 0) {
            try r.close();
            const level = headingLevel(t);
            var content = std.mem.trim(u8, t[level..], " \t");
            // An optional closing sequence of #s, preceded by a space (or the whole content).
            const stripped = std.mem.trimEnd(u8, content, "#");
            if (stripped.len == 0) {
                content = stripped;
            } else if (stripped.len < content.len and (stripped[stripped.len - 1] == ' ' or stripped[stripped.len - 1] == '\t')) {
                content = std.mem.trimEnd(u8, stripped, " \t");
            }
            try out.print("<h{d}>", .{level});
            try inline_(out, content);
            try out.print("</h{d}>\n", .{level});
        } else if (isBreak(t)) {
            try r.close();
            try out.append("<hr />\n");
        } else if (bulletItem(t)) |item| {
            if (r.block != .ul) {
                try r.close();
                try out.append("<ul>\n");
                r.block = .ul;
            } else try r.flushText();
            try r.addText(item);
        } else if (orderedItem(t)) |item| {
            if (r.block != .ol) {
                try r.close();
                if (item.n == 1) try out.append("<ol>\n") else try out.print("<ol start=\"{d}\">\n", .{item.n});
                r.block = .ol;
            } else try r.flushText();
            try r.addText(item.text);
        } else {
            if (r.block == .none) r.block = .paragraph;
            try r.addText(line);
        }
    }
    try r.close();
}

/// Index of the closing `delim` for an opening at `from`, skipping code spans and escapes.
/// For "*", a "**" pair is stepped over as a unit (it belongs to a nested strong span).
fn findClose(s: []const u8, from: usize, delim: []const u8) ?usize {
    var i = from;
    while (i < s.len) {
        const c = s[i];
        if (c == '\\' and i + 1 < s.len) {
            i += 2;
        } else if (c == '`') {
            const end = std.mem.indexOfScalarPos(u8, s, i + 1, '`') orelse return null;
            i = end + 1;
        } else if (std.mem.startsWith(u8, s[i..], delim)) {
            if (delim.len == 1 and i + 1 < s.len and s[i + 1] == '*') {
                i += 2;
                continue;
            }
            if (i > from and s[i - 1] != ' ' and s[i - 1] != '\t' and s[i - 1] != '\n') return i;
            i += delim.len;
        } else i += 1;
    }
    return null;
}

fn isPunct(c: u8) bool {
    return (c >= '!' and c <= '/') or (c >= ':' and c <= '@') or (c >= '[' and c <= '`') or (c >= '{' and c <= '~');
}

fn safeUrl(url: []const u8) bool {
    const t = std.mem.trim(u8, url, " \t\n");
    const bad = [_][]const u8{ "javascript:", "vbscript:", "data:" };
    for (bad) |b| {
        if (t.len >= b.len and std.ascii.eqlIgnoreCase(t[0..b.len], b)) return false;
    }
    return true;
}

fn inline_(out: *Out, s: []const u8) error{OutOfMemory}!void {
    var i: usize = 0;
    while (i < s.len) {
        const c = s[i];
        if (c == '\\' and i + 1 < s.len and isPunct(s[i + 1])) {
            try escape(out, s[i + 1 .. i + 2]);
            i += 2;
            continue;
        }
        if (c == '`') {
            if (std.mem.indexOfScalarPos(u8, s, i + 1, '`')) |end| {
                try out.append("<code>");
                try escape(out, s[i + 1 .. end]);
                try out.append("</code>");
                i = end + 1;
                continue;
            }
        }
        if (c == '*') {
            const strong = i + 1 < s.len and s[i + 1] == '*';
            const delim: []const u8 = if (strong) "**" else "*";
            const start = i + delim.len;
            if (start < s.len and s[start] != ' ' and s[start] != '\t' and s[start] != '\n') {
                if (findClose(s, start, delim)) |end| {
                    try out.append(if (strong) "<strong>" else "<em>");
                    try inline_(out, s[start..end]);
                    try out.append(if (strong) "</strong>" else "</em>");
                    i = end + delim.len;
                    continue;
                }
            }
            try out.append(delim);
            i = start;
            continue;
        }
        if (c == '[') {
            if (link(s, i)) |l| {
                try out.append("<a href=\"");
                try escape(out, if (safeUrl(l.url)) std.mem.trim(u8, l.url, " \t\n") else "#");
                try out.append("\">");
                try inline_(out, l.text);
                try out.append("</a>");
                i = l.end;
                continue;
            }
        }
        try escape(out, s[i .. i + 1]);
        i += 1;
    }
}

/// `[text](url)` at `i`: text may not contain `]` (outside code spans), url may not contain `)`.
fn link(s: []const u8, i: usize) ?struct { text: []const u8, url: []const u8, end: usize } {
    var j = i + 1;
    while (j < s.len and s[j] != ']') : (j += 1) {
        if (s[j] == '\\') j += 1 else if (s[j] == '`') j = std.mem.indexOfScalarPos(u8, s, j + 1, '`') orelse return null;
    }
    if (j + 1 >= s.len or s[j + 1] != '(') return null;
    const close = std.mem.indexOfScalarPos(u8, s, j + 2, ')') orelse return null;
    return .{ .text = s[i + 1 .. j], .url = s[j + 2 .. close], .end = close + 1 };
}

fn expectHtml(md: []const u8, want: []const u8) !void {
    var arena = std.heap.ArenaAllocator.init(std.testing.allocator);
    defer arena.deinit();
    var out = Out.init(arena.allocator());
    try render(arena.allocator(), md, &out);
    try std.testing.expectEqualStrings(want, out.items);
}

test "markdown" {
    try expectHtml("# Title\n\nSome *em* and **strong** `a<b`.\n", "<h1>Title</h1>\n<p>Some <em>em</em> and <strong>strong</strong> <code>a&lt;b</code>.</p>\n");
    try expectHtml("- a\n- b\n\n1. x\n2. y\n", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n<ol>\n<li>x</li>\n<li>y</li>\n</ol>\n");
    try expectHtml("```zig\nconst a = \"<x>\";\n```\n", "<pre><code class=\"language-zig\">const a = &quot;&lt;x&gt;&quot;;\n</code></pre>\n");
    try expectHtml("[a **b**](http://x/?a=1&b=2)", "<p><a href=\"http://x/?a=1&amp;b=2\">a <strong>b</strong></a></p>\n");
    try expectHtml("<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n");
    try expectHtml("```\nunterminated\n", "<pre><code>unterminated\n</code></pre>\n");
    try expectHtml("*a **b** c*", "<p><em>a <strong>b</strong> c</em></p>\n");
    try expectHtml("2 * 3 * 4", "<p>2 * 3 * 4</p>\n");
    try expectHtml("[x](javascript:alert(1))", "<p><a href=\"#\">x</a>)</p>\n");
}
