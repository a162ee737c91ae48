;; Memory bounds: memory.grow one page at a time until it returns -1 (wasm.memory_max, the
;; store's limit), say how far it got, then load from just past the end of memory: an
;; out-of-bounds access traps (deterministic).
(module
  (import "exo" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "memory.grow returned")
  (data (i32.const 48) "at pages")
  (global $nlen (mut i32) (i32.const 0))
  ;; the decimal text of $v, ending at byte 1000; its length in $nlen
  (func $num (param $v i64) (result i32) (local $p i32) (local $x i64) (local $neg i32)
    (local.set $p (i32.const 1000))
    (local.set $x (local.get $v))
    (if (i64.lt_s (local.get $x) (i64.const 0))
      (then (local.set $neg (i32.const 1)) (local.set $x (i64.sub (i64.const 0) (local.get $x)))))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.wrap_i64 (i64.add (i64.const 48) (i64.rem_u (local.get $x) (i64.const 10)))))
      (local.set $x (i64.div_u (local.get $x) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $x) (i64.const 0))))
    (if (local.get $neg)
      (then (local.set $p (i32.sub (local.get $p) (i32.const 1))) (i32.store8 (local.get $p) (i32.const 45))))
    (global.set $nlen (i32.sub (i32.const 1000) (local.get $p)))
    (local.get $p))
  ;; log "LABEL N" (label at $at, $len bytes), composed at 2000
  (func $say (param $at i32) (param $len i32) (param $v i64) (local $p i32)
    (memory.copy (i32.const 2000) (local.get $at) (local.get $len))
    (i32.store8 (i32.add (i32.const 2000) (local.get $len)) (i32.const 32))
    (local.set $p (call $num (local.get $v)))
    (memory.copy (i32.add (i32.const 2001) (local.get $len)) (local.get $p) (global.get $nlen))
    (call $log (i32.const 2000) (i32.add (i32.add (local.get $len) (i32.const 1)) (global.get $nlen))))
  (func (export "_start") (local $r i32)
    (loop $grow
      (local.set $r (memory.grow (i32.const 1)))
      (br_if $grow (i32.ne (local.get $r) (i32.const -1))))
    (call $say (i32.const 16) (i32.const 20) (i64.extend_i32_s (local.get $r)))
    (call $say (i32.const 48) (i32.const 8) (i64.extend_i32_u (memory.size)))
    (drop (i32.load (i32.mul (memory.size) (i32.const 65536))))))
