# for/else and while/else: searching with break, primes, and a retry loop.


def first_divisor(n):
    for d in range(2, n):
        if n % d == 0:
            break
    else:
        return None
    return d


print([(n, first_divisor(n)) for n in [15, 17, 49, 2, 91]])
primes = []
for n in range(2, 60):
    for p in primes:
        if p * p > n:
            continue
        if n % p == 0:
            break
    else:
        primes.append(n)
print(primes)
attempts = 0
while attempts < 5:
    attempts += 1
    if attempts * attempts > 10:
        print("succeeded after", attempts)
        break
else:
    print("gave up")
count = 0
while count < 3:
    count += 1
else:
    print("while finished normally with", count)
for ch in "":
    print("never")
else:
    print("empty loop still runs else")
