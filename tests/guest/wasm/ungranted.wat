;; An import the capsule was not granted: exo.fs_read needs a capabilities.filesystem entry, and the
;; capsule declares none. Refused at link time, before the start function (which would log) runs.
(module
  (import "exo" "log" (func $log (param i32 i32)))
  (import "exo" "fs_read" (func $read (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "this never runs")
  (func $first (call $log (i32.const 16) (i32.const 15)))
  (start $first)
  (func (export "_start")
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))
