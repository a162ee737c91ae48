# Tuple unpacking: swaps, nested targets, returning several values, chained assignment.

a, b = 1, 2
a, b = b, a
print(a, b)
(x, y), z = (3, 4), 5
print(x, y, z)
[p, q] = "pq"
print(p, q)
first, second, third = range(3)
print(first, second, third)


def min_max_mean(values):
    return min(values), max(values), sum(values) / len(values)


lo, hi, mean = min_max_mean([4, 8, 15, 16, 23, 42])
print(lo, hi, mean)
i = j = k = 0
i += 1
print(i, j, k)
items = [1, 2, 3]
items[0], items[2] = items[2], items[0]
print(items)
m = [[0, 0], [0, 0]]
m[0][1] = m[1][0] = 9
print(m)
for (name, (lat, lon)) in [("north", (90, 0)), ("null", (0, 0))]:
    print(name, lat, lon)
pairs = {}
pairs["a"], pairs["b"] = divmod(17, 5)
print(pairs)
