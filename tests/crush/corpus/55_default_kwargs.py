# Default arguments, keyword arguments in any order, and the shared mutable default.


def greet(name, greeting="Hello", punctuation="!"):
    return f"{greeting}, {name}{punctuation}"


print(greet("Ada"))
print(greet("Ada", "Hi"))
print(greet("Ada", punctuation="?"))
print(greet(punctuation=".", name="Bob", greeting="Bye"))


def append_to(item, target=[]):
    target.append(item)
    return target


print(append_to(1), append_to(2), append_to(3, []))


def make_range(stop, start=0, step=1):
    return list(range(start, stop, step))


print(make_range(5), make_range(10, step=3), make_range(start=2, stop=6))
base = 10


def with_default(x, b=base):
    return x + b


base = 20
print(with_default(1), with_default(1, base))
print(sorted([3, 1, 2], reverse=True), print("printed", end="|\n"), int("11", base=2))
