# Conway's game of life on a small torus: a glider and a blinker.


def step(cells, rows, cols):
    new = [[0] * cols for _ in range(rows)]
    for r in range(rows):
        for c in range(cols):
            n = 0
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    if dr or dc:
                        n += cells[(r + dr) % rows][(c + dc) % cols]
            new[r][c] = 1 if n == 3 or (n == 2 and cells[r][c]) else 0
    return new


def show(cells):
    return "\n".join(["".join(["#" if v else "." for v in row]) for row in cells])


rows, cols = 8, 8
cells = [[0] * cols for _ in range(rows)]
for r, c in [(0, 1), (1, 2), (2, 0), (2, 1), (2, 2), (5, 5), (5, 6), (5, 7)]:
    cells[r][c] = 1
for gen in range(4):
    print(f"generation {gen}: {sum([sum(row) for row in cells])} alive")
    print(show(cells))
    cells = step(cells, rows, cols)
