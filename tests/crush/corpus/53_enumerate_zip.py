# enumerate and zip over strings, lists and dict items; tuple unpacking in loops.

scores = {"maths": 88, "art": 72, "history": 95}
for i, (subject, score) in enumerate(sorted(scores.items())):
    print(i, subject, score)
for a, b, c in zip([1, 2, 3], "xyz", [True, False, None]):
    print(a, b, c)
text = "hello"
positions = {}
for i, ch in enumerate(text):
    positions.setdefault(ch, []).append(i)
print(positions)
for (i, a), b in zip(enumerate("ab"), "cd"):
    print(i, a, b)
total = 0
for k, v in scores.items():
    total += v
for key in scores:
    print(key, end=" ")
print()
print(total, list(scores), list(scores.values()))
coords = [(1, 2), (3, 4), (5, 6)]
xs, ys = [x for x, _ in coords], [y for _, y in coords]
print(xs, ys, sum([x * y for x, y in coords]))
