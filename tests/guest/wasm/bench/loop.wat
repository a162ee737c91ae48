;; Benchmark: a tight counting loop (one add and one compare per iteration), 10^8 iterations.
(module
  (func (export "run") (result i64) (local $n i64) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (local.get $acc) (local.get $n)))
      (local.set $n (i64.add (local.get $n) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $n) (i64.const 100000000))))
    (local.get $acc)))
