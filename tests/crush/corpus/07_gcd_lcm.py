# Euclid's algorithm, extended Euclid, modular inverse, and LCM of a list.


def gcd(a, b):
    while b:
        a, b = b, a % b
    return abs(a)


def extended_gcd(a, b):
    if b == 0:
        return a, 1, 0
    g, x, y = extended_gcd(b, a % b)
    return g, y, x - (a // b) * y


def mod_inverse(a, m):
    g, x, _ = extended_gcd(a, m)
    if g != 1:
        raise ValueError(f"{a} has no inverse modulo {m}")
    return x % m


def lcm(numbers):
    result = 1
    for n in numbers:
        result = result * n // gcd(result, n)
    return result


print(gcd(48, 18), gcd(17, 5), gcd(0, 9), gcd(-12, 18))
print(extended_gcd(240, 46))
print(mod_inverse(3, 11), mod_inverse(10, 17))
try:
    mod_inverse(6, 9)
except ValueError as e:
    print("error:", e)
print(lcm(range(1, 21)))
print(lcm([2 ** 40, 3 ** 20, 10 ** 10]))
