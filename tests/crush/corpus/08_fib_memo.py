# Fibonacci three ways: memo dict, iteration, and fast doubling (big integers).

memo = {0: 0, 1: 1}


def fib_memo(n):
    if n not in memo:
        memo[n] = fib_memo(n - 1) + fib_memo(n - 2)
    return memo[n]


def fib_iter(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def fib_doubling(n):
    if n == 0:
        return 0, 1
    a, b = fib_doubling(n // 2)
    c = a * (2 * b - a)
    d = a * a + b * b
    if n % 2 == 0:
        return c, d
    return d, c + d


print([fib_memo(i) for i in range(20)])
print(fib_memo(90), fib_iter(90), fib_doubling(90)[0])
print(len(memo), "entries in the memo")
big = fib_doubling(500)[0]
print(big)
print(big == fib_iter(500), len(str(big)), "digits")
