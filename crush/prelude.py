"""The prelude: builtins written in CASM, for the work that calls guest code.

A builtin implemented in Python must not call a guest function (a key function, the function
of a map() or filter()): the VM's state between instructions is plain data, never a Python
call in progress. So those builtins return a TailCall to one of these functions, and the guest
code runs in ordinary frames, serialisable at every instruction like the program's own. The
iterator protocol of map, filter and of zip/enumerate over them is here too: FOR_ITER and NEXT
call `<kind>_next`, which raises StopIteration when the iterator is exhausted (FOR_ITER's frame
convention turns that into the end of the loop).

The prelude is an ordinary CASM program, assembled and verified when the VM module loads; its
hash is part of every serialised state (a state saved with one prelude never resumes with
another). Its functions are reachable as builtins named `crush.<name>`.
"""

from __future__ import annotations

from crush.casm import Program, assemble

PRELUDE_TEXT = r"""
.casm 1
.file "<prelude>"

.func "<prelude>" "<prelude>" params=0 defaults=0 ncells=0
    LOAD_CONST None
    RETURN
.end

; list_from(it) -> a new list of the items of any iterable
.func "list_from" "list_from" params=1 defaults=0 ncells=0
  .locals "it" "r"
    BUILD_LIST 0
    STORE_LOCAL 1
    LOAD_LOCAL 0
    GET_ITER
loop:
    FOR_ITER done
    LOAD_LOCAL 1
    SWAP
    CALL_METHOD "append" 1
    POP
    JUMP loop
done:
    LOAD_LOCAL 1
    RETURN
.end

.func "tuple_from" "tuple_from" params=1 defaults=0 ncells=0
  .locals "it"
    LOAD_BUILTIN "py.tuple"
    LOAD_BUILTIN "py.list"
    LOAD_LOCAL 0
    CALL 1
    CALL 1
    RETURN
.end

; sorted_key(iterable, key, reverse): sorted() with a key function (or over a map/filter)
.func "sorted_key" "sorted_key" params=3 defaults=0 ncells=0
  .locals "it" "key" "reverse" "items" "keys" "x"
    LOAD_BUILTIN "py.list"
    LOAD_LOCAL 0
    CALL 1
    STORE_LOCAL 3
    LOAD_LOCAL 1
    LOAD_CONST None
    IS
    JUMP_IF_FALSE keyed
    LOAD_BUILTIN "crush.sort_by_keys"
    LOAD_LOCAL 3
    LOAD_CONST None
    LOAD_LOCAL 2
    CALL 3
    POP
    LOAD_LOCAL 3
    RETURN
keyed:
    LOAD_BUILTIN "crush.list_sort_key"
    LOAD_LOCAL 3
    LOAD_LOCAL 1
    LOAD_LOCAL 2
    CALL 3
    POP
    LOAD_LOCAL 3
    RETURN
.end

; list_sort_key(list, key, reverse): compute every key in order, then sort by them (list.sort(key=))
.func "list_sort_key" "list_sort_key" params=3 defaults=0 ncells=0
  .locals "items" "key" "reverse" "keys" "x"
    BUILD_LIST 0
    STORE_LOCAL 3
    LOAD_LOCAL 0
    GET_ITER
loop:
    FOR_ITER done
    STORE_LOCAL 4
    LOAD_LOCAL 3
    LOAD_LOCAL 1
    LOAD_LOCAL 4
    CALL 1
    CALL_METHOD "append" 1
    POP
    JUMP loop
done:
    LOAD_BUILTIN "crush.sort_by_keys"
    LOAD_LOCAL 0
    LOAD_LOCAL 3
    LOAD_LOCAL 2
    CALL 3
    RETURN
.end

; minmax(source, key, default, has_default, is_max): min()/max() with a key or over a map/filter
.func "minmax" "minmax" params=5 defaults=0 ncells=0
  .locals "source" "key" "default" "has_default" "is_max" "best" "bestkey" "item" "k" "found"
    LOAD_CONST False
    STORE_LOCAL 9
    LOAD_LOCAL 0
    GET_ITER
loop:
    FOR_ITER done
    STORE_LOCAL 7
    LOAD_LOCAL 1
    LOAD_CONST None
    IS
    JUMP_IF_TRUE nokey
    LOAD_LOCAL 1
    LOAD_LOCAL 7
    CALL 1
    STORE_LOCAL 8
    JUMP have
nokey:
    LOAD_LOCAL 7
    STORE_LOCAL 8
have:
    LOAD_LOCAL 9
    JUMP_IF_FALSE take
    LOAD_LOCAL 4
    JUMP_IF_FALSE ismin
    LOAD_LOCAL 8
    LOAD_LOCAL 6
    GT
    JUMP_IF_FALSE loop
    JUMP take
ismin:
    LOAD_LOCAL 8
    LOAD_LOCAL 6
    LT
    JUMP_IF_FALSE loop
take:
    LOAD_LOCAL 7
    STORE_LOCAL 5
    LOAD_LOCAL 8
    STORE_LOCAL 6
    LOAD_CONST True
    STORE_LOCAL 9
    JUMP loop
done:
    LOAD_LOCAL 9
    JUMP_IF_FALSE empty
    LOAD_LOCAL 5
    RETURN
empty:
    LOAD_LOCAL 3
    JUMP_IF_FALSE fail
    LOAD_LOCAL 2
    RETURN
fail:
    LOAD_BUILTIN "crush.empty_error"
    LOAD_LOCAL 4
    CALL 1
    RAISE
.end

.func "sum_from" "sum_from" params=2 defaults=0 ncells=0
  .locals "it" "start" "acc" "x"
    LOAD_LOCAL 1
    STORE_LOCAL 2
    LOAD_LOCAL 0
    GET_ITER
loop:
    FOR_ITER done
    STORE_LOCAL 3
    LOAD_LOCAL 2
    LOAD_LOCAL 3
    ADD
    STORE_LOCAL 2
    JUMP loop
done:
    LOAD_LOCAL 2
    RETURN
.end

.func "any_from" "any_from" params=1 defaults=0 ncells=0
  .locals "it"
    LOAD_LOCAL 0
    GET_ITER
loop:
    FOR_ITER done
    JUMP_IF_FALSE loop
    LOAD_CONST True
    RETURN
done:
    LOAD_CONST False
    RETURN
.end

.func "all_from" "all_from" params=1 defaults=0 ncells=0
  .locals "it"
    LOAD_LOCAL 0
    GET_ITER
loop:
    FOR_ITER done
    JUMP_IF_TRUE loop
    LOAD_CONST False
    RETURN
done:
    LOAD_CONST True
    RETURN
.end

; dict_update(d, iterable, kwargs): dict.update / dict() from an iterable of pairs
.func "dict_update" "dict_update" params=3 defaults=0 ncells=0
  .locals "d" "it" "kwargs" "i"
    LOAD_CONST 0
    STORE_LOCAL 3
    LOAD_LOCAL 1
    GET_ITER
loop:
    FOR_ITER done
    LOAD_BUILTIN "crush.dict_add_pair"
    SWAP
    LOAD_LOCAL 0
    SWAP
    LOAD_LOCAL 3
    CALL 3
    POP
    LOAD_LOCAL 3
    LOAD_CONST 1
    ADD
    STORE_LOCAL 3
    JUMP loop
done:
    LOAD_BUILTIN "crush.kwargs_update"
    LOAD_LOCAL 0
    LOAD_LOCAL 2
    CALL 2
    RETURN
.end

.func "dict_from" "dict_from" params=2 defaults=0 ncells=0
  .locals "it" "kwargs" "d"
    BUILD_DICT 0
    STORE_LOCAL 2
    LOAD_BUILTIN "crush.dict_update"
    LOAD_LOCAL 2
    LOAD_LOCAL 0
    LOAD_LOCAL 1
    CALL 3
    POP
    LOAD_LOCAL 2
    RETURN
.end

.func "dict_ior" "dict_ior" params=2 defaults=0 ncells=0
  .locals "d" "it"
    LOAD_BUILTIN "crush.dict_update"
    LOAD_LOCAL 0
    LOAD_LOCAL 1
    BUILD_DICT 0
    CALL 3
    POP
    LOAD_LOCAL 0
    RETURN
.end

.func "fromkeys_from" "fromkeys_from" params=2 defaults=0 ncells=0
  .locals "it" "value"
    LOAD_BUILTIN "py.dict"
    LOAD_BUILTIN "py.list"
    LOAD_LOCAL 0
    CALL 1
    LOAD_LOCAL 1
    CALL_METHOD "fromkeys" 2
    RETURN
.end

.func "list_extend" "list_extend" params=2 defaults=0 ncells=0
  .locals "items" "it"
    LOAD_LOCAL 1
    GET_ITER
loop:
    FOR_ITER done
    LOAD_LOCAL 0
    SWAP
    CALL_METHOD "append" 1
    POP
    JUMP loop
done:
    LOAD_CONST None
    RETURN
.end

.func "list_iadd" "list_iadd" params=2 defaults=0 ncells=0
  .locals "items" "it"
    LOAD_BUILTIN "crush.list_extend"
    LOAD_LOCAL 0
    LOAD_LOCAL 1
    CALL 2
    POP
    LOAD_LOCAL 0
    RETURN
.end

.func "join_from" "join_from" params=2 defaults=0 ncells=0
  .locals "sep" "it"
    LOAD_LOCAL 0
    LOAD_BUILTIN "py.list"
    LOAD_LOCAL 1
    CALL 1
    CALL_METHOD "join" 1
    RETURN
.end

; contains(it, x): x in it, for a map/filter iterator (consumes up to the first match)
.func "contains" "contains" params=2 defaults=0 ncells=0
  .locals "it" "x" "v"
    LOAD_LOCAL 0
    GET_ITER
loop:
    FOR_ITER done
    STORE_LOCAL 2
    LOAD_LOCAL 2
    LOAD_LOCAL 1
    IS
    JUMP_IF_TRUE yes
    LOAD_LOCAL 2
    LOAD_LOCAL 1
    EQ
    JUMP_IF_TRUE yes
    JUMP loop
yes:
    LOAD_CONST True
    RETURN
done:
    LOAD_CONST False
    RETURN
.end

.func "not_contains" "not_contains" params=2 defaults=0 ncells=0
  .locals "it" "x"
    LOAD_BUILTIN "crush.contains"
    LOAD_LOCAL 0
    LOAD_LOCAL 1
    CALL 2
    NOT
    RETURN
.end

; unpack_list(it, n): exactly n items of a map/filter iterator as a list (UNPACK then retries)
.func "unpack_list" "unpack_list" params=2 defaults=0 ncells=0
  .locals "it" "n" "r" "v"
    BUILD_LIST 0
    STORE_LOCAL 2
    LOAD_LOCAL 0
    GET_ITER
loop:
    FOR_ITER done
    STORE_LOCAL 3
    LOAD_BUILTIN "py.len"
    LOAD_LOCAL 2
    CALL 1
    LOAD_LOCAL 1
    EQ
    JUMP_IF_TRUE toomany
    LOAD_LOCAL 2
    LOAD_LOCAL 3
    CALL_METHOD "append" 1
    POP
    JUMP loop
toomany:
    LOAD_BUILTIN "crush.unpack_error"
    LOAD_LOCAL 1
    LOAD_LOCAL 1
    LOAD_CONST 1
    ADD
    CALL 2
    RAISE
done:
    LOAD_BUILTIN "py.len"
    LOAD_LOCAL 2
    CALL 1
    LOAD_LOCAL 1
    EQ
    JUMP_IF_FALSE few
    LOAD_LOCAL 2
    RETURN
few:
    LOAD_BUILTIN "crush.unpack_error"
    LOAD_LOCAL 1
    LOAD_BUILTIN "py.len"
    LOAD_LOCAL 2
    CALL 1
    CALL 2
    RAISE
.end

; map_next(it): the next item of map(fn, *iterators)
.func "map_next" "map_next" params=1 defaults=0 ncells=0
  .locals "it" "fn" "children" "args" "v"
    LOAD_BUILTIN "crush.iter_parts"
    LOAD_LOCAL 0
    CALL 1
    UNPACK 2
    STORE_LOCAL 1
    STORE_LOCAL 2
    BUILD_LIST 0
    STORE_LOCAL 3
    LOAD_LOCAL 2
    GET_ITER
loop:
    FOR_ITER done
    NEXT
    STORE_LOCAL 4
    LOAD_LOCAL 3
    LOAD_LOCAL 4
    CALL_METHOD "append" 1
    POP
    JUMP loop
done:
    LOAD_BUILTIN "crush.apply"
    LOAD_LOCAL 1
    LOAD_LOCAL 3
    CALL 2
    RETURN
.end

; filter_next(it): the next item of filter(fn, iterator) for which fn (or truth) holds
.func "filter_next" "filter_next" params=1 defaults=0 ncells=0
  .locals "it" "fn" "child" "v"
    LOAD_BUILTIN "crush.iter_parts"
    LOAD_LOCAL 0
    CALL 1
    UNPACK 2
    STORE_LOCAL 1
    STORE_LOCAL 2
loop:
    LOAD_LOCAL 2
    NEXT
    STORE_LOCAL 3
    LOAD_LOCAL 1
    LOAD_CONST None
    IS
    JUMP_IF_FALSE call
    LOAD_LOCAL 3
    JUMP_IF_TRUE yes
    JUMP loop
call:
    LOAD_LOCAL 1
    LOAD_LOCAL 3
    CALL 1
    JUMP_IF_TRUE yes
    JUMP loop
yes:
    LOAD_LOCAL 3
    RETURN
.end

; zip_next(it): a tuple of the next item of each iterator (StopIteration at the first exhausted)
.func "zip_next" "zip_next" params=1 defaults=0 ncells=0
  .locals "it" "children" "items"
    LOAD_BUILTIN "crush.iter_parts"
    LOAD_LOCAL 0
    CALL 1
    UNPACK 1
    STORE_LOCAL 1
    LOAD_LOCAL 1
    JUMP_IF_TRUE go
    LOAD_BUILTIN "crush.stop_iteration"
    CALL 0
    RAISE
go:
    BUILD_LIST 0
    STORE_LOCAL 2
    LOAD_LOCAL 1
    GET_ITER
loop:
    FOR_ITER done
    NEXT
    LOAD_LOCAL 2
    SWAP
    CALL_METHOD "append" 1
    POP
    JUMP loop
done:
    LOAD_BUILTIN "py.tuple"
    LOAD_LOCAL 2
    CALL 1
    RETURN
.end

; enumerate_next(it): (count, next item of the iterator)
.func "enumerate_next" "enumerate_next" params=1 defaults=0 ncells=0
  .locals "it" "v"
    LOAD_BUILTIN "crush.iter_parts"
    LOAD_LOCAL 0
    CALL 1
    UNPACK 1
    NEXT
    STORE_LOCAL 1
    LOAD_BUILTIN "crush.enum_count"
    LOAD_LOCAL 0
    CALL 1
    LOAD_LOCAL 1
    BUILD_TUPLE 2
    RETURN
.end
"""

PRELUDE: Program = assemble(PRELUDE_TEXT)
NAMES: tuple[str, ...] = tuple(fn.name for fn in PRELUDE.funcs[1:])
