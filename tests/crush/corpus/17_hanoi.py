# Towers of Hanoi: recursive moves, checked by simulating the pegs.


def hanoi(n, source, target, spare, moves):
    if n == 0:
        return
    hanoi(n - 1, source, spare, target, moves)
    moves.append((n, source, target))
    hanoi(n - 1, spare, target, source, moves)


def simulate(n, moves):
    pegs = {"A": list(range(n, 0, -1)), "B": [], "C": []}
    for disk, src, dst in moves:
        top = pegs[src].pop()
        if top != disk:
            raise RuntimeError(f"moved disk {top}, expected {disk}")
        if pegs[dst] and pegs[dst][-1] < disk:
            raise RuntimeError(f"disk {disk} placed on smaller {pegs[dst][-1]}")
        pegs[dst].append(disk)
    return pegs


moves = []
hanoi(3, "A", "C", "B", moves)
for m in moves:
    print(f"move disk {m[0]} from {m[1]} to {m[2]}")
for n in range(1, 11):
    moves = []
    hanoi(n, "A", "C", "B", moves)
    pegs = simulate(n, moves)
    print(n, len(moves), len(moves) == 2 ** n - 1, pegs["C"] == list(range(n, 0, -1)))
