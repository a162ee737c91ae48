# zip and enumerate: transposing, pairing, and walking several lists together.

matrix = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
transposed = [list(col) for col in zip(matrix[0], matrix[1], matrix[2], matrix[3])]
print(transposed)
names = ["ann", "ben", "cy"]
scores = [91, 78, 85, 100]
for i, (name, score) in enumerate(zip(names, scores), start=1):
    print(i, name, score)
print(list(zip("abc", range(10))), list(enumerate("xy")))
print(dict(zip(names, scores)), list(zip()))
pairs = list(zip(names, scores))
print(sorted(pairs, key=lambda p: p[1], reverse=True))
left, right = [p[0] for p in pairs], [p[1] for p in pairs]
print(left, right, list(reversed(left)))
