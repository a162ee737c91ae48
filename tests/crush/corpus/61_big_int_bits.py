# Big integers and bit operations: popcount, bit reversal, shifts, and negative numbers.


def popcount(n):
    count = 0
    while n:
        n &= n - 1
        count += 1
    return count


def reverse_bits(n, width):
    out = 0
    for _ in range(width):
        out = (out << 1) | (n & 1)
        n >>= 1
    return out


big = 2 ** 521 - 1
print(popcount(big), len(bin(big)) - 2, big % 1000000007)
print(reverse_bits(0b1011, 8), bin(reverse_bits(1, 64)), hex(reverse_bits(0xF0F0, 16)))
print((1 << 100) >> 98, (1 << 100) & ((1 << 64) - 1), ((1 << 100) | 5) ^ (1 << 100))
print(-(1 << 80) >> 3, -1 & 0xFF, ~(2 ** 70), -(2 ** 70) // 3, -(2 ** 70) % 3)
x = 123456789123456789123456789
print(x * x, x * x // x == x, str(x)[::-1], int(str(x)[::-1]) - x)
print(sum([2 ** i for i in range(100)]) == 2 ** 100 - 1, abs(-x), -x < x, max(x, 2 ** 90))
