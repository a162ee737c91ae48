;; A runaway loop: counts forever without a host call. With a fuel budget it traps `out of fuel`
;; (deterministic: failed, not restarted); with a large budget and a deadline it traps at the
;; deadline (epoch interruption).
(module
  (import "exo" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "spinning")
  (func (export "_start") (local $n i64)
    (call $log (i32.const 16) (i32.const 8))
    (loop $forever
      (local.set $n (i64.add (local.get $n) (i64.const 1)))
      (br $forever))))
