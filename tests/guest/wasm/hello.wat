;; The hello capsule of the test image: one line to the capsule log through the import table's
;; diagnostic sink (exo.log), then a clean return (a oneshot capsule: `exited 0`).
(module
  (import "exo" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wasm")
  (func (export "_start")
    (call $log (i32.const 16) (i32.const 15))))
