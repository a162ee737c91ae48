# Raising builtin exception types, re-raising, exception hierarchies and handler order.


def classify(exc_type, message):
    try:
        raise exc_type(message)
    except ZeroDivisionError as e:
        return f"zero division: {e}"
    except ArithmeticError as e:
        return f"arithmetic ({e})"
    except (KeyError, IndexError) as e:
        return f"lookup: {e!r}"
    except Exception as e:
        return f"other: {e}"


for t in [ZeroDivisionError, OverflowError, KeyError, IndexError, ValueError, TypeError, RuntimeError]:
    print(classify(t, "boom"))


def risky(n):
    if n % 2:
        raise ValueError(f"odd: {n}")
    return n


def wrapper(n):
    try:
        return risky(n)
    except ValueError:
        print("logging and re-raising", n)
        raise


total = 0
for n in range(5):
    try:
        total += wrapper(n)
    except ValueError as e:
        print("caught at top:", e)
print("total", total)
try:
    try:
        raise IndexError("first")
    except IndexError:
        raise KeyError("second")
except KeyError as e:
    print("got", repr(e))
try:
    raise NotImplementedError
except RuntimeError as e:
    print("NotImplementedError is a RuntimeError:", repr(e))
