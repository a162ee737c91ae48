# A runaway loop (tests/vm/test_crush.py): stops at its gas budget, on line 3.
x = 0
while True:
    pass
