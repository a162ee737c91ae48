# assert with and without messages, and AssertionError caught like any exception.


def checked_sqrt(n):
    assert n >= 0, f"cannot take the square root of {n}"
    x = n
    while x * x > n:
        x = (x + n // x) // 2
    assert x * x <= n < (x + 1) * (x + 1)
    return x


for n in [0, 1, 15, 16, 17, 10 ** 20, -4]:
    try:
        print(n, checked_sqrt(n))
    except AssertionError as e:
        print("assertion failed:", e)
try:
    assert 1 + 1 == 3
except AssertionError as e:
    print("bare assert:", repr(e))
try:
    assert [], "an empty list is false"
except AssertionError as e:
    print(e)
assert "non-empty", "never raised"
print("done")
