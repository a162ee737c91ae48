# 0/1 knapsack by dynamic programming, with the chosen items recovered.

items = [("map", 9, 150), ("compass", 13, 35), ("water", 153, 200), ("sandwich", 50, 160),
         ("glucose", 15, 60), ("tin", 68, 45), ("banana", 27, 60), ("apple", 39, 40),
         ("cheese", 23, 30), ("beer", 52, 10), ("suntan cream", 11, 70), ("camera", 32, 30)]


def knapsack(items, capacity):
    n = len(items)
    table = [[0] * (capacity + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        _, weight, value = items[i - 1]
        for w in range(capacity + 1):
            table[i][w] = table[i - 1][w]
            if weight <= w and table[i - 1][w - weight] + value > table[i][w]:
                table[i][w] = table[i - 1][w - weight] + value
    chosen = []
    w = capacity
    for i in range(n, 0, -1):
        if table[i][w] != table[i - 1][w]:
            chosen.append(items[i - 1][0])
            w -= items[i - 1][1]
    return table[n][capacity], sorted(chosen)


for capacity in [0, 50, 100, 250, 400]:
    best, chosen = knapsack(items, capacity)
    print(f"capacity {capacity:3}: value {best:4} with {chosen}")
