# Floor division and modulo with negative operands (Python rounds toward minus infinity).

pairs = [(7, 2), (-7, 2), (7, -2), (-7, -2), (0, 3), (1, 5), (-1, 5), (10 ** 20 + 1, -3), (-(10 ** 20), 7)]
for a, b in pairs:
    q, r = a // b, a % b
    print(f"{a} // {b} = {q}, {a} % {b} = {r}, divmod = {divmod(a, b)}, check {q * b + r == a}")
for a, b in [(7.5, 2), (-7.5, 2), (7.5, -2), (-0.5, 1)]:
    print(a, b, a // b, a % b)
print([i % 3 for i in range(-6, 7)])
print([-i // 2 for i in range(6)], [(-i) // 2 for i in range(6)])
print(-7 >> 1, 7 >> 1, -1 >> 10, 1 << 70, -5 & 3, -5 | 3, -5 ^ 3, ~5, ~-1)
