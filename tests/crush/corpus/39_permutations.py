# Permutations by recursion and by the next-permutation algorithm.


def permutations(items):
    if len(items) <= 1:
        return [items[:]]
    out = []
    for i in range(len(items)):
        rest = items[:i] + items[i + 1:]
        for p in permutations(rest):
            out.append([items[i]] + p)
    return out


def next_permutation(a):
    i = len(a) - 2
    while i >= 0 and a[i] >= a[i + 1]:
        i -= 1
    if i < 0:
        return False
    j = len(a) - 1
    while a[j] <= a[i]:
        j -= 1
    a[i], a[j] = a[j], a[i]
    k, m = i + 1, len(a) - 1
    while k < m:
        a[k], a[m] = a[m], a[k]
        k += 1
        m -= 1
    return True


perms = permutations([1, 2, 3])
print(len(perms), perms)
a = [1, 2, 3, 4]
count = 1
while next_permutation(a):
    count += 1
print(count, a)
print(["".join(p) for p in permutations(list("abc"))])
b = [1, 1, 2]
seen = [b[:]]
while next_permutation(b):
    seen.append(b[:])
print(seen)
