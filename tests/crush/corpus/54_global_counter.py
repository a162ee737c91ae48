# Module-level state changed through `global`, and functions reading globals defined later.

counter = 0
history = []


def bump(by=1):
    global counter
    counter += by
    history.append(counter)
    return counter


def report():
    return f"counter={counter} history={history} limit={LIMIT}"


LIMIT = 10
while bump(3) < LIMIT:
    pass
print(report())


def reset():
    global counter, history
    counter = 0
    history = []


reset()
bump()
print(report())


def read_only():
    return counter * 100


print(read_only())
