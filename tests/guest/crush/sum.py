# The sum of i*i mod 2**32 for i < 250,000 (tests/vm/test_crush.py): long enough to be checkpointed
# 25 times, interrupted by a reboot or a power cut, and resumed (10**6 made that test take 586 s of
# CI's time on a slow day).
total = 0
for i in range(250000):
    total = (total + i * i) % 4294967296
print("sum", total)
