# Number formatting: thousands separators, padding, signs, percentages and alignment in columns.

values = [0, 7, -42, 1234, 1234567, -9876543210, 2 ** 40]
for v in values:
    print(f"{v:>16,} {v:>+14d} {v:016d} {v:<12x}|{abs(v):o}")
ratios = [0.0, 0.5, 0.125, 1 / 3, 2.0, 1e-4]
for r in ratios:
    print(f"{r:8.3f} {r:8.1%} {r:10.2e} {r:>8g}")
print(f"{1234.5:,.2f}", f"{'x':>3}{'y':<3}|", f"{True} {None} {[1, 2]}")
print(f"{3.14159:7.2f}|{-0.0:+.1f}|{1e100:.3g}|{12345.6789:.6}")
