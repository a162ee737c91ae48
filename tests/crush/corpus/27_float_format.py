# Float arithmetic and formatting: repr, rounding, and fixed/scientific notation.

values = [0.1 + 0.2, 1 / 3, 2 / 3, 1e16, 1e-5, 123456.789, -0.0, 3.0, 1.5e300 * 10, 2.5, 3.5, 0.5]
for v in values:
    print(repr(v), str(v), f"{v:.2f}", f"{v:10.3e}", f"{v:g}", round(v, 1) if v == v and abs(v) < 1e300 else v)
print(round(2.5), round(3.5), round(-2.5), round(0.125, 2), round(1234.5678, -2))
print(int(3.99), int(-3.99), float(7), float("1e3"), float("-inf"))
print(sum([0.1] * 10), 0.1 * 3, 1.1 + 2.2)
print(7 / 2, -7 / 2, 1 / 8, 10 / 4, 2 ** 0.5)
print(abs(-1.5), max(1.5, 2), min(-0.5, 0))
print(f"{1/7:.10f} {100 * 2 / 3:.0f} {1e21} {1e-7}")
