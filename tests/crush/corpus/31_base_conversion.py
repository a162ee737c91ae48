# Number bases: hex/bin/oct builtins, int() with a base, and a hand-written converter.

DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def to_base(n, base):
    if n == 0:
        return "0"
    sign = "-" if n < 0 else ""
    n = abs(n)
    out = []
    while n:
        n, r = divmod(n, base)
        out.append(DIGITS[r])
    return sign + "".join(reversed(out))


for n in [0, 7, 255, -255, 1000000, 2 ** 64]:
    print(n, hex(n), bin(n), to_base(n, 16), to_base(n, 2) == bin(n).replace("0b", ""), to_base(n, 36))
for text, base in [("ff", 16), ("777", 8), ("101010", 2), ("zz", 36), ("-1a", 16), ("0x1F", 16), ("0b11", 0)]:
    print(text, base, int(text, base))
print(int("  42  "), int("-0"), int("1_000"), int(True), int(-2.9))
