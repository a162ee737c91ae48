# try/except/else/finally: the order in which the clauses run, with return and break inside.

log = []


def attempt(x):
    try:
        log.append(f"try {x}")
        if x == 0:
            raise ZeroDivisionError("zero")
        if x < 0:
            raise ValueError("negative")
        result = 10 // x
    except ZeroDivisionError as e:
        log.append(f"except zero: {e}")
        return "zero"
    except ValueError:
        log.append("except value")
        result = None
    else:
        log.append(f"else {result}")
    finally:
        log.append(f"finally {x}")
    return result


for x in [5, 0, -1]:
    print(x, attempt(x))
print(log)
log.clear()


def early_return():
    try:
        return "from try"
    finally:
        log.append("finally still runs")


print(early_return(), log)
for i in range(5):
    try:
        if i == 3:
            break
        if i == 1:
            continue
        log.append(i)
    finally:
        log.append(f"f{i}")
print(log)


def nested():
    try:
        try:
            raise KeyError("inner")
        finally:
            log.append("inner finally")
    except KeyError as e:
        log.append(f"outer caught {e}")
    return log[-2:]


print(nested())
