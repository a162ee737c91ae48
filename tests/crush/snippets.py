"""Small programs that each pin down a point of Python semantics, shared by the walker's tests (run
through the reference evaluator, tests/crush/cast_eval.py) and the differential tests (run by the
VM in both modes): both must print what CPython prints."""

from __future__ import annotations

SNIPPETS: dict[str, str] = {
    "chain evaluates middles once": "calls = []\ndef v(x):\n    calls.append(x)\n    return x\n"
                                    "print(v(1) < v(2) < v(0) < v(9), calls)\nprint(0 < v(5) <= 5 == v(5), calls)\n",
    "augmented subscript evaluates once": "a = [0, 0, 0]\ni = 0\ndef f():\n    global i\n    i = 2\n    return 5\n"
                                          "a[i] += f()\nprint(a, i)\n",
    "assignment evaluates the value first": "d = {}\nk = 0\ndef f():\n    global k\n    k = 1\n    return 'v'\n"
                                            "d[k] = f()\nprint(d)\n",
    "dict comprehension key before value": "log = []\ndef v(x):\n    log.append(x)\n    return x\n"
                                           "print({v(k): v(-k) for k in range(3)}, log)\n",
    "in-place list operators keep identity": "a = [1]\nb = a\na += [2]\na *= 2\nd = {1: 1}\ne = d\nd |= {2: 2}\n"
                                             "b.append(3)\ne[3] = 3\nprint(a, b, d, e)\n",
    "try else finally order": "def g(n):\n    try:\n        r = 10 // n\n    except ZeroDivisionError:\n"
                              "        return 'zero'\n    else:\n        return r\n    finally:\n"
                              "        print('fin', n)\nprint(g(0), g(5))\n",
    "handler tuple then a later clause": "try:\n    raise KeyError('k')\nexcept (ValueError, IndexError):\n"
                                         "    print('no')\nexcept LookupError as e:\n    print('lookup', repr(e))\n",
    "nested handlers rebinding a name": "try:\n    raise ValueError('a')\nexcept ValueError as e:\n    print(e)\n"
                                        "    try:\n        raise KeyError('b')\n    except KeyError as e:\n"
                                        "        print(repr(e))\n",
    "loop else with nested break": "for i in range(3):\n    for j in range(3):\n        if j == 1:\n            break\n"
                                   "    else:\n        print('never')\nelse:\n    print('done', i, j)\n",
    "late binding closures": "fs = [lambda: i for i in range(3)]\ngs = [lambda i=i: i for i in range(3)]\n"
                             "print([f() for f in fs], [g() for g in gs])\n",
    "nonlocal and comprehension scope": "def f():\n    n = 0\n    def inc():\n        nonlocal n\n        n += 1\n"
                                        "    inc()\n    inc()\n    return n, [n for n in range(2)], n\nprint(f())\n",
    "unbound local": "x = 1\ndef f():\n    print(x)\n    x = 2\ntry:\n    f()\nexcept UnboundLocalError as e:\n"
                     "    print('unbound', e)\n",
    "name error": "try:\n    print(undefined_name)\nexcept NameError as e:\n    print(e)\n",
    "raise a class": "try:\n    raise ValueError\nexcept ValueError as e:\n    print(repr(e))\n",
    "generator expression consumers": "print(sorted(c for c in 'hello'), '-'.join(c.upper() for c in 'abc'), "
                                      "tuple(x * 2 for x in range(3)), list(x for x in 'ab'))\n",
    "main guard": "if __name__ == '__main__':\n    print(__name__, __debug__)\n",
    "annotations": "z: int = 4\ndef ann(a: int, b: 'str' = 's') -> list[int]:\n    y: float\n    y = 1.5\n"
                   "    return [a, b, y, z]\nprint(ann(1))\n",
    "uncaught exception": "print('before')\nraise KeyError('gone')\n",
    "unicode names": "ﬁ = 1\nprint(fi)\n",
    "a global declaration in an intermediate function": (
        "x = 'global'\n"
        "def outer():\n"
        "    x = 'outer'\n"
        "    def middle():\n"
        "        global x\n"
        "        def inner():\n"
        "            return x\n"
        "        return inner()\n"
        "    return middle()\n"
        "print(outer())\n"),
    "local names shadow builtins, comprehensions have their own scope": (
        "def f():\n"
        "    len = lambda s: 0\n"
        "    return [len(c) for c in 'ab'], [len for len in range(2)], len('x')\n"
        "print(f())\n"
        "x = 5\n"
        "print([x for x in range(3)], x)\n"),
    "targets: subscripts in for, tuple keys in del, chained aliasing": (
        "a = [0, 0]\n"
        "for a[0] in range(3):\n"
        "    print(a)\n"
        "d = {(1, 2): 't', 3: 'x'}\n"
        "del d[1, 2]\n"
        "print(d)\n"
        "p = q = []\n"
        "p.append(1)\n"
        "print(q)\n"
        "r, s = s, r = 1, 2\n"
        "print(r, s)\n"),
    "f-string = with specs and conversions": "n = 42\nprint(f'{n=:>5}|{n = !s:<4}|{n!r:^6}')\n",
    "bare raise in a function called from a handler": (
        "def reraiser():\n"
        "    raise\n"
        "try:\n"
        "    try:\n"
        "        raise ValueError('inner')\n"
        "    except ValueError:\n"
        "        reraiser()\n"
        "except ValueError as e:\n"
        "    print('re-raised', e)\n"),
    "defaults, closures, recursion depth": (
        "def gen_defaults(k=[i * i for i in range(4)], m=lambda z=2: z * 3):\n"
        "    return k, m()\n"
        "print(gen_defaults())\n"
        "def counter():\n"
        "    count = 0\n"
        "    def inc(by=1):\n"
        "        nonlocal count\n"
        "        count += by\n"
        "        return count\n"
        "    return inc\n"
        "c1, c2 = counter(), counter()\n"
        "print(c1(), c1(5), c2(), c1())\n"
        "def deep(n):\n"
        "    return n if n < 1 else deep(n - 1) + 1\n"
        "print(deep(200))\n"),
    "builtins and methods": (
        "print(sorted({'b': 1, 'a': 2}.items(), key=lambda kv: kv[1]), list(reversed([1, 2, 3])), "
        "list(map(abs, [-1, 2])))\n"
        "print(round(2.675, 2), divmod(-7, 2), hex(-255), bin(5), chr(65) + chr(0x1F600), ord('€'))\n"
        "t = (1, [2, 3])\n"
        "t[1].append(4)\n"
        "print(t, t[1:], (1,) * 3, [[0] * 2] * 2)\n"
        "s = 'a,b;c d'\n"
        "print(s.split(','), s.replace(';', ' ').split(), s.find(';'))\n"
        "print(isinstance(3, int), isinstance(True, int), isinstance('x', (int, str)), bool([]), bool([0]))\n"
        "print(any([v > 2 for v in [1, 3]]), all([]), min([3, 1, 2]), max('abc'))\n"
        "w = {}\n"
        "w.setdefault('k', []).append(1)\n"
        "w['k'] += [2]\n"
        "print(w, w.get('z'), list(w.keys()), list(w.values()), len(w))\n"),
    "negative base to a fractional power": "print((-8) ** (1 / 3), (-2.0) ** 0.5)\n",
    "error messages: operators": (
        'def show(thunk):\n'
        '    try:\n'
        '        print("ok", thunk())\n'
        '    except Exception as e:\n'
        '        print(repr(e))\n'
        'show(lambda: 1 + "a")\n'
        'show(lambda: "a" + 1)\n'
        'show(lambda: 1 / 0)\n'
        'show(lambda: 1 // 0)\n'
        'show(lambda: 1 % 0)\n'
        'show(lambda: 1.5 / 0)\n'
        'show(lambda: 1.5 // 0.0)\n'
        'show(lambda: divmod(1, 0))\n'
        'show(lambda: 1 < "a")\n'
        'show(lambda: [1] < [None])\n'
        'show(lambda: "a" * 2.5)\n'
        'show(lambda: -"a")\n'
        'show(lambda: ~1.5)\n'
        'show(lambda: 1 << -1)\n'
        'show(lambda: 2 ** -1.5)\n'
        'show(lambda: 10 ** 400 * 1.0)\n'),
    "error messages: lookups": (
        'def show(thunk):\n'
        '    try:\n'
        '        print("ok", thunk())\n'
        '    except Exception as e:\n'
        '        print(repr(e))\n'
        'show(lambda: [1][5])\n'
        'show(lambda: (1, 2)[-3])\n'
        'show(lambda: "abc"[10])\n'
        'show(lambda: {}["k"])\n'
        'show(lambda: {1: 2}[(1, 2)])\n'
        'show(lambda: {[1]: 2})\n'
        'show(lambda: undefined_thing)\n'
        'show(lambda: [1, 2].index(3))\n'
        'show(lambda: [1, 2].remove(3))\n'
        'show(lambda: [].pop())\n'
        'show(lambda: {}.pop("x"))\n'
        'show(lambda: range(5)[2])\n'
        'show(lambda: [1, 2, 3][::0])\n'),
    "error messages: calls": (
        'def show(thunk):\n'
        '    try:\n'
        '        print("ok", thunk())\n'
        '    except Exception as e:\n'
        '        print(repr(e))\n'
        'def f(a, b=2):\n'
        '    return a + b\n'
        'show(lambda: f())\n'
        'show(lambda: f(1, 2, 3))\n'
        'show(lambda: f(1, z=3))\n'
        'show(lambda: f(1, a=3))\n'
        'show(lambda: [5][0](1))\n'
        'show(lambda: "abc".foo())\n'
        'show(lambda: (1).bar())\n'
        'show(lambda: len(5))\n'
        'show(lambda: isinstance(1, 5))\n'),
    "error messages: conversions": (
        'def show(thunk):\n'
        '    try:\n'
        '        print("ok", thunk())\n'
        '    except Exception as e:\n'
        '        print(repr(e))\n'
        'show(lambda: int("x"))\n'
        'show(lambda: int("12", 2))\n'
        'show(lambda: float("abc"))\n'
        'show(lambda: float(10 ** 400))\n'
        'show(lambda: int(float("inf")))\n'
        'show(lambda: int(float("nan")))\n'
        'show(lambda: chr(-1))\n'
        'show(lambda: ord("ab"))\n'
        'show(lambda: str(10 ** 5000))\n'
        'show(lambda: hex(1.5))\n'
        'show(lambda: int("  -0012  "))\n'
        'show(lambda: int("1e3"))\n'
        'show(lambda: float("  1e3  "))\n'
        'show(lambda: bool("False"))\n'
        'show(lambda: list(5))\n'
        'show(lambda: dict([1, 2]))\n'
        'show(lambda: dict([(1, 2), (3, 4)]))\n'),
    "error messages: builtins and methods": (
        'def show(thunk):\n'
        '    try:\n'
        '        print("ok", thunk())\n'
        '    except Exception as e:\n'
        '        print(repr(e))\n'
        'show(lambda: max([]))\n'
        'show(lambda: min(1))\n'
        'show(lambda: sum(["a", "b"]))\n'
        'show(lambda: sum([[1], [2]], []))\n'
        'show(lambda: "x".join([1, 2]))\n'
        'show(lambda: "{} {}".format(1))\n'
        'show(lambda: "%d" % "x")\n'
        'show(lambda: round(1.5))\n'
        'show(lambda: round(2.5, None))\n'
        'show(lambda: abs("x"))\n'
        'show(lambda: tuple("ab") + [1])\n'
        'show(lambda: range(0, 10, 0))\n'
        'show(lambda: list(range(10, 0, -3)))\n'
        'show(lambda: "é".upper())\n'
        'show(lambda: "abc".split(""))\n'
        'show(lambda: "a b".split(None, 1))\n'
        'show(lambda: "%5.2f|%-4d|%s|%r|%x" % (3.14159, 7, "s", "r", 255))\n'
        'show(lambda: "{:>{}}".format("x", 4))\n'
        'show(lambda: f"{\'x\':{\'>\'}{4}}")\n'
        'show(lambda: sorted([1, "a"]))\n'),
    "percent and format-spec formatting": (
        'print("%s|%5s|%-5s|%05d|%+d|%x|%X|%o|%e|%.3g|%%|%c" % ("a", "b", "c", 42, 7, 255, 255, 8, '
        '12345.678, 0.000123456, 65))\n'
        'print("%(a)s-%(b)d" % {"a": "x", "b": 3}, "%r" % ("q",), "%.2f%%" % 99.567)\n'
        'print(f"{1234567.891:,.2f} {0.000123:.2e} {123.456:g} {1e20:g} {1.5:08.3f} {-1.5:=+8.2f} '
        '{42:^#10x} {3:*<5}")\n'
        'print(f"{\'abc\':.2} {\'abc\':>5.1} {12:b} {12:#b} {-12:o} {255:_x} {1234567:_} {0.5:%} {2/3:.3%}")\n'),
    "float repr, rounding, conversions": (
        'print(1e22, 1e16, 1e-5, 0.1 + 0.7, 1 / 3, 2 ** 0.5, 1e-320, float("1e308") * 10, -0.0, 0.0 == -0.0)\n'
        'print(round(0.5), round(1.5), round(-0.5), round(2.5), round(1.25, 1), round(1.35, 1), round(123.456, -1))\n'
        'print(int(3.9), int(-3.9), int("0b101", 0), int("0o17", 0), int("0x1f", 0), float(" 3.5 "), float("-0"))\n'),
    "string methods": (
        's = "Hello World, it\'s me\\tthere\\nnext\\r\\nlast"\n'
        'print(s.splitlines(), s.splitlines(True), s.rsplit(" ", 1), s.title(), s.expandtabs(4))\n'
        'print("  x  ".strip(), "xxhixx".strip("x"), "a-b-c".rsplit("-", 1), "abc".center(9, "-"), "ab".zfill(5))\n'
        'print("abcabc".find("c", 3), "abcabc".rfind("c", 0, 4), "abcabc".index("b", 2), "abcabc".count("a", 1))\n'
        'print("A1b2".isalnum(), "".isalpha(), "Title Case".istitle(), "UP".isupper(), "٣".isdigit(), '
        '"½".isnumeric())\n'
        'print("a".join("xyz"), ",".join([]), "x".ljust(3) + "|", len("é"))\n'),
    "list methods": (
        'nums = [5, 3, 8, 1, 9, 2]\n'
        'nums.sort()\n'
        'print(nums)\n'
        'nums.sort(reverse=True)\n'
        'print(nums)\n'
        'pairs = [("b", 2), ("a", 2), ("c", 1)]\n'
        'pairs.sort(key=lambda p: p[1])\n'
        'print(pairs)\n'
        'nums.insert(-1, 99)\n'
        'nums.insert(100, 7)\n'
        'nums.insert(-100, 0)\n'
        'print(nums, nums.count(99), nums.index(99, 2))\n'
        'nums.extend("ab")\n'
        'print(nums, nums.copy() == nums, nums.pop(0), nums.pop(-2))\n'
        'nums.reverse()\n'
        'print(nums)\n'
        'nums.clear()\n'
        'print(nums)\n'),
    "dict methods": (
        'd = dict(a=1, b=2)\n'
        'd.update({"c": 3}, d=4)\n'
        'print(d, d.popitem(), d, {1: "x"}.items())\n'
        'print(list(d.items()), sorted(d), d.pop("zz", "default"), "a" in d, 1 in d.values())\n'),
    "nested unpacking in for, recursion limit": (
        'for i, (a, (b, c)) in enumerate([(1, (2, 3)), (4, (5, 6))]):\n'
        '    print(i, a, b, c)\n'
        'def deep(n):\n'
        '    return 0 if n == 0 else 1 + deep(n - 1)\n'
        'print(deep(900))\n'
        'try:\n'
        '    deep(100000)\n'
        'except RecursionError as e:\n'
        '    print("recursion", e)\n'),
    "builtins on numbers and sequences, unicode case": (
        'print(list(zip([1, 2, 3], "ab")), list(enumerate([], 5)), list(range(-5, 5, 3)), range(3) == range(3))\n'
        'print(sum([0.1] * 3), sum(range(101)), sum([1, 2], 10), max(3, 1, key=lambda v: -v), min("b", "a", "c"))\n'
        'print(abs(-7.5), abs(-(2 ** 70)), 2 ** 10, divmod(7.5, 2), divmod(-(10 ** 30), 7))\n'
        'print(str(1.0), str(10 ** 20), repr(1e100), repr(-1e-100), str(float(2 ** 60)), 1.0 * 2 ** 53 + 1)\n'
        'print(bool(0.0), bool(""), bool(" "), bool(None), True + True, True * 3, -True, True == 1)\n'
        'print([1, 2] * 2, [1, 2] + [3], "ab" * 0, [] * 5, (1, 2) + (3,), [1, 2] == [1, 2], [1, 2] < [1, '
        '3], (1, 2) > (1,))\n'
        'print(chr(955), ord("λ"), "λ".upper(), "ǅ".lower(), "ß".upper(), "İ".lower(), len("İ".lower()))\n'),
    "a method of a builtin type called on the type": "print(dict.fromkeys('ab', 0), dict.fromkeys([1]))\n",
    "finally: return overrides, continue, cleanup, replaced exceptions, comprehension errors": (
        'def f1():\n'
        '    try:\n'
        '        return "try"\n'
        '    finally:\n'
        '        return "finally"\n'
        'print(f1())\n'
        'def f2():\n'
        '    for i in range(3):\n'
        '        try:\n'
        '            if i == 1:\n'
        '                raise ValueError("x")\n'
        '        except ValueError:\n'
        '            continue\n'
        '        finally:\n'
        '            print("fin", i)\n'
        '    return i\n'
        'print(f2())\n'
        'def f3():\n'
        '    try:\n'
        '        raise KeyError("a")\n'
        '    finally:\n'
        '        print("cleanup")\n'
        'try:\n'
        '    f3()\n'
        'except KeyError as e:\n'
        '    print("caught", repr(e))\n'
        'def f4():\n'
        '    try:\n'
        '        try:\n'
        '            raise ValueError("inner")\n'
        '        finally:\n'
        '            raise TypeError("from finally")\n'
        '    except TypeError as e:\n'
        '        return repr(e)\n'
        'print(f4())\n'
        'def f5(n):\n'
        '    try:\n'
        '        return [10 // (i - n) for i in range(3)]\n'
        '    except ZeroDivisionError as e:\n'
        '        return f"comprehension raised: {e}"\n'
        'print(f5(1), f5(5))\n'
        'def f6():\n'
        '    try:\n'
        '        return 1\n'
        '    finally:\n'
        '        print("finally before return value is used")\n'
        'print(f6())\n'),
    "range, repr of quotes, print sep and end, min/max defaults, zip, sorting": (
        'r = range(10, 0, -3)\n'
        'print(r, list(r), r[1], r[-1], r[1:3], list(reversed(range(4))), len(range(0, 100, 7)), '
        '7 in range(0, 100, 7))\n'
        'print(repr(["it\'s", \'say "hi"\', "both \' and \\"", "\\n\\t\\\\"]), str(("a",)), {"k": [1.0, None, True]})\n'
        'print(1, 2, 3, sep=" - ", end=" |\\n")\n'
        'print()\n'
        'print(float("inf"), -float("inf"), float("nan"), 1e308 * 10, int(True), True / 2, divmod(7.5, -2), '
        'round(1234, -2))\n'
        'print(min([], default=0), max([1, 5, 3], default=9), sorted([3, 1, 2], key=None), '
        'list(enumerate("ab", start=10)))\n'
        'print(list(zip([1, 2, 3], [4])), sorted(["b", "A", "a", "B"]))\n'),
    "dict order after deletion, membership, sort keys, closures over loop defaults, % and format": (
        'd = {i: i * i for i in range(6)}\n'
        'del d[2]\n'
        'd[2] = "back"\n'
        'print(d, list(d), 3 in d, 9 in d.values(), "x" in "xyz", [1] in [[1], [2]])\n'
        'words = ["pear", "fig", "apple", "kiwi", "banana"]\n'
        'print(sorted(words, key=len), sorted(words, key=len, reverse=True), sorted(words, '
        'key=lambda w: (len(w), w)))\n'
        'stack = []\n'
        'for ch in "(()())":\n'
        '    if ch == "(":\n'
        '        stack.append(len(stack))\n'
        '    else:\n'
        '        print(stack.pop(), end="")\n'
        'print()\n'
        'def outer():\n'
        '    results = []\n'
        '    for i in range(3):\n'
        '        def inner(j=i):\n'
        '            return j * 10\n'
        '        results.append(inner)\n'
        '    return [g() for g in results]\n'
        'print(outer())\n'
        'print("é" < "z", "Z" < "a", "abc" < "abd", [1, "a"] == [1, "a"], (1, 2) == [1, 2], 0.1 + 0.2 == 0.3)\n'
        'print("%.3f" % 2.0005, "%5.1f%%" % 12.345, "{:08.3f}".format(-3.14159), "{:+}".format(5), '
        '"{0}{0}".format("ab"))\n'
        'print(int("-0x1f", 16), int("  7\\n"), float(".5"), float("5."), float("1_0.5"), 2 ** 100 // 3 ** 40)\n'),
    "methods of ints and floats": (
        'def show(thunk):\n'
        '    try:\n'
        '        print("ok", repr(thunk()))\n'
        '    except Exception as e:\n'
        '        print("error", repr(e))\n'
        'show(lambda: (5).bit_length())\n'
        'show(lambda: (255).bit_count())\n'
        'show(lambda: (1.5).is_integer())\n'
        'show(lambda: (0.75).as_integer_ratio())\n'),
    "str.format_map": (
        'def show(thunk):\n'
        '    try:\n'
        '        print("ok", repr(thunk()))\n'
        '    except Exception as e:\n'
        '        print("error", repr(e))\n'
        'show(lambda: "hello {name}".format_map({"name": "you"}))\n'),
    "zip(strict=True)": (
        'def show(thunk):\n'
        '    try:\n'
        '        print("ok", repr(thunk()))\n'
        '    except Exception as e:\n'
        '        print("error", repr(e))\n'
        'show(lambda: list(zip([1, 2], [3], strict=True)))\n'),
    "percent and str.format fields, str methods of 3.9, tuples, enumerate, unbound str methods": (
        'def show(thunk):\n'
        '    try:\n'
        '        print("ok", repr(thunk()))\n'
        '    except Exception as e:\n'
        '        print("error", repr(e))\n'
        'show(lambda: "%*d|%-*s|" % (5, 3, 4, "ab"))\n'
        'show(lambda: "{0[1]} {1[k]} {2:{3}}".format([1, 2], {"k": "v"}, 7, ">4"))\n'
        'show(lambda: "Straße".casefold())\n'
        'show(lambda: "a=b=c".partition("="))\n'
        'show(lambda: "a=b=c".rpartition("="))\n'
        'show(lambda: "prefix_name".removeprefix("prefix_"))\n'
        'show(lambda: "file.py".removesuffix(".py"))\n'
        'show(lambda: ("١٢".isdecimal(), "x1".isidentifier(), "1x".isidentifier()))\n'
        'show(lambda: [3, 1, 3, 2].index(3, 1))\n'
        'show(lambda: (1, 2, 1).count(1))\n'
        'show(lambda: (1, 2, 1).index(2))\n'
        'show(lambda: sorted([(1, None), (1, 2)]))\n'
        'show(lambda: list(enumerate({"a": 1, "b": 2})))\n'
        'show(lambda: max(3, 7, 5, key=lambda v: -v))\n'
        'show(lambda: (isinstance(True, bool), isinstance(1, bool), isinstance(1.0, (int, float))))\n'
        'show(lambda: str.upper("abc"))\n'
        'show(lambda: list(map(str, [1, 2])))\n'
        'show(lambda: sum([1.5, 2.5], 0.5))\n'
        'show(lambda: abs(-0.0))\n'
        'show(lambda: [round(x, 1) for x in (0.05, 0.15, 0.25, 0.35)])\n'
        'show(lambda: int("٣"))\n'
        'show(lambda: float("1e-400"))\n'
        'show(lambda: 10 ** -400)\n'),
    "float edge values, dict keys 1 == True == 1.0, reversed dict, bin/hex, format specs": (
        'def show(thunk):\n'
        '    try:\n'
        '        print("ok", repr(thunk()))\n'
        '    except Exception as e:\n'
        '        print("error", repr(e))\n'
        'show(lambda: 2 ** 1000 / 2 ** 999)\n'
        'show(lambda: (2 ** 1100) / 3)\n'
        'show(lambda: float(2 ** 1100))\n'
        'show(lambda: 1 / 3 * 3 == 1)\n'
        'show(lambda: divmod(-7.5, 2))\n'
        'show(lambda: -7 % 0.5)\n'
        'show(lambda: 7 // -0.5)\n'
        'show(lambda: [i for i in range(5)][-2::-2])\n'
        'show(lambda: "abc"[::-1][1:])\n'
        'show(lambda: {1: "a", True: "b", 1.0: "c"})\n'
        'show(lambda: [[1, 2], [1, 2]] == [[1, 2]] * 2)\n'
        'show(lambda: len({"a": 1, "b": 2}.keys()))\n'
        'show(lambda: list(reversed({"a": 1, "b": 2})))\n'
        'show(lambda: list({"a": 1}.items())[0][1])\n'
        'show(lambda: dict([("x", 1)], y=2))\n'
        'show(lambda: chr(0x10FFFF) == "\\U0010ffff")\n'
        'show(lambda: hex(2 ** 64))\n'
        'show(lambda: bin(-3))\n'
        'show(lambda: str(-0.0) + str(0.0))\n'
        'show(lambda: repr(1e16) + repr(1.0e-4) + repr(123456789.0))\n'
        'show(lambda: f"{12345.678:10.2f}|{-1e-9:.2e}|{float(\'nan\'):f}|{float(\'-inf\'):>6}")\n'
        'show(lambda: f"{10**20:,}|{-10**20:_}|{0:#x}|{255:#010b}")\n'
        'show(lambda: f"{\'é\':^5}|{\'abc\':^6}|{\'x\':*>3}|{3.0:g}|{1e-5:g}|{123456789:g}")\n'),
}
