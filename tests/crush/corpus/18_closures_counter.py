# Closures: counters with nonlocal state, a bank of adders, and late binding.


def make_counter(start=0, step=1):
    count = start

    def increment():
        nonlocal count
        count += step
        return count

    def reset():
        nonlocal count
        count = start

    return increment, reset


inc, reset = make_counter()
print(inc(), inc(), inc())
reset()
print(inc())
inc10, _ = make_counter(100, 10)
print(inc10(), inc10(), inc())

adders = [lambda x, n=n: x + n for n in range(5)]
print([f(10) for f in adders])
late = [lambda x: x + n for n in range(5)]
print([f(10) for f in late])


def make_accumulator():
    total = []

    def add(value):
        total.append(value)
        return sum(total)

    return add


acc = make_accumulator()
for v in [5, 10, -3]:
    print("total", acc(v))


def twice(f):
    return lambda x: f(f(x))


print(twice(lambda x: x * 3)(7), twice(twice(lambda s: s + "!"))("hi"))
