;; Benchmark: FNV-1a (64-bit) over 1 MiB of pseudo-random bytes, 8 times (byte loads, multiplies).
(module
  (memory 17)
  (func (export "run") (result i64) (local $i i32) (local $x i32) (local $h i64) (local $round i32)
    (loop $fill
      (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1664525)) (i32.const 1013904223)))
      (i32.store (local.get $i) (local.get $x))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 1048576))))
    (local.set $h (i64.const 0xcbf29ce484222325))
    (loop $rounds
      (local.set $i (i32.const 0))
      (loop $bytes
        (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load8_u (local.get $i))) (i64.const 0x100000001b3)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $bytes (i32.lt_u (local.get $i) (i32.const 1048576))))
      (local.set $round (i32.add (local.get $round) (i32.const 1)))
      (br_if $rounds (i32.lt_u (local.get $round) (i32.const 8))))
    (local.get $h)))
