;; Hostile: unbounded recursion. wasmtime's stack limit turns it into a `stack overflow` trap
;; (deterministic), not a crash of the runtime.
(module
  (func $down (param $n i64) (result i64)
    (i64.add (call $down (i64.add (local.get $n) (i64.const 1))) (i64.const 1)))
  (func (export "_start") (drop (call $down (i64.const 0)))))
