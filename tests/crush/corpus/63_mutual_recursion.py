# Mutual recursion and nested helper functions: even/odd, Ackermann, flattening.


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def ackermann(m, n):
    if m == 0:
        return n + 1
    if n == 0:
        return ackermann(m - 1, 1)
    return ackermann(m - 1, ackermann(m, n - 1))


def flatten(value):
    out = []

    def walk(v):
        if isinstance(v, (list, tuple)):
            for item in v:
                walk(item)
        else:
            out.append(v)

    walk(value)
    return out


print([is_even(n) for n in range(8)], is_odd(99))
print([[ackermann(m, n) for n in range(4)] for m in range(3)], ackermann(2, 3))
print(flatten([1, [2, [3, (4, 5)], []], [[[6]]], "seven"]))
