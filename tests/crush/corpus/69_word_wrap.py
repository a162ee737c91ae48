# Greedy word wrapping, and wrapping that minimises raggedness by dynamic programming.

text = ("Gas-metered virtual machines let a host run untrusted programs with a hard bound on the work "
        "they may do, and serialisable state lets those programs pause and resume elsewhere.")


def greedy(words, width):
    lines = [[]]
    for w in words:
        if lines[-1] and len(" ".join(lines[-1] + [w])) > width:
            lines.append([])
        lines[-1].append(w)
    return [" ".join(line) for line in lines]


def balanced(words, width):
    n = len(words)
    best = [0] + [None] * n
    split = [0] * (n + 1)
    for j in range(1, n + 1):
        length = -1
        for i in range(j, 0, -1):
            length += len(words[i - 1]) + 1
            if length > width:
                break
            cost = best[i - 1] + (0 if j == n else (width - length) ** 2)
            if best[j] is None or cost < best[j]:
                best[j] = cost
                split[j] = i - 1
    lines = []
    j = n
    while j > 0:
        lines.append(" ".join(words[split[j]:j]))
        j = split[j]
    return lines[::-1]


words = text.split()
for wrap in (greedy, balanced):
    for line in wrap(words, 32):
        print(f"|{line:<32}|")
    print()
