# Pascal's triangle, binomial coefficients, and a centred drawing.


def pascal(rows):
    triangle = [[1]]
    for _ in range(rows - 1):
        prev = triangle[-1]
        triangle.append([1] + [prev[i] + prev[i + 1] for i in range(len(prev) - 1)] + [1])
    return triangle


tri = pascal(10)
width = len(" ".join([str(x) for x in tri[-1]]))
for row in tri:
    print(" ".join([str(x) for x in row]).center(width).rstrip())
print(pascal(31)[-1][15], sum(pascal(20)[-1]) == 2 ** 19)
print([row[2] for row in tri[2:]])
