# Subsets and combinations: bitmasks, recursion, and subset sums.


def subsets(items):
    out = []
    for mask in range(1 << len(items)):
        out.append([items[i] for i in range(len(items)) if mask >> i & 1])
    return out


def combinations(items, k):
    if k == 0:
        return [[]]
    if len(items) < k:
        return []
    first, rest = items[0], items[1:]
    return [[first] + c for c in combinations(rest, k - 1)] + combinations(rest, k)


def subset_sum(numbers, target):
    reachable = {0: []}
    for n in numbers:
        for total, used in list(reachable.items()):
            if total + n not in reachable:
                reachable[total + n] = used + [n]
    return reachable.get(target)


print(subsets(["a", "b", "c"]))
print(combinations([1, 2, 3, 4, 5], 3))
print(len(combinations(list(range(10)), 4)))
print(subset_sum([3, 34, 4, 12, 5, 2], 9), subset_sum([3, 34, 4, 12, 5, 2], 30))
