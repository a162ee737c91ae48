# KeyError and IndexError: lookups that fail, fallbacks, and the messages they carry.

inventory = {"apples": 3, "pears": 0}
shelf = ["a", "b", "c"]


def lookup(name):
    try:
        return inventory[name]
    except KeyError as e:
        print("missing key:", e, repr(e))
        return -1


def nth(items, i):
    try:
        return items[i]
    except IndexError as e:
        return f"no item {i}: {e}"


print(lookup("apples"), lookup("plums"))
print(nth(shelf, 0), nth(shelf, -1), nth(shelf, 3), nth(shelf, -4))
print(nth("xyz", 10))
try:
    del inventory["kiwis"]
except KeyError as e:
    print("cannot delete", e)
try:
    [].pop()
except IndexError as e:
    print("pop:", e)
try:
    {}.pop("k")
except KeyError as e:
    print("dict pop:", e)
try:
    print(inventory[("tuple", 1)])
except LookupError as e:
    print("lookup error base class caught:", repr(e))
