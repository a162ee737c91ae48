# Formatting a report table with f-strings: alignment, widths, precision, thousands separators.

rows = [("Widget", 1234, 3.5), ("Gadget", 56, 12.25), ("Doohickey", 7890123, 0.125), ("Thingamajig", 0, 99.999)]
name_w = max([len(r[0]) for r in rows]) + 2
print(f"{'Item':<{name_w}}|{'Qty':>12}|{'Price':>9}|{'Total':>16}")
print("-" * name_w + "+" + "-" * 12 + "+" + "-" * 9 + "+" + "-" * 16)
grand = 0.0
for name, qty, price in rows:
    total = qty * price
    grand += total
    print(f"{name:<{name_w}}|{qty:>12,}|{price:>9.2f}|{total:>16,.2f}")
print(f"{'TOTAL':<{name_w}}|{'':>12}|{'':>9}|{grand:>16,.2f}")
print(f"{3.14159:.3f} {2.5:e} {1e-7:g} {255:#x} {255:#o} {255:b} {42:08d} {-42:+d} {0.25:.1%}")
print(f"[{'left':<10}] [{'right':>10}] [{'centre':^10}] [{'fill':*^10}]")
print(f"{123456789:_} {1234.5678:,.1f} {'abc'!r} {'abc'!s:>5}")
