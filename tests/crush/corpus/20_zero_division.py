# ZeroDivisionError: caught, reported, and recovered from in several shapes.


def safe_div(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        return float("inf") if a > 0 else float("-inf") if a < 0 else float("nan")


def mean(values):
    try:
        return sum(values) / len(values)
    except ZeroDivisionError as e:
        print("mean of nothing:", e)
        return None


print(safe_div(1, 4), safe_div(3, 0), safe_div(-3, 0), safe_div(0, 0))
print(mean([1, 2, 3, 4]), mean([]))
for a, b in [(7, 2), (7, 0), (7.5, 0), (-7, 2)]:
    try:
        print(a, "//", b, "=", a // b, "and", a, "%", b, "=", a % b)
    except ZeroDivisionError as e:
        print(a, "//", b, "fails:", e)
results = []
for d in range(-2, 3):
    try:
        results.append(12 // d)
    except ZeroDivisionError:
        results.append("undefined")
print(results)
