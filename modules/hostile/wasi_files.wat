;; hostile/wasi_files.wat -- a WAGI program that tries to reach the host's files.
;;
;; Interface: wagi; imports fd_prestat_get, path_open, fd_readdir,
;; path_filestat_get, fd_read and fd_write from wasi_snapshot_preview1.
;; Expected outcome: success (200) at invoke, and every attempt fails INSIDE
;; the guest with a WASI errno (never 0): there are no preopened directories,
;; so fd 3 and up are EBADF (8), and stdin/stdout are not directories.
;; No byte of a host file may appear in the output.
;;
;; `_start` prints "Content-Type: text/plain\n\n", then one line
;; "<what>=<errno>\n" per attempt (errno in decimal):
;;   prestat3..prestat9   fd_prestat_get(fd)             (would name a preopen)
;;   open3 / open4        path_open(fd, "etc/passwd")    (relative to a would-be preopen)
;;   open0 / open1        path_open(0 or 1, "/etc/passwd")
;;   dotdot3              path_open(3, "../../../../etc/passwd")
;;   readdir3 / readdir0  fd_readdir(fd, ...)            (list a directory)
;;   stat3                path_filestat_get(3, "etc")
;;   read5 / read9        fd_read(fd) on fds the host process may have open
;; and, if any open ever succeeded, "LEAK" plus what it read.
;;
;; Memory layout: [0, 8) iovec, [8, 12) nwritten/nread/opened fd,
;; [16, 24) bufused/cookie scratch, [64, 128) strings, [256, 272) number
;; buffer, [1024, 5120) read/readdir buffer.
(module
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $pstat (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain\0a\0a")     ;; 64, 26 bytes
  (data (i32.const 96) "etc/passwd")                         ;; 96, 10
  (data (i32.const 112) "/etc/passwd")                       ;; 112, 11
  (data (i32.const 128) "../../../../etc/passwd")            ;; 128, 22
  (data (i32.const 160) "LEAK\0a")                           ;; 160, 5
  (data (i32.const 176) "prestatopenreadreaddirstatdotdot") ;; 176: prestat(7) open(4) read(4) readdir(7) stat(4) dotdot(6)

  (func $out (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; "<label><fd>=<errno>\n"
  (func $report (param $label i32) (param $llen i32) (param $fd i32) (param $errno i32)
    (local $p i32)
    (call $out (local.get $label) (local.get $llen))
    (i32.store8 (i32.const 256) (i32.add (i32.const 48) (local.get $fd)))
    (i32.store8 (i32.const 257) (i32.const 61))
    ;; errno < 1000: three digits, leading zeros skipped
    (local.set $p (i32.const 258))
    (if (i32.ge_u (local.get $errno) (i32.const 100)) (then
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.div_u (local.get $errno) (i32.const 100))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))))
    (if (i32.ge_u (local.get $errno) (i32.const 10)) (then
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $errno) (i32.const 10)) (i32.const 10))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))))
    (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $errno) (i32.const 10))))
    (i32.store8 (i32.add (local.get $p) (i32.const 1)) (i32.const 10))
    (call $out (i32.const 256) (i32.sub (i32.add (local.get $p) (i32.const 2)) (i32.const 256))))

  ;; path_open(dirfd, path) read-only; on success print LEAK and read from the fd
  (func $try_open (param $label i32) (param $llen i32) (param $dirfd i32) (param $path i32) (param $plen i32)
    (local $errno i32)
    (local.set $errno (call $open (local.get $dirfd) (i32.const 1) (local.get $path) (local.get $plen)
                                  (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 8)))
    (call $report (local.get $label) (local.get $llen) (local.get $dirfd) (local.get $errno))
    (if (i32.eqz (local.get $errno)) (then (call $leak (i32.load (i32.const 8))))))

  (func $leak (param $fd i32)
    (call $out (i32.const 160) (i32.const 5))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (if (i32.eqz (call $read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
      (then (call $out (i32.const 1024) (i32.load (i32.const 8))))))

  (func $try_read (param $fd i32)
    (local $errno i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (local.set $errno (call $read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $report (i32.const 187) (i32.const 4) (local.get $fd) (local.get $errno))
    (if (i32.eqz (local.get $errno)) (then
      (call $out (i32.const 160) (i32.const 5))
      (call $out (i32.const 1024) (i32.load (i32.const 8))))))

  (func $try_readdir (param $fd i32)
    (local $errno i32)
    (local.set $errno (call $readdir (local.get $fd) (i32.const 1024) (i32.const 4096) (i64.const 0) (i32.const 16)))
    (call $report (i32.const 191) (i32.const 7) (local.get $fd) (local.get $errno))
    (if (i32.eqz (local.get $errno)) (then
      (call $out (i32.const 160) (i32.const 5))
      (call $out (i32.const 1024) (i32.load (i32.const 16))))))

  (func (export "_start")
    (local $fd i32)
    (call $out (i32.const 64) (i32.const 26))
    (local.set $fd (i32.const 3))
    (loop $pre
      (call $report (i32.const 176) (i32.const 7) (local.get $fd) (call $prestat (local.get $fd) (i32.const 16)))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $pre (i32.le_u (local.get $fd) (i32.const 9))))
    (call $try_open (i32.const 183) (i32.const 4) (i32.const 3) (i32.const 96) (i32.const 10))
    (call $try_open (i32.const 183) (i32.const 4) (i32.const 4) (i32.const 96) (i32.const 10))
    (call $try_open (i32.const 183) (i32.const 4) (i32.const 0) (i32.const 112) (i32.const 11))
    (call $try_open (i32.const 183) (i32.const 4) (i32.const 1) (i32.const 112) (i32.const 11))
    (call $try_open (i32.const 202) (i32.const 6) (i32.const 3) (i32.const 128) (i32.const 22))
    (call $try_readdir (i32.const 3))
    (call $try_readdir (i32.const 0))
    (call $report (i32.const 198) (i32.const 4) (i32.const 3)
      (call $pstat (i32.const 3) (i32.const 1) (i32.const 96) (i32.const 3) (i32.const 1024)))
    (call $try_read (i32.const 5))
    (call $try_read (i32.const 9)))
)
