# Prime factorisation by trial division; divisor counts and sums from the factorisation.


def factorise(n):
    factors = {}
    d = 2
    while d * d <= n:
        while n % d == 0:
            factors[d] = factors.get(d, 0) + 1
            n //= d
        d += 1 if d == 2 else 2
    if n > 1:
        factors[n] = factors.get(n, 0) + 1
    return factors


def show(factors):
    return " * ".join([f"{p}^{e}" if e > 1 else str(p) for p, e in sorted(factors.items())])


def divisor_count(factors):
    count = 1
    for e in factors.values():
        count *= e + 1
    return count


def divisor_sum(factors):
    total = 1
    for p, e in factors.items():
        total *= (p ** (e + 1) - 1) // (p - 1)
    return total


for n in [2, 12, 360, 97, 1001, 2 ** 31 - 1, 600851475143, 10 ** 12 + 39]:
    f = factorise(n)
    print(f"{n} = {show(f)}; divisors: {divisor_count(f)}, sum {divisor_sum(f)}")
