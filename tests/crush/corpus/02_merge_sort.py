# Top-down merge sort (stable), checked against sorted().


def merge(left, right, key):
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if key(right[j]) < key(left[i]):
            out.append(right[j])
            j += 1
        else:
            out.append(left[i])
            i += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def merge_sort(items, key=lambda x: x):
    if len(items) <= 1:
        return items[:]
    mid = len(items) // 2
    return merge(merge_sort(items[:mid], key), merge_sort(items[mid:], key), key)


numbers = [38, 27, 43, 3, 9, 82, 10, -4, 27, 0]
print(merge_sort(numbers))
print(merge_sort(numbers) == sorted(numbers))
words = ["delta", "Alpha", "charlie", "bravo", "Echo", "alpha"]
print(merge_sort(words))
print(merge_sort(words, key=lambda w: w.lower()))
pairs = [(2, "b"), (1, "z"), (2, "a"), (1, "y")]
print(merge_sort(pairs, key=lambda p: p[0]))
