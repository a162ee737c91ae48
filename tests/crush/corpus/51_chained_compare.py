# Chained comparisons: each middle operand is evaluated exactly once, evaluation stops early.

calls = []


def v(x):
    calls.append(x)
    return x


print(1 < 2 < 3, 3 > 2 > 2, 1 == 1.0 == True, 1 < 3 > 2, "a" < "b" <= "b" < "c")
print(v(1) < v(2) < v(3), calls)
calls.clear()
print(v(5) < v(2) < v(3), calls)
calls.clear()
print(v(1) < v(5) > v(4) != v(4), calls)
calls.clear()
x = 7
print(0 <= x < 10, 0 <= x < 5, x in [1, 7] != False, 1 < x < v(8) < 9, calls)
grid = [(r, c) for r in range(-1, 4) for c in range(-1, 4) if 0 <= r < 3 and 0 <= c < 3]
print(len(grid), grid[:4])
print([n for n in range(30) if 10 < n * 2 < 20 < n * 3])
