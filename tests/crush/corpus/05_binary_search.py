# Binary search: exact match, insertion point (bisect_left), and counting occurrences.


def bisect_left(a, x):
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def bisect_right(a, x):
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def find(a, x):
    i = bisect_left(a, x)
    if i < len(a) and a[i] == x:
        return i
    return -1


data = [1, 3, 3, 3, 5, 8, 13, 21, 34, 55]
for x in [0, 1, 3, 4, 13, 55, 56]:
    print(f"x={x:2d} find={find(data, x):2d} left={bisect_left(data, x):2d} "
          f"right={bisect_right(data, x):2d} count={bisect_right(data, x) - bisect_left(data, x)}")
