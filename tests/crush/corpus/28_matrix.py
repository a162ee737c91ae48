# Matrices as lists of lists: multiplication, identity, powers (Fibonacci), determinant.


def mat_mul(a, b):
    rows, inner, cols = len(a), len(b), len(b[0])
    return [[sum([a[i][k] * b[k][j] for k in range(inner)]) for j in range(cols)] for i in range(rows)]


def identity(n):
    return [[1 if i == j else 0 for j in range(n)] for i in range(n)]


def mat_pow(m, e):
    result = identity(len(m))
    while e:
        if e % 2:
            result = mat_mul(result, m)
        m = mat_mul(m, m)
        e //= 2
    return result


def det(m):
    if len(m) == 1:
        return m[0][0]
    total = 0
    for col in range(len(m)):
        minor = [row[:col] + row[col + 1:] for row in m[1:]]
        total += (-1) ** col * m[0][col] * det(minor)
    return total


a = [[1, 2], [3, 4]]
b = [[5, 6, 7], [8, 9, 10]]
print(mat_mul(a, b))
print(mat_pow([[1, 1], [1, 0]], 50)[0][1])
print(det([[2, 0, 1], [1, 3, 2], [1, 1, 1]]), det(identity(4)), det([[1, 2], [2, 4]]))
for row in mat_pow(a, 5):
    print(" ".join([f"{x:6d}" for x in row]))
