# Sieve of Eratosthenes, twin primes and a prime-counting table.


def sieve(limit):
    is_prime = [True] * (limit + 1)
    is_prime[0] = False
    if limit >= 1:
        is_prime[1] = False
    p = 2
    while p * p <= limit:
        if is_prime[p]:
            for multiple in range(p * p, limit + 1, p):
                is_prime[multiple] = False
        p += 1
    return [n for n in range(limit + 1) if is_prime[n]]


primes = sieve(200)
print(len(primes), "primes below 200")
print(primes[:15], "...", primes[-3:])
twins = [(p, p + 2) for p in primes if p + 2 in primes]
print("twin primes:", twins[:8])
for limit in [10, 100, 1000, 5000]:
    print(f"pi({limit}) = {len(sieve(limit))}")
