# A matrix read in spiral order, and a spiral filled with numbers.


def spiral_order(m):
    out = []
    top, bottom, left, right = 0, len(m) - 1, 0, len(m[0]) - 1
    while top <= bottom and left <= right:
        out += [m[top][c] for c in range(left, right + 1)]
        top += 1
        out += [m[r][right] for r in range(top, bottom + 1)]
        right -= 1
        if top <= bottom:
            out += [m[bottom][c] for c in range(right, left - 1, -1)]
            bottom -= 1
        if left <= right:
            out += [m[r][left] for r in range(bottom, top - 1, -1)]
            left += 1
    return out


def spiral_fill(n):
    grid = [[0] * n for _ in range(n)]
    r, c, dr, dc = 0, 0, 0, 1
    for k in range(1, n * n + 1):
        grid[r][c] = k
        nr, nc = r + dr, c + dc
        if not (0 <= nr < n and 0 <= nc < n) or grid[nr][nc]:
            dr, dc = dc, -dr
            nr, nc = r + dr, c + dc
        r, c = nr, nc
    return grid


print(spiral_order([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]))
print(spiral_order([[1], [2], [3]]), spiral_order([[1, 2, 3]]))
for row in spiral_fill(5):
    print(" ".join([f"{v:2}" for v in row]))
