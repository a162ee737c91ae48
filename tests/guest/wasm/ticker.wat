;; A long-running WebAssembly service: a line and a 100 ms sleep, forever. Its fuel and memory
;; figures reach `exoctl status` from its host calls; a deadline stops it while it sleeps.
(module
  (import "exo" "log" (func $log (param i32 i32)))
  (import "exo" "sleep_ms" (func $sleep (param i64)))
  (memory (export "memory") 2)
  (data (i32.const 16) "tick")
  (func (export "_start")
    (loop $forever
      (call $log (i32.const 16) (i32.const 4))
      (call $sleep (i64.const 100))
      (br $forever))))
