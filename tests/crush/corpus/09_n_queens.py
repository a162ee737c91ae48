# N-queens by backtracking: count solutions and draw the first one.


def solve(n):
    solutions = []
    cols = [0] * n

    def safe(row, col):
        for r in range(row):
            c = cols[r]
            if c == col or abs(c - col) == row - r:
                return False
        return True

    def place(row):
        if row == n:
            solutions.append(cols[:])
            return
        for col in range(n):
            if safe(row, col):
                cols[row] = col
                place(row + 1)

    place(0)
    return solutions


for n in range(1, 8):
    print(n, len(solve(n)))
first = solve(6)[0]
for col in first:
    print(" ".join(["Q" if c == col else "." for c in range(6)]))
