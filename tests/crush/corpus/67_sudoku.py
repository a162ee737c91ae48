# Sudoku: validating a grid and solving one by backtracking.

puzzle = [
    "53..7....", "6..195...", ".98....6.", "8...6...3", "4..8.3..1", "7...2...6", ".6....28.", "...419..5",
    "....8..79",
]
grid = [[0 if ch == "." else int(ch) for ch in row] for row in puzzle]


def candidates(g, r, c):
    used = {}
    for i in range(9):
        used[g[r][i]] = True
        used[g[i][c]] = True
    br, bc = 3 * (r // 3), 3 * (c // 3)
    for i in range(br, br + 3):
        for j in range(bc, bc + 3):
            used[g[i][j]] = True
    return [v for v in range(1, 10) if v not in used]


def solve(g):
    for r in range(9):
        for c in range(9):
            if g[r][c] == 0:
                for v in candidates(g, r, c):
                    g[r][c] = v
                    if solve(g):
                        return True
                g[r][c] = 0
                return False
    return True


def valid(g):
    groups = [row for row in g] + [[g[r][c] for r in range(9)] for c in range(9)]
    groups += [[g[r][c] for r in range(br, br + 3) for c in range(bc, bc + 3)] for br in (0, 3, 6) for bc in (0, 3, 6)]
    return all([sorted(group) == list(range(1, 10)) for group in groups])


print(valid(grid), solve(grid), valid(grid))
for row in grid:
    print(" ".join([str(v) for v in row]))
