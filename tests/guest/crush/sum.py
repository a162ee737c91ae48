# The sum of i*i mod 2**32 for i < 10**6 (tests/vm/test_crush.py): long enough to be checkpointed,
# interrupted by a reboot or a power cut, and resumed.
total = 0
for i in range(1000000):
    total = (total + i * i) % 4294967296
print("sum", total)
