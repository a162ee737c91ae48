# Breadth-first search on a grid maze: shortest path length and the path drawn.

maze = [
    "S.#.......",
    ".##.####..",
    "....#..#.#",
    "#.#...#..#",
    "..#.#.#.#.",
    ".##.#...#E",
]


def bfs(maze):
    rows, cols = len(maze), len(maze[0])
    start = end = None
    for r in range(rows):
        for c in range(cols):
            if maze[r][c] == "S":
                start = (r, c)
            elif maze[r][c] == "E":
                end = (r, c)
    queue = [start]
    came = {start: None}
    head = 0
    while head < len(queue):
        r, c = queue[head]
        head += 1
        if (r, c) == end:
            break
        for dr, dc in [(1, 0), (-1, 0), (0, 1), (0, -1)]:
            nr, nc = r + dr, c + dc
            if 0 <= nr < rows and 0 <= nc < cols and maze[nr][nc] != "#" and (nr, nc) not in came:
                came[(nr, nc)] = (r, c)
                queue.append((nr, nc))
    if end not in came:
        return None, []
    path = []
    node = end
    while node is not None:
        path.append(node)
        node = came[node]
    return len(path) - 1, path[::-1]


steps, path = bfs(maze)
print("steps:", steps)
grid = [list(row) for row in maze]
for r, c in path[1:-1]:
    grid[r][c] = "*"
for row in grid:
    print("".join(row))
