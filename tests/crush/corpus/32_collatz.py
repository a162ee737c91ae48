# Collatz sequences: lengths, the longest start below a bound, with a cache.

cache = {1: 1}


def collatz_length(n):
    path = []
    while n not in cache:
        path.append(n)
        n = n // 2 if n % 2 == 0 else 3 * n + 1
    length = cache[n]
    for m in reversed(path):
        length += 1
        cache[m] = length
    return length


def sequence(n):
    seq = [n]
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        seq.append(n)
    return seq


print(sequence(27)[:20], "...", len(sequence(27)))
best = max(range(1, 10000), key=collatz_length)
print("longest below 10000:", best, collatz_length(best))
print([collatz_length(n) for n in range(1, 21)])
print(max(sequence(27)), len(cache) > 10000)
