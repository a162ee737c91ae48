# nonlocal across several levels, and closures that share one cell.


def outer():
    x = "outer"
    log = []

    def middle():
        nonlocal x
        x = "middle"

        def inner():
            nonlocal x
            x = x + "+inner"
            log.append(x)

        inner()
        inner()
        return x

    result = middle()
    return x, result, log


print(outer())


def bank(balance):
    def deposit(amount):
        nonlocal balance
        balance += amount
        return balance

    def withdraw(amount):
        nonlocal balance
        if amount > balance:
            raise ValueError(f"only {balance} left")
        balance -= amount
        return balance

    def get():
        return balance

    return deposit, withdraw, get


dep, wd, get = bank(10)
dep(5)
wd(3)
try:
    wd(100)
except ValueError as e:
    print("refused:", e)
print(get())


def fib_gen():
    a, b = 0, 1

    def step():
        nonlocal a, b
        value = a
        a, b = b, a + b
        return value

    return step


step = fib_gen()
print([step() for _ in range(15)])
