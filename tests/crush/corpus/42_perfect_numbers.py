# Perfect, abundant and deficient numbers; amicable pairs.


def proper_divisor_sum(n):
    if n < 2:
        return 0
    total = 1
    i = 2
    while i * i <= n:
        if n % i == 0:
            total += i
            if i != n // i:
                total += n // i
        i += 1
    return total


kinds = {"perfect": [], "abundant": 0, "deficient": 0}
for n in range(2, 10001):
    s = proper_divisor_sum(n)
    if s == n:
        kinds["perfect"].append(n)
    elif s > n:
        kinds["abundant"] += 1
    else:
        kinds["deficient"] += 1
print(kinds)
amicable = []
for a in range(2, 3000):
    b = proper_divisor_sum(a)
    if b > a and proper_divisor_sum(b) == a:
        amicable.append((a, b))
print(amicable)
