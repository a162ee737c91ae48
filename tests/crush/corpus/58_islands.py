# Counting islands with an iterative flood fill, and their sizes.

world = """
11000011
11000011
00100000
00011100
10000100
11100001
""".strip().split("\n")


def islands(grid):
    rows, cols = len(grid), len(grid[0])
    seen = [[False] * cols for _ in range(rows)]
    sizes = []
    for r in range(rows):
        for c in range(cols):
            if grid[r][c] == "1" and not seen[r][c]:
                stack = [(r, c)]
                seen[r][c] = True
                size = 0
                while stack:
                    y, x = stack.pop()
                    size += 1
                    for ny, nx in [(y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)]:
                        if 0 <= ny < rows and 0 <= nx < cols and grid[ny][nx] == "1" and not seen[ny][nx]:
                            seen[ny][nx] = True
                            stack.append((ny, nx))
                sizes.append(size)
    return sizes


sizes = islands(world)
print(len(sizes), "islands, sizes", sizes, "largest", max(sizes))
print(islands(["0"]), islands(["1"]), islands(["111", "101", "111"]))
