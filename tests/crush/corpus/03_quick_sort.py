# Quicksort (Lomuto partition, in place) with a deterministic pseudo-random input.


def lcg(seed):
    state = seed

    def next_value():
        nonlocal state
        state = (state * 1103515245 + 12345) % 2147483648
        return state % 1000

    return next_value


def partition(a, lo, hi):
    pivot = a[hi]
    i = lo
    for j in range(lo, hi):
        if a[j] <= pivot:
            a[i], a[j] = a[j], a[i]
            i += 1
    a[i], a[hi] = a[hi], a[i]
    return i


def quick_sort(a, lo=0, hi=None):
    if hi is None:
        hi = len(a) - 1
    if lo < hi:
        p = partition(a, lo, hi)
        quick_sort(a, lo, p - 1)
        quick_sort(a, p + 1, hi)
    return a


rand = lcg(42)
data = [rand() for _ in range(40)]
print("input: ", data)
print("sorted:", quick_sort(data[:]))
print("same as sorted():", quick_sort(data[:]) == sorted(data))
print(quick_sort([]), quick_sort([7]), quick_sort([2, 1]))
