# Bubble sort with an early exit, counting swaps and passes.


def bubble_sort(items):
    data = list(items)
    swaps = 0
    passes = 0
    n = len(data)
    while True:
        passes += 1
        swapped = False
        for i in range(n - 1):
            if data[i] > data[i + 1]:
                data[i], data[i + 1] = data[i + 1], data[i]
                swaps += 1
                swapped = True
        n -= 1
        if not swapped:
            break
    return data, swaps, passes


for sample in [[5, 1, 4, 2, 8], [], [1], [3, 3, 1], list(range(10, 0, -1)), ["pear", "apple", "fig"]]:
    result, swaps, passes = bubble_sort(sample)
    print(sample, "->", result, "swaps:", swaps, "passes:", passes)
