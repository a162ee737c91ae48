# Descriptive statistics by hand: mean, median, mode, variance, standard deviation, percentiles.

data = [2, 4, 4, 4, 5, 5, 7, 9, 12, 3, 8, 4, 6, 5, 10]


def mean(xs):
    return sum(xs) / len(xs)


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def mode(xs):
    counts = {}
    for x in xs:
        counts[x] = counts.get(x, 0) + 1
    best = max(counts.values())
    return min([x for x, c in counts.items() if c == best])


def variance(xs):
    m = mean(xs)
    return sum([(x - m) ** 2 for x in xs]) / (len(xs) - 1)


def sqrt(x):
    guess = x / 2 if x > 1 else 1.0
    for _ in range(60):
        guess = (guess + x / guess) / 2
    return guess


def percentile(xs, p):
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


print(f"n={len(data)} mean={mean(data):.4f} median={median(data)} mode={mode(data)}")
print(f"variance={variance(data):.4f} stdev={sqrt(variance(data)):.4f}")
print([round(percentile(data, p), 2) for p in (0, 10, 25, 50, 75, 90, 100)])
print(median([1, 2, 3, 4]), mode([1, 1, 2, 2]), round(sqrt(2), 12))
