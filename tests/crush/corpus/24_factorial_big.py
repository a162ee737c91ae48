# Factorials with big integers: 100!, digit sums, trailing zeros.


def factorial(n):
    result = 1
    for i in range(2, n + 1):
        result *= i
    return result


def factorial_rec(n):
    return 1 if n <= 1 else n * factorial_rec(n - 1)


f100 = factorial(100)
print(f100)
print(len(str(f100)), "digits, digit sum", sum([int(d) for d in str(f100)]))
zeros = 0
while f100 % 10 == 0:
    f100 //= 10
    zeros += 1
print("trailing zeros:", zeros)
print(factorial_rec(50) == factorial(50))
print([factorial(n) for n in range(13)])
print(factorial(30) // factorial(28), factorial(25) % 1000000007)
