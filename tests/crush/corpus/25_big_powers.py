# Big-integer powers and modular exponentiation.

print(2 ** 200)
print(3 ** 100 - 2 ** 150)
print(-(2 ** 64), (-2) ** 63, (-3) ** 5)
print(10 ** 30 // 7, 10 ** 30 % 7)


def mod_pow(base, exp, mod):
    result = 1
    base %= mod
    while exp > 0:
        if exp & 1:
            result = result * base % mod
        base = base * base % mod
        exp >>= 1
    return result


for b, e, m in [(2, 100, 1000000007), (3, 10 ** 18, 998244353), (7, 0, 13), (12345678901234567890, 65537, 2 ** 61 - 1)]:
    print(b, e, m, mod_pow(b, e, m))
print(2 ** 0.5, 2 ** -1, 10 ** -3, 0 ** 0)
mersenne = [p for p in [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31] if mod_pow(2, 2 ** p - 1, 2 ** p - 1) == 2 % (2 ** p - 1)]
print(mersenne)
